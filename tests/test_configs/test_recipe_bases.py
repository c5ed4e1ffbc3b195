"""New student/teacher pairs written the way a downstream project writes
them (``pair_shapes.py``): an upstream student base, a teacher base (or a
teacher of its own), one recipe base of ``configs/_base_/recipes`` and at
most 15 lines of its own. The three recipes' configs of the docs are parsed
verbatim; the pair shapes, written into a downstream project that uses a
non-editable install of mmprockd, build and step through both phases of
two-stage ProC-KD at reduced depth, width and input size there; the
exported student config loads in a process that never imports mmprockd.

Run: ``pytest tests/test_configs/test_recipe_bases.py``
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from downstream_install import run_installed
from mmengine.config import Config
from mmengine.registry import init_default_scope
from pair_shapes import (CLS, DET, PAIRS, SEG, build, grad_sum, own_lines,
                         reduce_teacher, reduced, schedule_hook, step)

from mmprockd.engine import export_student
from mmprockd.registry import MODELS
from mmprockd.utils.offline import make_offline

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))


def load(text: str, tmp_path, name: str = 'my_pair.py') -> Config:
    path = tmp_path / name
    path.write_text(text)
    return Config.fromfile(str(path))


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize('text', [DET, SEG, CLS], ids=['det', 'seg', 'cls'])
def test_the_docs_configs_are_at_most_15_lines(text):
    assert own_lines(text) <= 15


@pytest.mark.parametrize('name', list(PAIRS))
def test_pair_configs_are_at_most_15_lines(name):
    assert own_lines(PAIRS[name][0]) <= 15


@pytest.mark.parametrize('recipe,text', [('two_stage_det', DET),
                                         ('two_stage_seg', SEG),
                                         ('pkd_cls', CLS)])
def test_each_recipe_base_shows_its_config(recipe, text):
    """The config in a recipe base's comment is the one tested here."""
    from mmprockd.utils import get_config_path
    with open(get_config_path(f'_base_/recipes/{recipe}.py')) as f:
        shown = ''.join(line[len('#     '):] for line in f
                        if line.startswith('#     '))
    assert shown == text


def test_det_recipe_is_the_flagships(tmp_path):
    """The base's distiller, phases, schedule and DDP wrapper are what
    ``prockd_retinanet_coco.py`` runs, student and teacher aside."""
    from mmprockd.utils import get_config_path
    flagship = Config.fromfile(get_config_path('prockd_retinanet_coco.py'))
    ours = load(DET, tmp_path)
    skip = ('student', 'teacher')
    a = {k: v for k, v in flagship.model.to_dict().items() if k not in skip}
    b = {k: v for k, v in ours.model.to_dict().items() if k not in skip}
    assert b == a
    assert ours.train_cfg.max_epochs == flagship.train_cfg.max_epochs == 36
    assert ours.train_cfg.val_begin == flagship.train_cfg.val_begin == 13

    # the same hooks; the flagship names its student's baseline for the
    # branch's figure (mmdet's RetinaNet-R50 1x), the base cannot
    def hooks(cfg):
        return [{
            k: v
            for k, v in h.items() if k != 'baseline'
        } for h in cfg.custom_hooks]

    assert hooks(ours) == hooks(flagship)
    (evals, ) = [
        h for h in flagship.custom_hooks
        if h['type'] == 'mmprockd.BranchEvalHook'
    ]
    assert evals['baseline'] == dict(metric='coco/bbox_mAP', value=0.365)
    assert ours.model_wrapper_cfg == flagship.model_wrapper_cfg
    # the student base's model was replaced, not merged into
    assert ours.model.student.type == 'RetinaNet'
    assert 'backbone' not in ours.model and '_delete_' not in ours.model


