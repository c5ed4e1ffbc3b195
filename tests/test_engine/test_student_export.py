import os
import stat

import torch

from mmprockd.engine.student_export import atomic_save, atomic_write_text


def test_atomic_files_get_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_save({'a': torch.zeros(1)}, str(tmp_path / 'x.pth'))
        atomic_write_text('x = 1\n', str(tmp_path / 'x.py'))
    finally:
        os.umask(umask)
    for name in ('x.pth', 'x.py'):
        mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
        assert mode == 0o644, (name, oct(mode))
    assert torch.load(tmp_path / 'x.pth')['a'].shape == (1, )
    assert sorted(os.listdir(tmp_path)) == ['x.pth', 'x.py']  # no .tmp left
