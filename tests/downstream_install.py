"""mmprockd installed the way a downstream project gets it (a regular,
non-editable ``pip install`` into a folder), and Python run against that
install only. The ``installed`` fixture of ``tests/conftest.py`` builds the
install once for the whole test run."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
from typing import List

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# what a wheel is built from (an allow-list: a virtual environment or data
# inside the checkout must not be copied)
SOURCE_ENTRIES = ('mmprockd', 'mmprockd_boot.py', 'configs', 'tools',
                  'requirements', 'setup.py', 'setup.cfg', 'README.md',
                  'MANIFEST.in', 'requirements.txt')
COPY_IGNORE = shutil.ignore_patterns('.mim', '__pycache__', '*.pth',
                                     '*.egg-info')

# Run with ``python -S``: none of this environment's .pth files run (its
# editable mmprockd and its own mmprockd_boot.pth stay out); its packages
# are put on the path as plain folders, and the ``--target`` folder is made
# a site dir, which runs *its* .pth files (the installed mmprockd_boot.pth)
# as site-packages would. Then the script runs.
LAUNCH = ('import runpy, site, sys; sys.path.append(sys.argv[1]); '
          'site.addsitedir(sys.argv[2]); sys.argv = sys.argv[3:]; '
          'runpy.run_path(sys.argv[0], run_name="__main__")')
# LAUNCH, and the process fails (exit status 3) when the script, however
# it ends, imported a module of mmprockd (the start-up file
# ``mmprockd_boot`` and the compat file it loads by path,
# ``mmprockd_boot_compat``, are not the package)
GUARDED = """\
import os, runpy, site, sys
sys.path.append(sys.argv[1])
site.addsitedir(sys.argv[2])
sys.argv = sys.argv[3:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
finally:
    bad = sorted(m for m in sys.modules if m.split('.')[0] == 'mmprockd')
    if bad:
        sys.stdout.flush()
        print('mmprockd was imported:', *bad, file=sys.stderr, flush=True)
        os._exit(3)
"""
ENV_PACKAGES = sysconfig.get_paths()['purelib']


def install(tmp: str) -> str:
    """Install this checkout with pip into ``<tmp>/target`` (``--target``,
    not editable) and return that folder. pip builds from a copy:
    setup.py rewrites ``mmprockd/.mim`` in the tree it builds from, which
    would break this checkout's editable install."""
    source, target = osp.join(tmp, 'src'), osp.join(tmp, 'target')
    os.makedirs(source)
    for entry in SOURCE_ENTRIES:
        path = osp.join(REPO, entry)
        if osp.isdir(path):
            shutil.copytree(
                path,
                osp.join(source, entry),
                ignore=COPY_IGNORE,
                symlinks=True)
        else:
            shutil.copy2(path, osp.join(source, entry))
    proc = subprocess.run([
        sys.executable, '-m', 'pip', 'install', '--no-deps',
        '--no-build-isolation', '--no-index', '--quiet', '--target', target,
        source
    ],
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return target


def run_installed(installed: str,
                  args: List[str],
                  cwd: str,
                  guarded: bool = False,
                  timeout: int = 900) -> subprocess.CompletedProcess:
    """``python SCRIPT ARGS`` (``args``) against the install only, in
    ``cwd``; ``guarded``: the process fails if it imported mmprockd. The
    timeout only stops a hung process from hanging the suite.

    Returns:
        subprocess.CompletedProcess: with ``output``, stdout then stderr.
    """
    env = dict(
        os.environ,
        PYTHONWARNINGS='ignore',
        OMP_NUM_THREADS='1',
        PYTHONPATH='')
    launch = GUARDED if guarded else LAUNCH
    proc = subprocess.run(
        [sys.executable, '-S', '-c', launch, ENV_PACKAGES, installed, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout)
    proc.output = proc.stdout + proc.stderr
    return proc
