"""Students nobody configured: upstream mmdet/mmseg configs with
only the class count, the backbone depth and the input size changed build
under a ProtoDistiller with the consistency KL, run a loss step, and their
teacher sees its own ImageNet-RGB normalisation of the BGR images.

(Query-based students: ``test_query_heads.py``; caffe-style Faster R-CNN
and unnormalised YOLOX: ``test_teacher_input.py``; RTMDet composed with our
bases: ``tests/test_configs/test_compose.py``.)"""
import pytest
import torch
from mmengine.hub import get_config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from test_proto_distiller import det_batch, tiny_cfg
from test_query_heads import seg_batch, step_and_check_teacher_input

from mmprockd.registry import MODELS


def _no_pretrained(cfg):
    cfg.backbone.init_cfg = None
    cfg.backbone.pop('pretrained', None)
    cfg.pop('pretrained', None)
    return cfg


def _distiller(student, size):
    """The student's channels probed on a zero image, then the tiny
    distiller of ``test_proto_distiller`` around it."""
    probe = revert_sync_batchnorm(MODELS.build(student))
    with torch.no_grad():
        feats = probe.extract_feat(torch.zeros(1, 3, size, size))
    cfg = tiny_cfg(
        student=student, student_channels=[f.shape[1] for f in feats])
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg))
    model.init_weights()
    return model


DET = {
    # caffe style (BGR, mean only), GN head, sigmoid scores
    'fcos': ('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', 'sigmoid', 64),
    'atss': ('atss/atss_r50_fpn_1x_coco.py', 'sigmoid', 64),
    # softmax scores over C + 1 per anchor; SSD300 needs its 300 px
    'ssd': ('ssd/ssd300_coco.py', 'softmax', 300),
}


@pytest.mark.parametrize('family', list(DET))
def test_upstream_detector_steps_with_the_kl(family):
    name, kind, size = DET[family]
    init_default_scope('mmdet')
    student = _no_pretrained(get_config(f'mmdet::{name}').model)
    student.bbox_head.num_classes = 4
    model = _distiller(student, size)
    assert model.kl_loss.kind == kind
    losses = step_and_check_teacher_input(model, det_batch(2, (size, size), 4))
    kl = losses['distill.loss_kl']
    assert torch.isfinite(kl) and kl.item() >= 0
    assert any(k.startswith('distill.proto.') for k in losses)


SEG = {
    'deeplabv3plus':
    'deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'mask2former':
    'mask2former/mask2former_r50_8xb2-90k_cityscapes-'
    '512x1024.py',
}


@pytest.mark.parametrize('family', list(SEG))
def test_upstream_segmentor_steps_with_the_kl(family):
    init_default_scope('mmseg')
    student = _no_pretrained(get_config(f'mmseg::{SEG[family]}').model)
    student.data_preprocessor.size = (64, 64)
    if family == 'mask2former':
        student.backbone.depth = 18
        student.decode_head.in_channels = [64, 128, 256, 512]
        student.decode_head.num_classes = 4
        student.decode_head.loss_cls.class_weight = [1.0] * 4 + [0.1]
    else:
        student.decode_head.num_classes = 4
        student.auxiliary_head.num_classes = 4
    model = _distiller(student, 64)
    assert model.iface.query_masks == (family == 'mask2former')
    losses = step_and_check_teacher_input(model, seg_batch())
    kl = losses['distill.loss_kl']
    assert torch.isfinite(kl) and kl.item() > 0
