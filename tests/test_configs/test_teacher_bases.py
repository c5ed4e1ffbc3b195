"""Every teacher base is complete and replaceable: it builds
(random weights, no download), states its own input convention, and its
layers give maps, not pooled vectors; a pooled 1x1 layer is refused at
build."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmprockd.registry import MODELS
from mmprockd.utils import get_config_path

# base -> (variable, channels, map side on a 224 input)
BASES = {
    'mobilenetv2_in1k.py': ('mobilenetv2_in1k_teacher', [32, 96,
                                                         320], [28, 14, 7]),
    'swin-t_in1k.py': ('swin_t_in1k_teacher', [192, 384, 768], [28, 14, 7]),
    'vit-b_in1k.py': ('vit_b_in1k_teacher', [768] * 3, [14] * 3),
    'convnext-t_in1k.py': ('convnext_t_in1k_teacher', [192, 384,
                                                       768], [28, 14, 7]),
    'resnet50_in1k.py': ('resnet50_in1k_teacher', [512, 1024,
                                                   2048], [28, 14, 7]),
}


def _teacher_cfg(base):
    cfg = Config.fromfile(get_config_path(f'_base_/teachers/{base}'))
    var = BASES[base][0]
    assert list(cfg.keys()) == [var]  # one variable, nothing that leaks
    return cfg[var]


@pytest.mark.parametrize('base', list(BASES))
def test_teacher_base_builds_and_gives_maps(base):
    _, channels, sides = BASES[base]
    cfg = _teacher_cfg(base)
    assert cfg.type == 'mmprockd.FrozenTeacher'
    assert cfg.ckpt  # a real checkpoint is named
    assert cfg.mean == [123.675, 116.28, 103.53]
    assert cfg.std == [58.395, 57.12, 57.375]
    assert cfg.channel_order == 'rgb'
    init_default_scope('mmpretrain')
    teacher = MODELS.build(dict(cfg, ckpt=None))
    feats = teacher(torch.zeros(1, 3, 224, 224))
    assert [f.shape[1] for f in feats] == channels
    assert [tuple(f.shape[-2:]) for f in feats] == [(s, s) for s in sides]
    assert all(f.dtype == torch.float32 for f in feats)


def test_pooled_teacher_layers_are_refused_at_build():
    """ConvNeXt as mmpretrain's classifier builds it pools before norm1..3:
    1x1 maps with no parts; the distiller says so before any data."""
    teacher = _teacher_cfg('convnext-t_in1k.py')
    teacher.backbone.gap_before_final_norm = True
    student = dict(
        type='mmpretrain.ImageClassifier',
        data_preprocessor=dict(
            type='mmpretrain.ClsDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True),
        backbone=dict(type='mmpretrain.ResNet', depth=18, out_indices=(3, )),
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        head=dict(
            type='mmpretrain.LinearClsHead', num_classes=4, in_channels=512))
    init_default_scope('mmpretrain')
    with pytest.raises(ValueError) as err:
        MODELS.build(
            dict(
                type='mmprockd.ProtoDistiller',
                student=student,
                teacher=dict(teacher, ckpt=None),
                student_channels=[512],
                learner=dict(
                    type='mmprockd.PrototypeLearner',
                    channels=16,
                    num_prototypes=4)))
    msg = str(err.value)
    assert "['norm1 (192 x 1 x 1)', 'norm2 (384 x 1 x 1)'" in msg
    assert 'gap_before_final_norm=False' in msg
