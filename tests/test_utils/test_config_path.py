"""``get_config_path`` finds shipped configs from a source checkout and from
a regular (non-editable) install, where they live in ``mmprockd/.mim``.

Run: ``pytest tests/test_utils/test_config_path.py``
"""
import importlib.util
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig

import pytest

from mmprockd.utils import get_config_path, list_configs

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# what a wheel is built from (an allow-list: a virtual environment or data
# inside the checkout must not be copied)
SOURCE_ENTRIES = ('mmprockd', 'mmprockd_boot.py', 'configs', 'tools',
                  'requirements', 'setup.py', 'setup.cfg', 'README.md',
                  'MANIFEST.in', 'requirements.txt')
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


# ------------------------------------------------ a downstream project
# its own config: no absolute path in _base_, the demo data by absolute
# path (it lives in this checkout), 2 images = 2 iterations, no validation
DOWNSTREAM_CFG = """
_base_ = ['mmprockd::demo/prockd_mobilenetv2_retinanet_demo.py']
data_root = {data!r}
train_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, indices=2))
train_cfg = dict(max_epochs=1)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = dict(dataset=dict(data_root=data_root))
test_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
"""
# Run with ``python -S``: none of this environment's .pth files run (its
# editable mmprockd and its own mmprockd_boot.pth stay out); its packages
# are put on the path as plain folders, and the ``--target`` folder is made
# a site dir, which runs *its* .pth files (the installed mmprockd_boot.pth)
# as site-packages would. Then the script runs.
LAUNCH = ('import runpy, site, sys; sys.path.append(sys.argv[1]); '
          'site.addsitedir(sys.argv[2]); sys.argv = sys.argv[3:]; '
          'runpy.run_path(sys.argv[0], run_name="__main__")')
ENV_PACKAGES = sysconfig.get_paths()['purelib']


