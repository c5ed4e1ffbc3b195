"""``get_config_path`` finds shipped configs from a source checkout and from
a regular (non-editable) install, where they live in ``mmprockd/.mim``.

Run: ``pytest tests/test_utils/test_config_path.py``
"""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from mmprockd.utils import get_config_path, list_configs

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# what a wheel is built from (an allow-list: a virtual environment or data
# inside the checkout must not be copied)
SOURCE_ENTRIES = ('mmprockd', 'configs', 'tools', 'requirements', 'setup.py',
                  'setup.cfg', 'README.md', 'MANIFEST.in', 'requirements.txt')
COPY_IGNORE = shutil.ignore_patterns('.mim', '__pycache__', '*.pth',
                                     '*.egg-info')


def test_configs_are_shipped():
    # configs are part of the package; none would mean a packaging bug
    assert list_configs(), 'mmprockd ships no configs'


def test_finds_every_shipped_config():
    for name in list_configs():
        path = get_config_path(name)
        assert osp.isfile(path) and path.replace(os.sep, '/').endswith(name)


def test_unknown_name_raises_naming_it():
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        get_config_path('no_such_config.py')


@pytest.fixture(scope='module')
def installed(tmp_path_factory) -> str:
    """mmprockd installed with pip into a folder (``--target``), not
    editable. pip builds from a copy: setup.py rewrites ``mmprockd/.mim``
    in the tree it builds from, which would break this checkout's editable
    install."""
    tmp = tmp_path_factory.mktemp('install')
    source, target = tmp / 'src', tmp / 'target'
    source.mkdir()
    for entry in SOURCE_ENTRIES:
        path = osp.join(REPO, entry)
        if osp.isdir(path):
            shutil.copytree(
                path, source / entry, ignore=COPY_IGNORE, symlinks=True)
        else:
            shutil.copy2(path, source / entry)
    proc = subprocess.run([
        sys.executable, '-m', 'pip', 'install', '--no-deps',
        '--no-build-isolation', '--no-index', '--quiet', '--target',
        str(target),
        str(source)
    ],
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return str(target)


def _run(args, target: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=target, PYTHONWARNINGS='ignore')
    return subprocess.run(
        [sys.executable] + args,
        cwd=target,
        env=env,
        capture_output=True,
        text=True,
        timeout=300)


def test_non_editable_install_finds_configs(installed):
    name = list_configs()[0]
    mim = osp.join(installed, 'mmprockd', '.mim', 'configs')
    proc = _run([
        '-c', 'import mmprockd; from mmprockd.utils import get_config_path; '
        f'print(mmprockd.__file__); print(get_config_path({name!r}))'
    ], installed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    package_file, path = proc.stdout.split()
    assert package_file.startswith(osp.join(installed, 'mmprockd'))
    assert path == osp.join(mim, name)
    assert osp.isfile(path)

    proc = _run(['-m', 'mmprockd.utils.config_path', name], installed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == osp.join(mim, name)

    proc = _run(['-m', 'mmprockd.utils.config_path', 'nope.py'], installed)
    assert proc.returncode != 0
    assert "no config 'nope.py'" in proc.stderr
