"""Each fix of :mod:`mmprockd.utils.compat`, with a test that fails without
it, and the local-rank spellings of ``tools/train.py``.

Every fix acts at import time, so each case runs in a fresh interpreter:
one that imports mmprockd and one that does not (or applies one fix only).

Run: ``pytest tests/test_utils/test_compat.py``
"""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from mmprockd.utils import compat

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COMPAT_FILE = osp.join(REPO, 'mmprockd', 'utils', 'compat.py')
# loads compat.py alone: `import mmprockd.utils.compat` would run
# mmprockd/__init__.py, which applies every fix
LOAD_COMPAT_ONLY = textwrap.dedent(f'''
    import importlib.util
    spec = importlib.util.spec_from_file_location('compat_only',
                                                  {COMPAT_FILE!r})
    compat_only = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compat_only)
''')


def _python(code: str,
            cwd: str,
            pythonpath=(),
            boot: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; output joined in ``.output``.
    ``boot=False`` turns off the start-up fixes of ``mmprockd_boot.pth``
    (what an environment without mmprockd does)."""
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    if not boot:
        env['MMPROCKD_BOOT'] = '0'
    paths = list(pythonpath) + [p for p in [env.get('PYTHONPATH')] if p]
    if paths:
        env['PYTHONPATH'] = os.pathsep.join(paths)
    proc = subprocess.run([sys.executable, '-c',
                           textwrap.dedent(code)],
                          cwd=cwd,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    proc.output = proc.stdout + proc.stderr
    return proc


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# (a) torch>=2.6 loads with weights_only=True ------------------------------


@pytest.fixture(scope='module')
def full_checkpoint(toy_run) -> str:
    """A checkpoint of the toy run of tools/train.py (with the message hub,
    numpy values and optimizer state that mmengine saves)."""
    return osp.join(toy_run.work_dir, 'epoch_1.pth')


def test_full_checkpoint_loads_only_with_mmprockd(full_checkpoint, tmp_path):
    load = f'ckpt = torch.load({full_checkpoint!r}); print(sorted(ckpt))'
    plain = _python('import torch\n' + load, str(tmp_path))
    assert plain.returncode != 0
    assert 'Unsupported global' in plain.output

    fixed = _python('import torch\nimport mmprockd\n' + load, str(tmp_path))
    assert fixed.returncode == 0, fixed.output[-3000:]
    assert "'message_hub'" in fixed.stdout and "'meta'" in fixed.stdout


PAYLOAD_MODULE = '''
import collections


class Payload:
    def __init__(self):
        self.value = 1


class GetattrPayload:
    def __reduce__(self):
        return getattr, (collections.OrderedDict, 'fromkeys')
'''


def test_other_pickled_objects_are_still_refused(tmp_path):
    (tmp_path / 'payload.py').write_text(PAYLOAD_MODULE)
    payload = _load(str(tmp_path / 'payload.py'), 'payload')
    files = {
        # an instance of a class from an arbitrary module
        'custom': payload.Payload(),
        # getattr on an allowed class: allow-listing `getattr` opens this
        'getattr': payload.GetattrPayload(),
    }
    import torch
    for name, obj in files.items():
        torch.save(dict(state_dict={}, extra=obj), str(tmp_path / name))
    proc = _python(
        f'''
        import pickle, torch, mmprockd
        for name in {sorted(files)!r}:
            try:
                torch.load(name)
                print(name, 'loaded')
            except pickle.UnpicklingError as err:
                print(name, 'refused', 'Unsupported global' in str(err))
        ''', str(tmp_path), [str(tmp_path)])
    assert proc.returncode == 0, proc.output[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == 'custom refused True', lines
    # refused either as an unknown global or by a narrowed getattr
    assert lines[1].startswith('getattr refused'), lines


# (b) transformers>=5 next to pycocotools ----------------------------------

# Names that mmengine and mmdet import from transformers at import time
# (inside `except ImportError`) exist in transformers 5: the fake has them.
# Anything else fails the way mmpretrain's multimodal imports fail on it.
FAKE_TRANSFORMERS = '''
__version__ = '5.0.0'


class Adafactor:
    pass


BertConfig = BertModel = BertPreTrainedModel = AutoTokenizer = Adafactor


def __getattr__(name):
    raise TypeError('NoneType takes no arguments')
'''


@pytest.fixture
def fake_transformers(tmp_path) -> str:
    package = tmp_path / 'transformers'
    package.mkdir()
    (package / '__init__.py').write_text(FAKE_TRANSFORMERS)
    info = tmp_path / 'transformers-5.0.0.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: transformers\nVersion: 5.0.0\n')
    return str(tmp_path)


def test_transformers_5_breaks_mmdet_without_the_fix(fake_transformers):
    # only the torchvision fix (this machine needs it to get that far)
    proc = _python(
        LOAD_COMPAT_ONLY + 'compat_only.patch_torchvision_ops()\n'
        'import mmdet.models\n',
        fake_transformers, [fake_transformers],
        boot=False)
    assert proc.returncode != 0
    assert 'TypeError: NoneType takes no arguments' in proc.output
    assert 'mmpretrain' in proc.output  # through mmpretrain's imports


def test_transformers_5_with_mmprockd(fake_transformers):
    proc = _python(
        '''
        import mmprockd
        import mmdet.models
        import mmpretrain.models
        from mmpretrain.utils import dependency
        import transformers
        print(transformers.__version__, dependency.WITH_MULTIMODAL)
        ''', fake_transformers, [fake_transformers])
    assert proc.returncode == 0, proc.output[-3000:]
    assert proc.stdout.split() == ['5.0.0', 'False']


# (c) a torchvision whose compiled ops do not load -------------------------


def test_torchvision_fix_matches_this_machine(tmp_path):
    if compat.torchvision_ops_loadable():
        assert compat.patch_torchvision_ops() is False
        return
    plain = _python('import torchvision', str(tmp_path), boot=False)
    assert plain.returncode != 0
    assert 'torchvision::nms does not exist' in plain.output
    # with the start-up file the install writes, any interpreter of the
    # environment imports it (upstream tools never import mmprockd)
    booted = _python(
        'import torchvision, sys; print("mmprockd" in sys.modules)',
        str(tmp_path))
    assert booted.returncode == 0, booted.output[-3000:]
    assert booted.stdout.split() == ['False']
    fixed = _python(
        '''
        import mmprockd
        import torchvision.transforms
        import mmpretrain.models
        import torch
        from torchvision.ops import box_iou
        boxes = torch.tensor([[0., 0., 2., 2.], [1., 1., 3., 3.]])
        print(round(float(box_iou(boxes, boxes)[0, 1]), 4))
        ''', str(tmp_path))
    assert fixed.returncode == 0, fixed.output[-3000:]
    assert fixed.stdout.strip() == str(round(1 / 7, 4))  # pure-Python op


def test_torchvision_warning_is_one_line_printed_once(tmp_path):
    """The shim run twice (two copies of compat.py, then apply_all again)
    and a child process: the warning is printed once, on one line, where
    the ops do not load, and never where they do."""
    env = dict(os.environ)
    for name in ('PYTHONWARNINGS', 'RANK', compat.TV_WARNED_ENV):
        env.pop(name, None)  # pytest's own import of mmprockd set the last
    code = LOAD_COMPAT_ONLY + textwrap.dedent('''
        compat_only.patch_torchvision_ops()
        compat_only.patch_torchvision_ops()
        import mmprockd
        mmprockd.utils.compat.apply_all()
        import subprocess
        import sys
        subprocess.run([sys.executable, '-c', 'import mmprockd'], check=True)
        import torchvision.transforms
        ''')
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=str(tmp_path),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    lines = [line for line in output.splitlines() if 'torchvision' in line]
    if compat.torchvision_ops_loadable():
        assert lines == []
        return
    assert len(lines) == 1, output
    assert 'TorchvisionOpsWarning' in lines[0]
    assert 'Install the torchvision build' in lines[0]  # the whole text
    assert 'warnings.warn' not in output  # no source line under it


# (d) both local-rank spellings of tools/train.py --------------------------


@pytest.mark.parametrize('flag', ['--local-rank', '--local_rank'])
def test_train_accepts_both_local_rank_spellings(flag, monkeypatch):
    train_tool = _load(osp.join(REPO, 'tools', 'train.py'), 'train_tool')
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    args = train_tool.parse_args(['cfg.py', flag, '1'])
    assert args.local_rank == 1
    assert os.environ['LOCAL_RANK'] == '1'
    # a launcher's LOCAL_RANK is kept
    monkeypatch.setenv('LOCAL_RANK', '3')
    args = train_tool.parse_args(['cfg.py', flag, '1'])
    assert os.environ['LOCAL_RANK'] == '3'


# ------------------------------------------------ images that cannot be read


def _load_image(path, **kwargs):
    from mmcv.transforms import LoadImageFromFile
    return LoadImageFromFile(**kwargs)(
        dict(img_path=str(path), img_id=7, sample_idx=3))


def test_an_empty_or_corrupt_image_is_named_with_its_sample(tmp_path):
    assert compat.patch_image_loading_errors()
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(compat.ImageReadError) as info:
        _load_image(empty)
    assert str(info.value).startswith(
        f'cannot read the image {empty} (0 bytes; img_id 7, sample_idx 3): ')
    assert '!buf.empty()' in str(info.value)
    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(b'not a jpeg at all')
    with pytest.raises(
            compat.ImageReadError, match=rf'{corrupt} \(17 bytes; img_id 7'):
        _load_image(corrupt)
    assert _load_image(empty, ignore_empty=True) is None  # still skipped
    compat.patch_image_loading_errors()  # idempotent: wrapped once
    with pytest.raises(compat.ImageReadError) as again:
        _load_image(empty)
    assert again.value.__cause__ is not None
    assert not isinstance(again.value.__cause__, compat.ImageReadError)


def test_training_on_a_folder_with_an_empty_image_names_it(
        tmp_path, monkeypatch):
    """A classification folder (no annotation file to check first): the
    run fails when it reaches the image, naming it."""
    from mmengine.runner import Runner
    from tool_runner import load_module, toy
    train_tool = load_module(osp.join(REPO, 'tools', 'train.py'), 'train_tool')
    root = toy.make_toy_images(str(tmp_path / 'data'))
    empty = osp.join(root, sorted(os.listdir(root))[0], '9.png')
    open(empty, 'wb').close()
    cfg = train_tool.build_config(
        train_tool.parse_args([
            toy.TOY_CLS, '--work-dir',
            str(tmp_path / 'work'), '--cfg-options',
            *toy.data_root_options(root)
        ]))
    with pytest.raises(compat.ImageReadError) as info:
        Runner.from_cfg(cfg).train()
    assert f'cannot read the image {empty} (0 bytes; sample_idx ' in str(
        info.value)
