"""New student/teacher pairs written the way a downstream project writes
them: an upstream student base, a teacher base (or a teacher of its own),
one recipe base of ``configs/_base_/recipes`` and at most 15 lines of its
own. The three recipes' configs of the docs are parsed verbatim; eight pair
shapes build and step through both phases of two-stage ProC-KD at reduced
depth, width and input size; the exported student config loads in a
process that never imports mmprockd.

Run: ``pytest tests/test_configs/test_recipe_bases.py``
"""
import copy
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmprockd.engine import export_student
from mmprockd.registry import HOOKS, MODELS
from mmprockd.testing import det_batch
from mmprockd.utils.offline import make_offline

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# ---------------------------------------------- the docs' configs, verbatim
DET = """\
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    'mmprockd::_base_/teachers/swin-t_in1k.py',
    'mmprockd::_base_/recipes/two_stage_det.py',
]
model = dict(
    _base_.two_stage_det,
    student=_base_.model,
    teacher=_base_.swin_t_in1k_teacher,
    student_channels=[256] * 5)
train_cfg = _base_.two_stage_det_train_cfg
custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
"""
SEG = """\
_base_ = [
    'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'mmprockd::_base_/teachers/swin-t_in1k.py',
    'mmprockd::_base_/recipes/two_stage_seg.py',
]
model = dict(
    _base_.two_stage_seg,
    student=_base_.model,
    teacher=dict(_base_.swin_t_in1k_teacher, input_scale=2.0),
    student_channels=[64, 128, 256, 512])
train_cfg = _base_.two_stage_seg_train_cfg
custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
"""
CLS = """\
_base_ = [
    'mmpretrain::resnet/resnet18_8xb16_cifar10.py',
    'mmprockd::_base_/teachers/mobilenetv2_in1k.py',
    'mmprockd::_base_/recipes/pkd_cls.py',
]
model = dict(
    _base_.pkd_cls,
    student=_base_.model,
    teacher=_base_.mobilenetv2_in1k_teacher,
    student_channels=[512])
custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
"""


def pair(student: str,
         teacher: str,
         recipe: str,
         channels: str,
         extra: str = '',
         teacher_base: str = '') -> str:
    """A pair's whole config, written like the docs' ones."""
    bases = [f"'{student}'"]
    if teacher_base:
        bases.append(f"'mmprockd::_base_/teachers/{teacher_base}'")
    bases.append(f"'mmprockd::_base_/recipes/{recipe}.py'")
    lines = ['_base_ = [', *[f'    {b},' for b in bases], ']']
    lines += [
        'model = dict(', f'    _base_.{recipe},', '    student=_base_.model,',
        f'    teacher={teacher},', f'    student_channels={channels}{extra})'
    ]
    if recipe.startswith('two_stage'):
        lines.append(f'train_cfg = _base_.{recipe}_train_cfg')
    lines.append('custom_hooks = [*_base_.get(\'custom_hooks\', []), '
                 '*_base_.prockd_hooks]')
    return '\n'.join(lines) + '\n'


OWN_CNN_TEACHER = (
    "dict(type='mmprockd.FrozenTeacher', "
    "backbone=dict(type='mmpretrain.ResNet', depth=18, out_indices=(1, 2, "
    "3)), layers=['layer2', 'layer3', 'layer4'])")

# name -> (config, family, KL on)
PAIRS = {
    'retinanet_fpn': (DET, 'det', True),
    'faster_rcnn': (pair(
        'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
        '_base_.mobilenetv2_in1k_teacher',
        'two_stage_det',
        '[256] * 5',
        teacher_base='mobilenetv2_in1k.py'), 'det', True),
    # a query detector takes no consistency KL
    'dino_no_kl':
    (pair('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
          '_base_.mobilenetv2_in1k_teacher', 'two_stage_det', '[256] * 4',
          ', kl_loss=None', 'mobilenetv2_in1k.py'), 'det', False),
    'pspnet_aux_head': (SEG, 'seg', True),
    'ocrnet_cascade': (pair(
        'mmseg::ocrnet/ocrnet_hr18s_4xb2-80k_cityscapes-512x1024.py',
        '_base_.mobilenetv2_in1k_teacher',
        'two_stage_seg',
        '[18, 36, 72, 144]',
        teacher_base='mobilenetv2_in1k.py'), 'seg', True),
    'segformer': (pair(
        'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
        '_base_.mobilenetv2_in1k_teacher',
        'two_stage_seg',
        '[32, 64, 160, 256]',
        teacher_base='mobilenetv2_in1k.py'), 'seg', True),
    'own_cnn_teacher': (pair('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
                             OWN_CNN_TEACHER, 'two_stage_det',
                             '[256] * 5'), 'det', True),
    'vit_teacher': (pair(
        'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
        '_base_.vit_b_in1k_teacher',
        'two_stage_seg',
        '[64, 128, 256, 512]',
        teacher_base='vit-b_in1k.py'), 'seg', True),
}


def own_lines(text: str) -> int:
    return sum(1 for line in text.splitlines()
               if line.strip() and not line.lstrip().startswith('#'))


def load(text: str, tmp_path, name: str = 'my_pair.py') -> Config:
    path = tmp_path / name
    path.write_text(text)
    return Config.fromfile(str(path))


