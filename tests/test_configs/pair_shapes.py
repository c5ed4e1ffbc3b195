"""New student/teacher pairs written the way a downstream project writes
them, and what building and stepping one shows.

A pair's config is an upstream student base, a teacher base (or a teacher
of its own), one recipe base of ``configs/_base_/recipes`` and at most 15
lines of its own. :data:`PAIRS` holds the pair shapes; :func:`facts` builds
one at reduced depth, width and input size and steps it through both
phases of two-stage ProC-KD. ``test_recipe_bases.py`` imports this file;
run as a script (a downstream project's, against an installed mmprockd) it
prints the facts of the configs it is given as one JSON line::

    python pair_shapes.py retinanet_fpn.py:det pspnet_aux_head.py:seg
"""
import copy
import json
import sys

import mmprockd  # noqa: F401  (compat fixes before any model import)

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

# name -> (config, family, KL on). The shapes: a one-stage detector with
# a transformer teacher (RetinaNet, Swin), a two-stage detector (Faster
# R-CNN), an anchor-free detector with a CNN teacher of its own (FCOS,
# ResNet-18), a query detector (DINO), a segmenter without a neck
# (PSPNet), a cascade decode head (OCRNet), a transformer-backbone student
# (SegFormer) and a segmenter with an FPN neck under a ViT teacher
PAIRS = {
    'retinanet_fpn': (DET, 'det', True),
    'faster_rcnn': (pair(
        'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
        '_base_.mobilenetv2_in1k_teacher',
        'two_stage_det',
        '[256] * 5',
        teacher_base='mobilenetv2_in1k.py'), 'det', True),
    'fcos_own_cnn_teacher':
    (pair('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', OWN_CNN_TEACHER,
          'two_stage_det', '[256] * 5'), 'det', True),
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
    'fpn_neck_vit_teacher': (pair(
        'mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py',
        '_base_.vit_b_in1k_teacher',
        'two_stage_seg',
        '[256] * 4',
        teacher_base='vit-b_in1k.py'), 'seg', True),
}


def own_lines(text: str) -> int:
    return sum(1 for line in text.splitlines()
               if line.strip() and not line.lstrip().startswith('#'))


# ------------------------------------------ reduced depth, width and size
def _resnet18(student) -> None:
    """A ResNet-50 student's backbone at depth 18, its neck fitted."""
    if student.backbone.type.startswith('ResNet') and \
            student.backbone.depth != 18:
        student.backbone.depth = 18
        neck = student.neck
        neck.in_channels = [64, 128, 256, 512][4 - len(neck.in_channels):]


def _reduce_student(student, family: str) -> None:
    student.pop('pretrained', None)
    backbone = student.backbone
    backbone.init_cfg = None
    backbone.pop('pretrained', None)
    if family == 'det':
        _resnet18(student)
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
        if student.get('neck'):
            _resnet18(student)
        student.data_preprocessor.size = (64, 64)
        heads = student.decode_head if isinstance(
            student.decode_head, list) else [student.decode_head]
        for head in heads + [student.get('auxiliary_head') or {}]:
            if head:
                head.num_classes = 4
                if head.get('type') == 'SegformerHead':
                    head.channels = 32


def reduce_teacher(teacher) -> None:
    backbone = teacher.backbone
    if backbone.type == 'mmpretrain.SwinTransformer':
        backbone.arch = dict(
            embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1])
    elif backbone.type == 'mmpretrain.VisionTransformer':
        backbone.arch = dict(
            embed_dims=24, num_layers=12, num_heads=2, feedforward_channels=48)
    elif backbone.type == 'mmpretrain.MobileNetV2':
        backbone.widen_factor = 0.25


def reduced(cfg, family: str):
    from mmprockd.utils.offline import make_offline
    make_offline(cfg.model)
    _reduce_student(cfg.model.student, family)
    reduce_teacher(cfg.model.teacher)
    return cfg


def build(cfg):
    import torch
    from mmengine.registry import init_default_scope

    from mmprockd.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    # what mmengine's Runner does with a top-level preprocessor
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def batch(family: str) -> dict:
    """A tiny batch of the family: 2 images, 4 classes (detection and
    segmentation, 64 px) or labels 0 and 1 (classification, 32 px)."""
    from mmprockd.testing import cls_batch, det_batch, seg_batch
    if family == 'det':
        return det_batch(2, (64, 64), 4)
    if family == 'seg':
        return seg_batch(num_classes=4)
    return cls_batch([0, 1])


def step(model, family: str) -> dict:
    """One loss step and its backward; the losses."""
    import torch
    model.zero_grad(set_to_none=True)
    data = model.data_preprocessor(batch(family), True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total), losses
    total.backward()
    return losses


def grad_sum(module) -> float:
    return sum(
        float(p.grad.abs().sum()) for p in module.parameters()
        if p.grad is not None)


def schedule_hook(cfg):
    from mmprockd.registry import HOOKS
    [hook] = [
        h for h in cfg.custom_hooks
        if h['type'] == 'mmprockd.DistillScheduleHook'
    ]
    return HOOKS.build(copy.deepcopy(hook))


def _phase(model, hook, it: int, family: str) -> dict:
    model.student_paused = hook.student_paused_at(it, it)
    model.branch_frozen = hook.branch_frozen_at(it, it)
    losses = step(model, family)
    branch = [model.learner, model.augment, model.branch_student]
    return dict(
        student_paused=model.student_paused,
        branch_frozen=model.branch_frozen,
        # a list of terms (one per level) as parse_losses sums it
        losses={
            k: sum(float(x) for x in v) if isinstance(v, list) else float(v)
            for k, v in losses.items()
        },
        student_grad=grad_sum(model.student),
        student_backbone_grad=grad_sum(model.student.backbone),
        branch_grads=[grad_sum(m) for m in branch],
        teacher_training=model.teacher.training)


def facts(path: str, family: str) -> dict:
    """Build the pair of config file ``path`` reduced, and step it once in
    the branch phase (iteration 0) and once in the student phase (the
    schedule hook's ``student_start``)."""
    import torch
    from mmengine.config import Config
    cfg = reduced(Config.fromfile(path), family)
    model = build(cfg)
    teacher = model.teacher
    hook = schedule_hook(cfg)
    start = hook.student_start
    logit_head = model.iface.logit_head
    # a cascade's decode heads (a ModuleList): the KL reads the last one
    heads = getattr(model.student, 'decode_head', None)
    last = isinstance(heads, torch.nn.ModuleList) and logit_head is heads[-1]
    out = dict(
        file=cfg.filename,
        bases=cfg.text,
        teacher_trainable=sum(p.requires_grad for p in teacher.parameters()),
        teacher_in_model=len({id(p)
                              for p in teacher.parameters()}
                             & {id(p)
                                for p in model.parameters()}),
        logit_head=type(logit_head).__name__,
        logit_head_is_last_decode_head=last,
        kl=model.kl_loss is not None,
        student_start=start,
        branch_stop=hook.branch_stop)
    model.train()
    out['branch_phase'] = _phase(model, hook, 0, family)
    out['student_phase'] = _phase(model, hook, start, family)
    return out


def main(argv) -> None:
    """``PATH:FAMILY ...``: one JSON line, ``{PATH: facts}``, and where
    mmprockd was imported from."""
    import torch
    torch.set_num_threads(1)
    out = {}
    for item in argv:
        path, family = item.rsplit(':', 1)
        out[path] = facts(path, family)
    print(json.dumps(dict(mmprockd=mmprockd.__file__, pairs=out)))


if __name__ == '__main__':
    main(sys.argv[1:])