def _proxy_row(name: str) -> Config:
    """A segmentation proxy row's config, its overrides merged."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        from analysis_tools.proxy.rows import TASKS
    finally:
        sys.path.pop(0)
    config, options = TASKS['seg']['rows'][name]
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'benchmark', config))
    cfg.merge_from_dict(options)
    return cfg


def test_seg_recipe_is_the_proxys_winning_row(tmp_path):
    """The branch, its losses and the teacher's 2x input of the row that
    won on the segmentation proxy; the branch's width, the levels and the
    caches (which need a proxy's fixed pipeline) are the student's."""
    row = _proxy_row('two_stage_t2x')
    seg = load(SEG, tmp_path)
    for key in ('type', 'augment', 'proto_weight', 'branch_head', 'kl_loss',
                'branch_feat_loss'):
        assert seg.model[key] == row.model[key], key
    assert {k: v for k, v in seg.model.learner.items() if k != 'channels'} \
        == {k: v for k, v in row.model.learner.items() if k != 'channels'}
    assert seg.model.teacher.input_scale == row.model.teacher.input_scale \
        == 2.0
    assert seg.model.teacher.layers == ['norm1', 'norm2', 'norm3']
    # two phases, the branch frozen when the student starts, as the row's
    row_hook = schedule_hook(row)
    assert row_hook.branch_stop == row_hook.student_start > 0
    # 80k branch iterations, then twice the student's 80k
    assert seg.train_cfg.type == 'IterBasedTrainLoop'
    assert seg.train_cfg.max_iters == 240000
    hook = schedule_hook(seg)
    assert (hook.student_start, hook.branch_stop) == (80000, 80000)
    assert hook.student_schedule[0]['end'] == 160000
    assert seg.model_wrapper_cfg.find_unused_parameters


def test_cls_recipe_is_pkd_and_the_prototype_route_an_option(tmp_path):
    cfg = load(CLS, tmp_path)
    # the classification proxy's PKD row
    pkd = Config.fromfile(
        osp.join(REPO, 'configs', 'benchmark',
                 'pkd_mobilenetv2_resnet18-tiny_1000i_fmnist-64px.py'))
    for key in ('type', 'feat_loss'):
        assert cfg.model[key] == pkd.model[key], key
    assert cfg.model.type == 'mmprockd.PKDDistiller'
    assert 'learner' not in cfg.model and 'kl_loss' not in cfg.model
    assert cfg.model.feat_loss.loss_weight == 6.0
    proto = cfg.pkd_cls_prototypes
    assert proto.type == 'mmprockd.ProtoDistiller'
    assert proto.learner.type == 'mmprockd.PrototypeLearner'
    assert proto.kl_loss.loss_weight == 10.0
    assert proto.feat_loss == cfg.model.feat_loss


def test_a_switch_merges_into_the_recipes_block(tmp_path):
    text = DET.replace(
        "    student_channels=[256] * 5)", "    student_channels=[256] * 5,\n"
        "    learner=dict(_base_.two_stage_det.learner, num_prototypes=36))")
    learner = load(text, tmp_path).model.learner
    assert learner.num_prototypes == 36
    # the rest of the recipe's learner is kept
    assert (learner.type, learner.fusion, learner.residual) == \
        ('mmprockd.PrototypeLearner', 'fpn', True)


PARTIAL = DET.replace(
    "    student_channels=[256] * 5)", "    student_channels=[256] * 5,\n"
    '    learner=dict(num_prototypes=36))')
# the old switches merged the way a user would into the old distiller base
OLD_MERGE = """\
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    'mmprockd::_base_/prockd_runtime.py',
    'mmprockd::_base_/teachers/swin-t_in1k.py',
    'mmprockd::_base_/models/prockd_distiller.py',
    'mmprockd::_base_/models/prockd_2stage_recipe.py',
]
model = dict(_base_.prockd_distiller, _delete_=True, student=_base_.model,
             teacher=_base_.swin_t_in1k_teacher, student_channels=[256] * 5,
             **_base_.prockd_2stage_branch, **_base_.prockd_2stage_student)