def _downstream(installed, tmp_path, train_script):
    project = tmp_path / 'project'
    project.mkdir()
    data = osp.join(REPO, 'data', 'prockd_demo') + '/'
    (project / 'my_prockd.py').write_text(DOWNSTREAM_CFG.format(data=data))
    script = project / 'train.py'
    shutil.copy(train_script, script)
    env = dict(
        os.environ,
        PYTHONWARNINGS='ignore',
        OMP_NUM_THREADS='1',
        PYTHONPATH='')
    proc = subprocess.run([
        sys.executable, '-S', '-c', LAUNCH, ENV_PACKAGES, installed,
        str(script), 'my_prockd.py', '--work-dir', 'work'
    ],
                          cwd=project,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return project, out


def _check_trained(project, out, installed):
    assert 'Epoch(train) [1][2/2]' in out
    assert 'distill.proto.loss_cls' in out
    work = project / 'work'
    assert (work / 'student_epoch_1.pth').is_file()
    assert (work / 'epoch_1.pth').is_file()
    # the config resolved from the installed package, not this checkout
    dumped = (work / 'my_prockd.py').read_text()
    assert "type='mmprockd.ProtoDistiller'" in dumped
    assert REPO + '/configs' not in dumped


def test_boot_file_is_installed_beside_its_module(installed):
    pth = osp.join(installed, 'mmprockd_boot.pth')
    assert open(
        pth).read() == 'import mmprockd_boot; mmprockd_boot.install()\n'
    assert osp.isfile(osp.join(installed, 'mmprockd_boot.py'))


def _recipe_pairs() -> dict:
    """The pair configs of ``tests/test_configs/test_recipe_bases.py``."""
    path = osp.join(REPO, 'tests', 'test_configs', 'test_recipe_bases.py')
    spec = importlib.util.spec_from_file_location('recipe_pairs', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    configs = {k: v[0] for k, v in module.PAIRS.items()}
    configs.update(det=module.DET, seg=module.SEG, cls=module.CLS)
    return configs


# parses the configs named after the folder argument, their custom_imports
# not run, and prints what each resolved to (and whether a base came from
# that folder), then whether mmprockd was imported
LOAD = """\
import json, sys
from mmengine.config import Config
out = {}
for name in sys.argv[2:]:
    c = Config.fromfile(name + '.py', import_custom_modules=False)
    hooks = [h.type for h in c.get('custom_hooks', [])]
    out[name] = [c.model.type, c.model.student.type, c.model.teacher.type,
                 hooks[-2:], sys.argv[1] in c.text]
print(json.dumps(out))
print('mmprockd' in sys.modules)
"""


def test_mmprockd_base_resolves_without_importing_mmprockd(
        installed, tmp_path):
    (tmp_path / 'c.py').write_text(
        "_base_ = ['mmprockd::_base_/teachers/resnet50_in1k.py']\n"
        "teacher = dict(_base_.resnet50_in1k_teacher, ckpt=None)\n")
    (tmp_path / 'load.py').write_text(
        'import sys\nfrom mmengine.config import Config\n'
        "c = Config.fromfile('c.py')\n"
        "print(c.teacher.layers, c.teacher.ckpt, '_scope_' in "
        "c.resnet50_in1k_teacher, 'mmprockd' in sys.modules)\n")
    proc = subprocess.run([
        sys.executable, '-S', '-c', LAUNCH, ENV_PACKAGES, installed, 'load.py'
    ],
                          cwd=tmp_path,
                          env=dict(
                              os.environ,
                              PYTHONWARNINGS='ignore',
                              PYTHONPATH=''),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # resolved, no mmprockd scope forced on the base, mmprockd not imported
    assert proc.stdout.split('\n')[-2] == \
        "['layer2', 'layer3', 'layer4'] None False False"


def test_recipe_pairs_resolve_from_the_install(installed, tmp_path):
    """The new pairs' configs (built and stepped in
    ``test_recipe_bases.py``) take their recipe bases from the installed
    package."""
    pairs = _recipe_pairs()
    for name, text in pairs.items():
        (tmp_path / f'{name}.py').write_text(text)
    mim = osp.join(installed, 'mmprockd', '.mim', 'configs', '_base_',
                   'recipes')
    (tmp_path / 'load.py').write_text(LOAD)
    proc = subprocess.run([
        sys.executable, '-S', '-c', LAUNCH, ENV_PACKAGES, installed, 'load.py',
        mim, *pairs
    ],
                          cwd=tmp_path,
                          env=dict(
                              os.environ,
                              PYTHONWARNINGS='ignore',
                              PYTHONPATH=''),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    *_, resolved, imported, _ = proc.stdout.split('\n')
    resolved = json.loads(resolved)
    assert imported == 'False'
    assert resolved['ocrnet_cascade'][:2] == [
        'mmprockd.ProtoDistiller', 'CascadeEncoderDecoder'
    ]
    assert resolved['dino_no_kl'][1] == 'DINO'
    assert resolved['cls'][1] == 'ImageClassifier'
    for name, (model, _, teacher, hooks, from_install) in resolved.items():
        # the classification recipe is PKD (recipes/pkd_cls.py)
        assert model == ('mmprockd.PKDDistiller'
                         if name == 'cls' else 'mmprockd.ProtoDistiller'), name
        assert teacher == 'mmprockd.FrozenTeacher', name
        assert hooks == [
            'mmprockd.StudentCheckpointHook', 'mmprockd.DistillScheduleHook'
        ], name
        assert from_install, name


def _evaluate_with_mmdet(project, installed):
    """mmdet's own tools/test.py evaluates the exported student: plain
    mmdet, mmprockd never imported (the student config does not name it);
    torchvision imports thanks to the installed mmprockd_boot.pth."""
    import mmdet
    test_tool = project / 'test.py'
    shutil.copy(
        osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'test.py'),
        test_tool)
    proc = subprocess.run([
        sys.executable, '-S', '-c', LAUNCH, ENV_PACKAGES, installed,
        str(test_tool), 'work/student_config.py', 'work/student_epoch_1.pth',
        '--work-dir', 'test_work'
    ],
                          cwd=project,
                          env=dict(
                              os.environ,
                              PYTHONWARNINGS='ignore',
                              OMP_NUM_THREADS='1',
                              PYTHONPATH=''),
                          capture_output=True,
                          text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'coco/bbox_mAP:' in out


def test_downstream_trains_with_our_train_tool(installed, tmp_path):
    tool = osp.join(installed, 'mmprockd', '.mim', 'tools', 'train.py')
    project, out = _downstream(installed, tmp_path, tool)
    _check_trained(project, out, installed)
    # our train tool adds hooks of ours to the run; the exported student
    # config keeps none of them
    dumped = (project / 'work' / 'my_prockd.py').read_text()
    assert 'mmprockd.ConfigFingerprintHook' in dumped
    student_cfg = (project / 'work' / 'student_config.py').read_text()
    assert 'mmprockd' not in student_cfg
    _evaluate_with_mmdet(project, installed)


def test_downstream_trains_with_its_copy_of_mmdets_train_tool(
        installed, tmp_path):
    import mmdet
    tool = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    project, out = _downstream(installed, tmp_path, tool)
    _check_trained(project, out, installed)
    student_cfg = (project / 'work' / 'student_config.py').read_text()
    assert 'mmprockd' not in student_cfg