# ------------------------------------------ reduced depth, width and size
def _reduce_student(student, family: str) -> None:
    student.pop('pretrained', None)
    backbone = student.backbone
    backbone.init_cfg = None
    backbone.pop('pretrained', None)
    if family == 'det':
        if backbone.type == 'ResNet':
            backbone.depth = 18
            in_channels = [64, 128, 256, 512]
            neck = student.neck
            neck.in_channels = in_channels[4 - len(neck.in_channels):]
        if 'roi_head' in student:
            student.roi_head.bbox_head.num_classes = 4
        else:
            student.bbox_head.num_classes = 4
        if student.type == 'DINO':
            student.num_queries = 20
            student.encoder.num_layers = 1
            student.decoder.num_layers = 1
            student.dn_cfg.group_cfg.num_dn_queries = 10
    else:
        student.data_preprocessor.size = (64, 64)
        heads = student.decode_head if isinstance(
            student.decode_head, list) else [student.decode_head]
        for head in heads + [student.get('auxiliary_head') or {}]:
            if head:
                head.num_classes = 4
                if head.get('type') == 'SegformerHead':
                    head.channels = 32


def _reduce_teacher(teacher) -> None:
    backbone = teacher.backbone
    if backbone.type == 'mmpretrain.SwinTransformer':
        backbone.arch = dict(
            embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1])
    elif backbone.type == 'mmpretrain.VisionTransformer':
        backbone.arch = dict(
            embed_dims=24, num_layers=12, num_heads=2, feedforward_channels=48)
    elif backbone.type == 'mmpretrain.MobileNetV2':
        backbone.widen_factor = 0.25


def reduced(cfg: Config, family: str) -> Config:
    make_offline(cfg.model)
    _reduce_student(cfg.model.student, family)
    _reduce_teacher(cfg.model.teacher)
    return cfg


def build(cfg: Config, family: str):
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    # what mmengine's Runner does with a top-level preprocessor
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def seg_batch(size: int = 64, num_classes: int = 4):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(
            torch.randint(
                0, 255, (3, size, size), dtype=torch.uint8, generator=g))
        s = SegDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size)))
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, size, size), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def cls_batch(size: int = 32):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randint(0, 255, (3, size, size), dtype=torch.uint8, generator=g)
        for _ in range(2)
    ]
    samples = [DataSample().set_gt_label(i) for i in range(2)]
    return dict(inputs=inputs, data_samples=samples)


BATCHES = {
    'det': lambda: det_batch(2, (64, 64), 4),
    'seg': seg_batch,
    'cls': cls_batch
}


def step(model, family: str) -> dict:
    """One loss step and its backward; the losses."""
    model.zero_grad(set_to_none=True)
    data = model.data_preprocessor(BATCHES[family](), True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    return losses


def grad_sum(module) -> float:
    return sum(
        float(p.grad.abs().sum()) for p in module.parameters()
        if p.grad is not None)


def schedule_hook(cfg: Config):
    [hook] = [
        h for h in cfg.custom_hooks
        if h['type'] == 'mmprockd.DistillScheduleHook'
    ]
    return HOOKS.build(copy.deepcopy(hook))


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
    assert ours.custom_hooks == flagship.custom_hooks
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
    for key in ('type', 'learner', 'augment', 'kl_loss', 'feat_loss'):
        assert cfg.model[key] == pkd.model[key], key
    assert cfg.model.learner is None and cfg.model.kl_loss is None
    assert cfg.model.feat_loss.loss_weight == 6.0
    proto = cfg.pkd_cls_prototypes
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


@pytest.mark.parametrize('name', list(PAIRS))
def test_pair_builds_and_steps_through_both_phases(name, tmp_path):
    text, family, kl = PAIRS[name]
    cfg = reduced(load(text, tmp_path), family)
    model = build(cfg, family)
    teacher = model.teacher
    assert not any(p.requires_grad for p in teacher.parameters())
    assert not {id(p)
                for p in teacher.parameters()
                } & {id(p)
                     for p in model.parameters()}
    if name == 'ocrnet_cascade':
        # the KL reads the last head of the cascade (OCRHead)
        assert model.iface.logit_head is model.student.decode_head[-1]
        assert type(model.iface.logit_head).__name__ == 'OCRHead'
    assert (model.kl_loss is not None) == kl
    branch = [model.learner, model.augment, model.branch_student]
    hook = schedule_hook(cfg)
    start = hook.student_start
    assert start > 0 and hook.branch_stop == start

    # the branch phase: the branch learns, the student stays as built
    model.train()
    model.student_paused = hook.student_paused_at(0, 0)
    model.branch_frozen = hook.branch_frozen_at(0, 0)
    assert model.student_paused and not model.branch_frozen
    losses = step(model, family)
    assert losses and all(k.startswith('distill.proto.') for k in losses)
    assert grad_sum(model.student) == 0
    assert all(grad_sum(m) > 0 for m in branch)
    assert not teacher.training

    # the student phase: the frozen branch teaches the student
    model.student_paused = hook.student_paused_at(start, start)
    model.branch_frozen = hook.branch_frozen_at(start, start)
    assert not model.student_paused and model.branch_frozen
    losses = step(model, family)
    assert any(k.startswith('student.') for k in losses)
    assert ('distill.loss_kl' in losses) == kl
    assert float(losses['distill.loss_branch_feat']) > 0
    assert grad_sum(model.student.backbone) > 0
    assert all(grad_sum(m) == 0 for m in branch)


@pytest.mark.parametrize('block', ['pkd_cls', 'pkd_cls_prototypes'])
def test_cls_config_builds_and_steps(block, tmp_path):
    text = CLS.replace('_base_.pkd_cls,', f'_base_.{block},')
    cfg = load(text, tmp_path)
    make_offline(cfg.model)
    _reduce_teacher(cfg.model.teacher)
    model = build(cfg, 'cls')
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
    model = build(cfg, 'det')
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