"""


@pytest.mark.parametrize('text,pattern', [
    (PARTIAL, r"model.learner=dict\(num_prototypes=36\) has no 'type'.*"
     r'learner=dict\(_base_.<recipe>.learner, ...\)'),
    (OLD_MERGE, r"model.learner=dict\(fusion='fpn', residual=True\) has no "
     r"'type'"),
])
def test_a_partial_block_is_refused_naming_the_key(text, pattern, tmp_path):
    cfg = load(text, tmp_path)
    init_default_scope('mmdet')
    with pytest.raises(ValueError, match=pattern):
        MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def downstream_pairs(installed, tmp_path_factory):
    """The pair shapes as the config files of a downstream project, built
    and stepped by its script (a copy of ``pair_shapes.py``) in one process
    that imports mmprockd from the non-editable install only.

    Returns:
        tuple: the install, the project folder and the script's output:
        where it imported mmprockd from and ``{config file: facts}``.
    """
    project = tmp_path_factory.mktemp('pairs_project')
    args = ['pair_shapes.py']
    for name, (text, family, _) in PAIRS.items():
        (project / f'{name}.py').write_text(text)
        args.append(f'{project / name}.py:{family}')
    shutil.copy(osp.join(HERE, 'pair_shapes.py'), project / 'pair_shapes.py')
    proc = run_installed(installed, args, cwd=str(project))
    assert proc.returncode == 0, proc.output[-4000:]
    [line] = [x for x in proc.stdout.splitlines() if x.startswith('{')]
    return installed, project, json.loads(line)


@pytest.mark.parametrize('name', list(PAIRS))
def test_pair_builds_and_steps_through_both_phases(name, downstream_pairs):
    installed, project, out = downstream_pairs
    _, _, kl = PAIRS[name]
    # the downstream project's own file, its recipe base from the install
    assert out['mmprockd'] == osp.join(installed, 'mmprockd', '__init__.py')
    path = f'{project / name}.py'
    pair = out['pairs'][path]
    assert pair['file'] == path
    recipes = osp.join(installed, 'mmprockd', '.mim', 'configs', '_base_',
                       'recipes')
    assert recipes in pair['bases']
    # none from this checkout's configs (a venv inside the checkout, as
    # CI's, is fine: upstream bases come from there)
    assert osp.join(REPO, 'configs') not in pair['bases']
    # the teacher frozen, and none of its parameters the optimizer's
    assert pair['teacher_trainable'] == 0
    assert pair['teacher_in_model'] == 0
    if name == 'ocrnet_cascade':
        # the KL reads the last head of the cascade (OCRHead)
        assert pair['logit_head'] == 'OCRHead'
        assert pair['logit_head_is_last_decode_head']
    assert pair['kl'] == kl
    start = pair['student_start']
    assert start > 0 and pair['branch_stop'] == start

    # the branch phase: the branch learns, the student stays as built
    branch = pair['branch_phase']
    assert branch['student_paused'] and not branch['branch_frozen']
    assert branch['losses'] and all(
        k.startswith('distill.proto.') for k in branch['losses'])
    assert branch['student_grad'] == 0
    # learner, augment and the branch's student head
    assert len(branch['branch_grads']) == 3
    assert all(g > 0 for g in branch['branch_grads'])
    assert not branch['teacher_training']

    # the student phase: the frozen branch teaches the student
    student = pair['student_phase']
    assert not student['student_paused'] and student['branch_frozen']
    losses = student['losses']
    assert any(k.startswith('student.') for k in losses)
    assert ('distill.loss_kl' in losses) == kl
    assert losses['distill.loss_branch_feat'] > 0
    assert student['student_backbone_grad'] > 0
    assert student['branch_grads'] == [0, 0, 0]
    assert not student['teacher_training']


@pytest.mark.parametrize('block', ['pkd_cls', 'pkd_cls_prototypes'])
def test_cls_config_builds_and_steps(block, tmp_path):
    text = CLS.replace('_base_.pkd_cls,', f'_base_.{block},')
    cfg = load(text, tmp_path)
    make_offline(cfg.model)
    reduce_teacher(cfg.model.teacher)
    model = build(cfg)
    losses = step(model, 'cls')
    assert float(losses['distill.loss_feat']) > 0
    assert grad_sum(model.feat_loss) > 0 and grad_sum(model.student) > 0
    proto = block == 'pkd_cls_prototypes'
    assert any(k.startswith('distill.proto.') for k in losses) == proto
    assert ('distill.loss_kl' in losses) == proto
    if proto:
        assert grad_sum(model.learner) > 0


# the exported student loaded by a plain mmengine Runner, in a process that
# then lists the mmprockd modules it imported (the start-up file
# mmprockd_boot, which applies the stack fixes, is not the package)
PLAIN = """\
import sys

import torch
from mmengine.config import Config
from mmengine.runner import Runner

cfg = Config.fromfile(sys.argv[1])
cfg.work_dir = sys.argv[3]
runner = Runner.from_cfg(cfg)
runner.load_checkpoint(sys.argv[2], strict=True)
model = runner.model.eval()
with torch.no_grad():
    outs = model(torch.zeros(1, 3, 64, 64), mode='tensor')
print('hooks', sorted(type(h).__name__ for h in runner.hooks))
print('levels', len(outs[0]), tuple(outs[0][0].shape))
print('imported', sorted(m for m in sys.modules
                         if m.split('.')[0] == 'mmprockd'))
"""


def test_exported_student_loads_without_mmprockd(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'prockd_train_tool', osp.join(REPO, 'tools', 'train.py'))
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    cfg = reduced(load(DET, tmp_path), 'det')
    # the hooks tools/train.py adds to a run
    train.add_fingerprint_hook(cfg)
    train.add_exact_resume_hook(cfg)
    types = [h['type'] for h in cfg.custom_hooks]
    assert 'mmprockd.ConfigFingerprintHook' in types
    model = build(cfg)
    ckpt = tmp_path / 'student.pth'
    cfg_path = export_student(model.state_dict(), str(ckpt), cfg=cfg)
    text = open(cfg_path).read()
    assert 'mmprockd' not in text
    script = tmp_path / 'plain.py'
    script.write_text(PLAIN)
    proc = subprocess.run([
        sys.executable,
        str(script), cfg_path,
        str(ckpt),
        str(tmp_path / 'work')
    ],
                          capture_output=True,
                          text=True,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'),
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(
        line.split(' ', 1) for line in proc.stdout.splitlines()
        if line.startswith(('hooks', 'levels', 'imported')))
    assert lines['imported'] == '[]'
    assert 'ExactResumeHook' not in lines['hooks']
    assert 'ConfigFingerprintHook' not in lines['hooks']
    # RetinaNet's five FPN levels, 4 classes x 9 anchors at stride 8
    assert lines['levels'] == '5 (1, 36, 8, 8)'
