"""The teacher sees its own input convention whatever the student's
preprocessor does: values by hand on a one-pixel image."""
import pytest
import torch
from mmengine.registry import init_default_scope
from test_proto_distiller import det_batch, tiny_cfg

from mmprockd.models.distillers import frozen_teacher as ft
from mmprockd.registry import MODELS

# one pixel as LoadImageFromFile gives it: B, G, R
BGR = (10.0, 100.0, 200.0)
RGB = BGR[::-1]
CAFFE_MEAN_BGR = [103.53, 116.28, 123.675]
IMNET_MEAN_BGR = list(ft.IMAGENET_MEAN[::-1])
IMNET_STD_BGR = list(ft.IMAGENET_STD[::-1])


def imagenet_rgb(pixel_rgb=RGB):
    """What an ImageNet RGB teacher was trained on, by hand."""
    return [(v - m) / s
            for v, m, s in zip(pixel_rgb, ft.IMAGENET_MEAN, ft.IMAGENET_STD)]


def teacher(**kwargs):
    cfg = dict(
        type='mmprockd.FrozenTeacher',
        backbone=dict(
            type='mmpretrain.MobileNetV2',
            widen_factor=0.25,
            out_indices=(2, )),
        layers=['layer3'])
    cfg.update(kwargs)
    return MODELS.build(cfg)


def student_input(pre_cfg, pixel=BGR):
    """The student's preprocessed batch of one 2x2 image of ``pixel``."""
    pre = MODELS.build(pre_cfg)
    img = torch.tensor(pixel).view(3, 1, 1).expand(3, 2, 2).clone()
    return pre, pre(dict(inputs=[img]), training=False)['inputs']


def pixel_of(x):
    return x[0, :, 0, 0].tolist()


# student preprocessors of mmdet, mmseg and mmpretrain, as their configs
# give them
DET = 'mmdet.DetDataPreprocessor'
CASES = {
    # mmdet's usual: ImageNet statistics, BGR -> RGB
    'imagenet_rgb':
    dict(
        type=DET,
        mean=list(ft.IMAGENET_MEAN),
        std=list(ft.IMAGENET_STD),
        bgr_to_rgb=True),
    # normalises in BGR (ImageNet statistics in BGR order, no swap)
    'imagenet_bgr':
    dict(type=DET, mean=IMNET_MEAN_BGR, std=IMNET_STD_BGR, bgr_to_rgb=False),
    # no normalisation at all: raw 0-255 BGR
    'raw_bgr':
    dict(type=DET, bgr_to_rgb=False),
    # caffe style: BGR, mean only
    'caffe':
    dict(type=DET, mean=CAFFE_MEAN_BGR, std=[1.0, 1.0, 1.0], bgr_to_rgb=False),
    # mmseg, other statistics, RGB
    'seg_rgb':
    dict(
        type='mmseg.SegDataPreProcessor',
        mean=[129.3, 124.1, 112.4],
        std=[68.2, 65.4, 70.4],
        bgr_to_rgb=True),
    # mmpretrain, BGR kept
    'cls_bgr':
    dict(
        type='mmpretrain.ClsDataPreprocessor',
        mean=[1.0, 2.0, 3.0],
        std=[4.0, 5.0, 6.0],
        to_rgb=False),
}


@pytest.mark.parametrize('case', list(CASES))
def test_teacher_gets_its_own_normalisation_of_the_image(case):
    pre, x = student_input(CASES[case])
    out = teacher().preprocess(x, pre)
    assert out.shape == x.shape
    assert pixel_of(out) == pytest.approx(imagenet_rgb(), abs=1e-5)


def test_students_that_swap_channels_see_other_values_than_the_teacher():
    """The cases above are not trivially equal: the student's own inputs
    differ from the teacher's for every case but the first."""
    want = imagenet_rgb()
    for case, cfg in CASES.items():
        _, x = student_input(cfg)
        same = pixel_of(x) == pytest.approx(want, abs=1e-5)
        assert same == (case == 'imagenet_rgb'), case


def test_same_convention_is_the_identity_and_passes_the_input_on():
    pre, x = student_input(CASES['imagenet_rgb'])
    t = teacher()
    assert t.bind_student(pre) == (None, None, None)
    assert t.preprocess(x, pre) is x


def test_convention_of_each_preprocessor_by_hand():
    pre, _ = student_input(CASES['caffe'])
    mean, std, flips = ft.student_input_convention(pre)
    assert mean.tolist() == pytest.approx(CAFFE_MEAN_BGR)
    assert std.tolist() == [1.0, 1.0, 1.0]
    assert flips is False
    pre, _ = student_input(CASES['raw_bgr'])
    assert ft.student_input_convention(pre) == (None, None, False)
    pre, _ = student_input(CASES['seg_rgb'])
    assert ft.student_input_convention(pre)[2] is True
    pre, _ = student_input(CASES['cls_bgr'])
    assert ft.student_input_convention(pre)[2] is False


def test_bgr_caffe_teacher_from_an_rgb_student():
    """A teacher trained on caffe-style BGR input (mean only)."""
    pre, x = student_input(CASES['imagenet_rgb'])
    t = teacher(mean=CAFFE_MEAN_BGR, std=[1.0, 1.0, 1.0], channel_order='bgr')
    want = [v - m for v, m in zip(BGR, CAFFE_MEAN_BGR)]  # -93.53, ...
    assert pixel_of(t.preprocess(x, pre)) == pytest.approx(want, abs=1e-3)


