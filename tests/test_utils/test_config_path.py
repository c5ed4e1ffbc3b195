"""``get_config_path`` finds shipped configs from a source checkout and from
a regular (non-editable) install, where they live in ``mmprockd/.mim``.

Run: ``pytest tests/test_utils/test_config_path.py``
"""
import importlib
import importlib.util
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
from downstream_install import REPO, run_installed

from mmprockd.utils import get_config_path, list_configs


def test_finds_every_shipped_config():
    names = list_configs()
    # configs are part of the package; none would mean a packaging bug
    assert names, 'mmprockd ships no configs'
    for name in names:
        path = get_config_path(name)
        assert osp.isfile(path) and path.replace(os.sep, '/').endswith(name)


def test_unknown_name_raises_naming_it():
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        get_config_path('no_such_config.py')


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
    """The installed package's ``get_config_path`` (through its command
    line) gives the configs of the install's ``.mim``."""
    name = list_configs()[0]
    mim = osp.join(installed, 'mmprockd', '.mim', 'configs')
    proc = _run(['-m', 'mmprockd.utils.config_path', name], installed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == osp.join(mim, name)
    assert osp.isfile(osp.join(mim, name))

    proc = _run(['-m', 'mmprockd.utils.config_path', 'nope.py'], installed)
    assert proc.returncode != 0
    assert "no config 'nope.py'" in proc.stderr


# ------------------------------------------------ a downstream project
# its own configs: no absolute path in _base_, the demo data by absolute
# path (it lives in this checkout), 2 iterations, no validation.
# Detection: 2 images = 2 iterations, one epoch
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
# segmentation: 2 iterations, the student exported after the second
DOWNSTREAM_SEG_CFG = """
_base_ = ['mmprockd::demo/prockd_mobilenetv2_fcn_cityscapes_demo.py']
data_root = {data!r}
train_dataloader = dict(dataset=dict(data_root=data_root))
train_cfg = dict(max_iters=2, val_interval=2)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = dict(dataset=dict(data_root=data_root))
default_hooks = dict(logger=dict(interval=1))
custom_hooks = [dict(_base_.prockd_hooks[0], interval=2),
                *_base_.prockd_hooks[1:]]
"""


def _downstream(installed,
                tmp_path,
                train_script,
                text=DOWNSTREAM_CFG,
                data=osp.join(REPO, 'data', 'prockd_demo') + '/'):
    project = tmp_path / 'project'
    project.mkdir()
    (project / 'my_prockd.py').write_text(text.format(data=data))
    script = project / 'train.py'
    shutil.copy(train_script, script)
    proc = run_installed(
        installed, [str(script), 'my_prockd.py', '--work-dir', 'work'],
        cwd=str(project))
    assert proc.returncode == 0, proc.output[-4000:]
    return project, proc.output


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
    """The pair configs of ``tests/test_configs/pair_shapes.py``."""
    path = osp.join(REPO, 'tests', 'test_configs', 'pair_shapes.py')
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
                 hooks, sys.argv[1] in c.text]
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
    proc = run_installed(installed, ['load.py'], cwd=str(tmp_path))
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
    proc = run_installed(
        installed, ['load.py', mim, *pairs], cwd=str(tmp_path))
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
        # the recipe's hooks end the list (an upstream base may add its
        # own before them); the two-stage recipes score their branch
        ours = [
            'mmprockd.StudentCheckpointHook', 'mmprockd.DistillScheduleHook'
        ]
        if name != 'cls':
            ours.append('mmprockd.BranchEvalHook')
        assert hooks[-len(ours):] == ours, name
        assert from_install, name


def _evaluate_upstream(package, project, installed, checkpoint) -> str:
    """``package``'s own ``tools/test.py`` (mmdet's, mmseg's, as pip ships
    it) evaluates the exported student of ``project/work`` in a process
    that fails if it imports mmprockd (the student config does not name
    it); torchvision imports thanks to the installed mmprockd_boot.pth.

    Returns:
        str: its output.
    """
    module = importlib.import_module(package)
    test_tool = project / f'{package}_test.py'
    shutil.copy(
        osp.join(osp.dirname(module.__file__), '.mim', 'tools', 'test.py'),
        test_tool)
    proc = run_installed(
        installed, [
            str(test_tool), 'work/student_config.py', f'work/{checkpoint}',
            '--work-dir', f'{package}_test_work'
        ],
        cwd=str(project),
        guarded=True)
    assert proc.returncode == 0, proc.output[-4000:]
    return proc.output


def test_a_guarded_process_that_imports_mmprockd_fails(tmp_path):
    """The guard of the upstream evaluations is not vacuous: a module of
    mmprockd in ``sys.modules`` when the script ends fails the process
    (a stand-in module: the check reads ``sys.modules`` only)."""
    (tmp_path / 'script.py').write_text(
        'import sys, types\n'
        "sys.modules['mmprockd.engine'] = types.ModuleType('x')\n"
        "print('the script ran')\n")
    proc = run_installed(
        str(tmp_path), ['script.py'], cwd=str(tmp_path), guarded=True)
    assert proc.returncode == 3
    assert proc.stdout == 'the script ran\n'
    assert 'mmprockd was imported: mmprockd.engine' in proc.stderr
    (tmp_path / 'script.py').write_text("print('the script ran')\n")
    proc = run_installed(
        str(tmp_path), ['script.py'], cwd=str(tmp_path), guarded=True)
    assert proc.returncode == 0, proc.output[-3000:]


def test_downstream_segmenter_is_evaluated_by_mmsegs_test_tool(
        installed, tmp_path):
    """The segmentation demo, 2 iterations, trained by our installed train
    tool; its exported student evaluated by mmseg's own tools/test.py."""
    tool = osp.join(installed, 'mmprockd', '.mim', 'tools', 'train.py')
    data = osp.join(REPO, 'data', 'prockd_demo', 'cityscapes') + '/'
    project, out = _downstream(installed, tmp_path, tool, DOWNSTREAM_SEG_CFG,
                               data)
    assert 'Iter(train) [2/2]' in out
    assert 'distill.proto.decode.loss_ce: ' in out
    work = project / 'work'
    assert (work / 'student_iter_2.pth').is_file()
    # the config resolved from the installed package, not this checkout;
    # our train tool adds hooks of ours to the run, and the exported
    # student config keeps none of them
    dumped = (work / 'my_prockd.py').read_text()
    assert REPO + '/configs' not in dumped
    assert 'mmprockd.ConfigFingerprintHook' in dumped
    student_cfg = (work / 'student_config.py').read_text()
    assert 'mmprockd' not in student_cfg
    assert "type='EncoderDecoder'" in student_cfg
    out = _evaluate_upstream('mmseg', project, installed, 'student_latest.pth')
    # mmseg's IoUMetric: the per-class table, then the summary keys
    assert 'per class results:' in out
    assert re.search(r'Iter\(test\) \[3/3\]\s+aAcc: [\d.]+\s+mIoU: [\d.]+\s',
                     out)


def test_downstream_trains_with_its_copy_of_mmdets_train_tool(
        installed, tmp_path):
    """The detection demo, 2 iterations, trained by mmdet's own
    tools/train.py (our hooks come from the config); its exported student
    evaluated by mmdet's own tools/test.py."""
    import mmdet
    tool = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    project, out = _downstream(installed, tmp_path, tool)
    _check_trained(project, out, installed)
    student_cfg = (project / 'work' / 'student_config.py').read_text()
    assert 'mmprockd' not in student_cfg
    out = _evaluate_upstream('mmdet', project, installed, 'student_latest.pth')
    assert 'coco/bbox_mAP:' in out
