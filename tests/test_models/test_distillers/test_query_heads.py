"""Query-based students: MaskFormer-style segmentation heads get a
query-order-free consistency KL; DETR-family and learned-proposal detectors
refuse the KL at build and train with the prototype branch alone.

The students are the upstream mmseg/mmdet configs with only the class
count, the depth of the backbone and the input size changed."""
import pytest
import torch
from mmengine.hub import get_config
from mmengine.registry import init_default_scope

from mmprockd.models.distillers.student_interface import query_semantic_logits
from mmprockd.registry import MODELS
from mmprockd.testing import det_batch

# ImageNet RGB, the convention of the teacher and of these students
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
TEACHER = dict(
    type='mmprockd.FrozenTeacher',
    backbone=dict(
        type='mmpretrain.MobileNetV2', widen_factor=0.25, out_indices=(2, 4)),
    layers=['layer3', 'layer5'])
KL = dict(type='mmprockd.ConsistencyKLLoss')
MASKFORMER = 'maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py'


def test_query_semantic_logits_by_hand():
    # 1 image, 2 queries, 2 classes + "no object", a 1x2 map
    cls = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8,
                                                       0.1]]]))  # softmax
    masks = torch.tensor([[[[0.0, 2.0]], [[-2.0, 0.0]]]])
    s0, s2, sm2 = 0.5, torch.sigmoid(torch.tensor(2.0)).item(), \
        torch.sigmoid(torch.tensor(-2.0)).item()
    # pixel 0: query 0 mask 0.5, query 1 mask sigmoid(-2)
    want = [[0.5 * s0 + 0.1 * sm2, 0.5 * s2 + 0.1 * s0],
            [0.25 * s0 + 0.8 * sm2, 0.25 * s2 + 0.8 * s0]]
    out = query_semantic_logits(cls, masks, eps=0.0)
    assert out.shape == (1, 2, 1, 2)
    torch.testing.assert_close(out.exp()[0, :, 0], torch.tensor(want))
    # the order of the queries does not matter
    perm = query_semantic_logits(cls[:, [1, 0]], masks[:, [1, 0]], eps=0.0)
    torch.testing.assert_close(perm, out)


def seg_student(name):
    cfg = get_config(f'mmseg::{name}').model
    cfg.backbone.depth = 18
    cfg.backbone.init_cfg = None
    cfg.decode_head.in_channels = [64, 128, 256, 512]
    cfg.decode_head.num_classes = 4
    cfg.decode_head.loss_cls.class_weight = [1.0] * 4 + [0.1]
    cfg.data_preprocessor.size = (64, 64)
    return cfg


def seg_batch():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(
            torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8, generator=g))
        s = SegDataSample(
            metainfo=dict(
                img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, 4, (1, 64, 64), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def distiller(student, channels, kl_loss):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='mmprockd.ProtoDistiller',
            student=student,
            teacher=TEACHER,
            student_channels=channels,
            learner=dict(
                type='mmprockd.PrototypeLearner',
                channels=16,
                num_prototypes=6),
            kl_loss=kl_loss))
    model.init_weights()
    return model


def step_and_check_teacher_input(model, batch):
    """One loss step; the teacher's input must be its own ImageNet-RGB
    normalisation of the BGR images of the batch."""
    seen = []
    hook = model.teacher.model.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0]))
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    hook.remove()
    raw = torch.stack(batch['inputs']).float().flip(1)  # BGR -> RGB
    want = (raw - torch.tensor(MEAN).view(
        1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    h, w = raw.shape[-2:]  # the rest is padding
    torch.testing.assert_close(seen[0][..., :h, :w], want)
    return losses


def test_maskformer_student_steps_with_the_semantic_kl():
    init_default_scope('mmseg')
    model = distiller(seg_student(MASKFORMER), [64, 128, 256, 512], KL)
    assert model.iface.query_masks and model.iface.kl_unsupported is None
    losses = step_and_check_teacher_input(model, seg_batch())
    kl = losses['distill.loss_kl']
    assert torch.isfinite(kl) and kl.item() > 0
    assert any(k.startswith('distill.proto.decode.') for k in losses)
    kl.backward()
    # the KL's target is detached: it trains the student's head only
    assert model.student.decode_head.cls_embed.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.learner.parameters())


@pytest.mark.parametrize('cfg,head', [
    ('detr/detr_r18_8xb2-500e_coco.py', 'DETRHead'),
    ('deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
     'DeformableDETRHead'),
    ('sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py', 'EmbeddingRPNHead'),
])
def test_query_detectors_refuse_the_kl_at_build(cfg, head):
    init_default_scope('mmdet')
    student = get_config(f'mmdet::{cfg}').model
    student.backbone.init_cfg = None
    with pytest.raises(ValueError) as err:
        distiller(student, [256], KL)
    msg = str(err.value)
    assert head in msg and 'kl_loss=None' in msg
    assert 'query i' in msg and 'distill.proto' in msg


def test_detr_student_trains_with_the_branch_alone():
    init_default_scope('mmdet')
    student = get_config('mmdet::detr/detr_r18_8xb2-500e_coco.py').model
    student.backbone.init_cfg = None
    student.bbox_head.num_classes = 4
    model = distiller(student, [256], None)
    losses = step_and_check_teacher_input(model, det_batch(2, (64, 64), 4))
    assert 'distill.loss_kl' not in losses
    proto = losses['distill.proto.loss_cls']
    assert torch.isfinite(proto)
    proto.backward()
    assert model.learner.prototypes.grad.abs().sum() > 0