def test_rgb_source_data():
    """mmpretrain's CIFAR arrays are RGB already (no LoadImageFromFile):
    ``source_channel_order='rgb'`` with a student that does not swap."""
    cfg = dict(
        type='mmpretrain.ClsDataPreprocessor',
        mean=[129.3, 124.1, 112.4],
        std=[68.2, 65.4, 70.4],
        to_rgb=False)
    pre, x = student_input(cfg, pixel=RGB)
    out = teacher(source_channel_order='rgb').preprocess(x, pre)
    assert pixel_of(out) == pytest.approx(imagenet_rgb(), abs=1e-5)
    # without it, red and blue would be swapped
    wrong = teacher().preprocess(x, pre)
    assert pixel_of(wrong) == pytest.approx(
        imagenet_rgb(pixel_rgb=BGR), abs=1e-5)


def test_input_scale_after_the_conversion():
    pre, x = student_input(CASES['caffe'])
    out = teacher(input_scale=2.0).preprocess(x, pre)
    assert out.shape == (1, 3, 4, 4)
    assert pixel_of(out) == pytest.approx(imagenet_rgb(), abs=1e-5)


def test_teacher_convention_errors_name_the_key():
    with pytest.raises(ValueError, match='mean/std must be the normal'):
        teacher(mean=None, std=None)
    with pytest.raises(ValueError, match="channel_order must be one of"):
        teacher(channel_order='RGB')
    with pytest.raises(ValueError, match='source_channel_order'):
        teacher(source_channel_order='gray')
    with pytest.raises(ValueError, match='std > 0'):
        teacher(std=[1.0, 0.0, 1.0])


def test_unknown_student_preprocessor_fails_at_distiller_build():
    from mmengine.model import BaseDataPreprocessor
    from mmengine.registry import MODELS as ROOT

    @ROOT.register_module(force=True)
    class OpaquePreprocessor(BaseDataPreprocessor):
        pass

    init_default_scope('mmdet')
    cfg = tiny_cfg()
    cfg['student']['data_preprocessor'] = dict(type='OpaquePreprocessor')
    with pytest.raises(TypeError, match='OpaquePreprocessor'):
        MODELS.build(cfg)


def test_distiller_teacher_sees_its_own_normalisation_of_the_image():
    """End to end: a caffe-style BGR RetinaNet student; the input the
    teacher's backbone receives in a training step is ImageNet-RGB."""
    init_default_scope('mmdet')
    cfg = tiny_cfg()
    cfg['student']['data_preprocessor'] = dict(
        CASES['caffe'], type='DetDataPreprocessor', pad_size_divisor=32)
    model = MODELS.build(cfg)
    seen = []
    model.teacher.model.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0].clone()))
    batch = det_batch(2, (64, 64))
    batch['inputs'] = [
        torch.tensor(BGR).view(3, 1, 1).expand(3, 64, 64).clone()
        for _ in batch['inputs']
    ]
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    assert torch.isfinite(model.parse_losses(losses)[0])
    assert len(seen) == 1
    assert pixel_of(seen[0]) == pytest.approx(imagenet_rgb(), abs=1e-5)


def _upstream_det(name, **head):
    """An upstream mmdet student config, 4 classes, no pretrained
    weights, no batch augments (they resize at random)."""
    from mmengine.hub import get_config
    cfg = get_config(f'mmdet::{name}').model
    cfg.backbone.init_cfg = None
    cfg.data_preprocessor.pop('batch_augments', None)
    for key in ('bbox_head', 'roi_head'):
        if key in cfg:
            node = cfg[key] if key == 'bbox_head' else cfg[key].bbox_head
            node.num_classes = 4
    return cfg


@pytest.mark.parametrize(
    'name,want_pre',
    [
        # caffe style: BGR, mean only
        ('faster_rcnn/faster-rcnn_r50-caffe_fpn_1x_coco.py',
         dict(mean=CAFFE_MEAN_BGR, std=[1.0, 1.0, 1.0], flips=False)),
        # no normalisation: raw 0-255 BGR
        ('yolox/yolox_tiny_8xb8-300e_coco.py',
         dict(mean=None, std=None, flips=False)),
    ])
def test_upstream_students_teacher_sees_imagenet_rgb(name, want_pre):
    init_default_scope('mmdet')
    student = _upstream_det(name)
    probe = MODELS.build(student)
    mean, std, flips = ft.student_input_convention(probe.data_preprocessor)
    assert flips == want_pre['flips']
    if want_pre['mean'] is None:
        assert mean is None and std is None
    else:
        assert mean.tolist() == pytest.approx(want_pre['mean'])
        assert std.tolist() == pytest.approx(want_pre['std'])
    with torch.no_grad():
        channels = [
            f.shape[1] for f in probe.extract_feat(torch.zeros(1, 3, 64, 64))
        ]
    cfg = tiny_cfg(student=student, student_channels=channels)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    seen = []
    model.teacher.model.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0]))
    batch = det_batch(2, (64, 64), 4)
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    assert torch.isfinite(model.parse_losses(losses)[0])
    raw = torch.stack(batch['inputs']).float().flip(1)  # BGR -> RGB
    want = (raw - torch.tensor(ft.IMAGENET_MEAN).view(1, 3, 1, 1)) / \
        torch.tensor(ft.IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(seen[0][..., :64, :64], want)
