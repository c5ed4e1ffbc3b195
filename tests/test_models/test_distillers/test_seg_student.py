"""ProtoDistiller around an mmseg EncoderDecoder student (tiny, CPU).

A random-init MobileNetV2 (widen 0.25) teaches a ResNet-18-d8 student with an
FCN decode head (``in_index=3``) and an FCN auxiliary head (``in_index=2``)
on 64x64 inputs and 19 classes. Numbers are checked by hand: the per-pixel
KL with the ignore index, where gradients go, and that ``predict`` is the
student's own.
"""
import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from mmprockd.registry import MODELS

NUM_CLASSES = 19
IGNORE = 255
HW = (64, 64)

TEACHER = dict(
    type='mmprockd.FrozenTeacher',
    backbone=dict(
        type='mmpretrain.MobileNetV2', widen_factor=0.25, out_indices=(4, )),
    layers=['layer3', 'layer5'])

STUDENT = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=IGNORE,
        size=HW),
    backbone=dict(
        type='ResNetV1c',
        depth=18,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=dict(type='BN', requires_grad=True),
        contract_dilation=True),
    decode_head=dict(
        type='FCNHead',
        in_channels=512,
        in_index=3,
        channels=16,
        num_convs=1,
        concat_input=False,
        num_classes=NUM_CLASSES,
        ignore_index=IGNORE,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=256,
        in_index=2,
        channels=8,
        num_convs=1,
        concat_input=False,
        num_classes=NUM_CLASSES,
        ignore_index=IGNORE,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=ConfigDict(mode='whole'))

TEMPERATURE = 2.0
KL_WEIGHT = 3.0


def distiller_cfg(**overrides) -> dict:
    cfg = dict(
        type='mmprockd.ProtoDistiller',
        student=copy.deepcopy(STUDENT),
        teacher=copy.deepcopy(TEACHER),
        student_channels=[64, 128, 256, 512],
        # the levels the aux (in_index=2) and decode (in_index=3) heads read
        proto_levels=[2, 3],
        learner=dict(
            type='mmprockd.PrototypeLearner', channels=16, num_prototypes=8),
        augment=dict(type='mmprockd.TaskAdaptiveAugment'),
        proto_weight=1.0,
        kl_loss=dict(
            type='mmprockd.ConsistencyKLLoss',
            temperature=TEMPERATURE,
            loss_weight=KL_WEIGHT))
    cfg.update(overrides)
    return cfg


def build(**overrides):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    return MODELS.build(distiller_cfg(**overrides))


def seg_batch(num: int = 2, labels=None) -> dict:
    """Raw uint8 images and ``(1, H, W)`` label maps."""
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(1)
    inputs, samples = [], []
    for i in range(num):
        inputs.append(
            torch.randint(0, 255, (3, *HW), dtype=torch.uint8, generator=g))
        sample = SegDataSample(
            metainfo=dict(img_shape=HW, ori_shape=HW, pad_shape=HW))
        if labels is None:
            gt = torch.randint(0, NUM_CLASSES, (1, *HW), generator=g)
        else:
            gt = labels[i:i + 1].clone()
        sample.gt_sem_seg = PixelData(data=gt.long())
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def run_loss(model, batch):
    """Loss dict plus the logits the KL loss was given."""
    data = model.data_preprocessor(batch, True)
    seen = {}
    kl_forward = model.kl_loss.forward

    def spy(preds, targets, valid=None):
        seen.update(preds=preds, targets=targets, valid=valid)
        return kl_forward(preds, targets, valid)

    model.kl_loss.forward = spy
    try:
        losses = model(**data, mode='loss')
    finally:
        del model.kl_loss.forward
    return losses, seen


def kl_by_hand(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sum_c p log(p / q)`` per pixel, ``p`` from the prototype branch."""
    p = torch.softmax(target.detach() / TEMPERATURE, dim=1)
    q = torch.softmax(pred.detach() / TEMPERATURE, dim=1)
    return (p * (p.log() - q.log())).sum(1)  # (N, h, w)


def test_loss_keys_and_finite():
    model = build()
    losses, seen = run_loss(model, seg_batch())
    for key in ('student.decode.loss_ce', 'student.aux.loss_ce',
                'distill.proto.decode.loss_ce', 'distill.proto.aux.loss_ce',
                'distill.loss_kl'):
        assert key in losses, sorted(losses)
        assert torch.isfinite(losses[key])
    # the KL compares decode-head logits: (N, 19, H/8, W/8)
    assert seen['preds'][0].shape == (2, NUM_CLASSES, 8, 8)
    assert seen['targets'][0].shape == seen['preds'][0].shape


def test_prototype_branch_feeds_both_heads():
    """Levels 2 (aux) and 3 (decode) come from the prototype branch, the
    others are the student's own, detached."""
    model = build()
    data = model.data_preprocessor(seg_batch(), True)
    feats = model.iface.extract(data['inputs'])
    teacher_feats = model._teacher_features(data['inputs'])
    proto = model.prototype_branch(teacher_feats, feats)
    assert [f.shape for f in proto] == [f.shape for f in feats]
    for i in (0, 1):
        assert torch.equal(proto[i], feats[i]) and not proto[i].requires_grad
    for i in (2, 3):
        assert not torch.allclose(proto[i], feats[i])
        assert proto[i].requires_grad


def test_kl_single_valid_pixel_by_hand():
    """All pixels but one 8x8 block (one logit pixel) of one image are
    ignored: the KL is the KL at that logit pixel."""
    labels = torch.full((2, *HW), IGNORE, dtype=torch.long)
    labels[1, 8:16, 16:24] = 3  # logit pixel (1, 2) of image 1
    model = build()
    losses, seen = run_loss(model, seg_batch(labels=labels))
    kl = kl_by_hand(seen['preds'][0], seen['targets'][0])
    expected = KL_WEIGHT * TEMPERATURE**2 * kl[1, 1, 2]
    assert float(expected) > 0
    torch.testing.assert_close(losses['distill.loss_kl'], expected)
    assert seen['valid'][0].sum() == 1 and seen['valid'][0][1, 1, 2]


def test_distill_fraction_masks_follow_the_chosen_image():
    """With one image of two in the branch, the ignore mask is that
    image's: its single valid logit pixel gives the whole KL."""
    labels = torch.full((2, *HW), IGNORE, dtype=torch.long)
    labels[1, 8:16, 16:24] = 3  # logit pixel (1, 2) of image 1
    model = build(distill_fraction=0.5)
    model.distill_indices = lambda n: torch.tensor([1])
    losses, seen = run_loss(model, seg_batch(labels=labels))
    assert seen['preds'][0].shape == (1, NUM_CLASSES, 8, 8)
    assert seen['valid'][0].shape == (1, 8, 8)
    assert seen['valid'][0].sum() == 1 and seen['valid'][0][0, 1, 2]
    kl = kl_by_hand(seen['preds'][0], seen['targets'][0])
    torch.testing.assert_close(losses['distill.loss_kl'],
                               KL_WEIGHT * TEMPERATURE**2 * kl[0, 1, 2])


def test_kl_is_masked_mean_over_valid_pixels():
    """A random pattern of ignored 8x8 blocks: the loss is the mean of the
    hand KL over the blocks that are not ignored."""
    g = torch.Generator().manual_seed(3)
    block_ignored = torch.rand(2, 8, 8, generator=g) < 0.6
    labels = torch.randint(0, NUM_CLASSES, (2, *HW), generator=g)
    big = block_ignored.repeat_interleave(8, 1).repeat_interleave(8, 2)
    labels[big] = IGNORE
    model = build()
    losses, seen = run_loss(model, seg_batch(labels=labels))
    kl = kl_by_hand(seen['preds'][0], seen['targets'][0])
    valid = ~block_ignored
    assert torch.equal(seen['valid'][0], valid)
    expected = KL_WEIGHT * TEMPERATURE**2 * kl[valid].mean()
    torch.testing.assert_close(losses['distill.loss_kl'], expected)
    unmasked = KL_WEIGHT * TEMPERATURE**2 * kl.mean()
    assert not torch.allclose(losses['distill.loss_kl'], unmasked)


def test_gradients_reach_prototypes_never_teacher():
    model = build()
    model.train()
    assert not model.teacher.training
    assert all(not m.training for m in model.teacher.modules())
    losses, _ = run_loss(model, seg_batch())
    # the prototype branch alone trains the learner, augment and adapter
    losses['distill.proto.decode.loss_ce'].backward(retain_graph=True)
    assert model.learner.prototypes.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    # ... and never the student's backbone (its features are replaced or
    # detached in that branch)
    assert all(p.grad is None for p in model.student.backbone.parameters())
    model.zero_grad()
    total, _ = model.parse_losses(losses)
    total.backward()
    assert model.learner.prototypes.grad.abs().sum() > 0
    assert model.student.backbone.layer4[0].conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    # the teacher is not part of the state dict
    assert not any(
        k.startswith(('teacher', '_teacher')) for k in model.state_dict())


def test_kl_trains_student_not_prototype_branch():
    """``detach_target``: the KL's gradient reaches the student only."""
    model = build()
    losses, _ = run_loss(model, seg_batch())
    losses['distill.loss_kl'].backward()
    assert model.student.backbone.layer4[0].conv1.weight.grad.abs().sum() > 0
    assert model.learner.prototypes.grad is None or \
        model.learner.prototypes.grad.abs().sum() == 0


def test_predict_is_the_students():
    model = build()
    model.eval()
    data = model.data_preprocessor(seg_batch(), False)
    with torch.no_grad():
        ours = model(**copy.deepcopy(data), mode='predict')
        ref = model.student(**copy.deepcopy(data), mode='predict')
    for a, b in zip(ours, ref):
        assert torch.equal(a.seg_logits.data, b.seg_logits.data)
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)


def test_student_checkpoint_loads_in_plain_mmseg(tmp_path):
    from mmengine.runner import load_checkpoint

    from mmprockd.engine.hooks.student_checkpoint_hook import \
        StudentCheckpointHook
    model = build()
    model.eval()
    cfg = Config(dict(model=distiller_cfg(), default_scope='mmseg'))
    runner = SimpleNamespace(
        model=model,
        epoch=0,
        iter=9,
        work_dir=str(tmp_path),
        cfg=cfg,
        logger=SimpleNamespace(info=lambda msg: None),
        train_dataloader=SimpleNamespace(
            dataset=SimpleNamespace(metainfo=dict(classes=('a', )))))
    hook = StudentCheckpointHook(interval=10, by_epoch=False)
    hook.before_train(runner)
    hook.after_train_iter(runner, 9)
    ckpt = tmp_path / 'student_iter_10.pth'
    assert ckpt.exists()
    plain_cfg = Config.fromfile(str(tmp_path / 'student_config.py'))
    assert plain_cfg.model.type == 'EncoderDecoder'
    init_default_scope('mmseg')
    from mmseg.registry import MODELS as SEG_MODELS
    plain = SEG_MODELS.build(plain_cfg.model)
    load_checkpoint(plain, str(ckpt), map_location='cpu', strict=True)
    plain.eval()
    data = model.data_preprocessor(seg_batch(1), False)
    with torch.no_grad():
        a = plain(**copy.deepcopy(data), mode='tensor')
        b = model(**copy.deepcopy(data), mode='tensor')
    torch.testing.assert_close(a, b)


def test_clear_errors():
    with pytest.raises(KeyError, match='closest names'):
        bad = copy.deepcopy(TEACHER)
        bad['layers'] = ['layer3', 'layer55']
        build(teacher=bad)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        bad = copy.deepcopy(TEACHER)
        bad['ckpt'] = '/nonexistent/teacher.pth'
        build(teacher=bad)
    with pytest.raises(ValueError, match='proto_levels'):
        build(proto_levels=[4])
    # found at build, by a forward of the student on a zero image
    with pytest.raises(
            ValueError,
            match=r'student_channels=\[64, 128, 256, 256\], but the feature '
            r'levels of the student EncoderDecoder \(ResNetV1c backbone, no '
            r'neck\) have \[64, 128, 256, 512\] channels'):
        build(student_channels=[64, 128, 256, 256])


def test_ignore_mask_size_follows_logits():
    """Masks are built at the logits' size, whatever the label size."""
    model = build()
    labels = torch.zeros(1, 1, 64, 64, dtype=torch.long)
    labels[..., :32, :] = IGNORE
    samples = [SimpleNamespace(gt_sem_seg=PixelData(data=labels[0]))]
    (mask, ) = model.iface.ignore_masks(samples, [torch.zeros(1, 19, 16, 16)])
    assert mask.shape == (1, 16, 16)
    assert not mask[:, :8].any() and mask[:, 8:].all()
    # consistent with F.interpolate of the label map itself
    ref = F.interpolate(labels.float(), size=(16, 16), mode='nearest')
    assert torch.equal(mask, ref[:, 0] != IGNORE)


# ------------------------------------------------ SegDataPreProcessor + augs
class HideBottomHalf(torch.nn.Module):
    """Test-only batch augment: zero the bottom half of the images and mark
    it ignored in the labels (value-checkable)."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.value = value

    def forward(self, inputs, data_samples):
        h = inputs.shape[-2] // 2
        inputs = inputs.clone()
        inputs[..., h:, :] = self.value
        for sample in data_samples:
            sample.gt_sem_seg.data[..., h:, :] = IGNORE
        return inputs, data_samples


def _augmenting_preprocessor(batch_augments):
    # imported directly until mmprockd/models/__init__.py imports it
    from mmprockd.models.data_preprocessors import \
        SegDataPreProcessorWithAugments
    MODELS.register_module(
        'TestOnlyHideBottomHalf', module=HideBottomHalf, force=True)
    init_default_scope('mmseg')
    pre_cfg = dict(STUDENT['data_preprocessor'])
    pre_cfg.update(
        type='mmprockd.SegDataPreProcessorWithAugments',
        batch_augments=batch_augments)
    pre = MODELS.build(pre_cfg)
    assert isinstance(pre, SegDataPreProcessorWithAugments)
    return pre


def test_preprocessor_builds_and_applies_batch_augments():
    pre = _augmenting_preprocessor([
        dict(type='mmprockd.TestOnlyHideBottomHalf', value=-7.0),
        # a scoped type from another package resolves too
        dict(type='mmdet.BatchFixedSizePad', size=(64, 80), img_pad_value=5)
    ])
    from mmdet.models.data_preprocessors import BatchFixedSizePad
    assert isinstance(pre.batch_augments.augments[0], HideBottomHalf)
    assert isinstance(pre.batch_augments.augments[1], BatchFixedSizePad)
    assert len(list(pre.batch_augments.modules_)) == 2
    batch = seg_batch(2)
    raw = torch.stack(batch['inputs']).float()
    labels = torch.stack([s.gt_sem_seg.data for s in batch['data_samples']])
    out = pre(copy.deepcopy(batch), training=True)
    inputs = out['inputs']
    assert inputs.shape == (2, 3, 64, 80)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    expected_top = (raw[:, [2, 1, 0], :32] - mean) / std
    torch.testing.assert_close(inputs[..., :32, :64], expected_top)
    assert torch.all(inputs[..., 32:, :64] == -7.0)
    assert torch.all(inputs[..., 64:] == 5.0)
    for i, sample in enumerate(out['data_samples']):
        gt = sample.gt_sem_seg.data
        assert torch.equal(gt[..., :32, :], labels[i, ..., :32, :])
        assert torch.all(gt[..., 32:, :] == IGNORE)
    # test batches are not augmented (as in mmseg)
    out = pre(copy.deepcopy(batch), training=False)
    assert out['inputs'].shape == (2, 3, 64, 64)
    torch.testing.assert_close(out['inputs'], (raw[:, [2, 1, 0]] - mean) / std)


def test_preprocessor_without_augments_matches_mmseg():
    from mmseg.models.data_preprocessor import SegDataPreProcessor
    pre = _augmenting_preprocessor(None)
    assert pre.batch_augments is None
    cfg = dict(STUDENT['data_preprocessor'])
    cfg.pop('type')
    ref = SegDataPreProcessor(**cfg)
    batch = seg_batch(2)
    a = pre(copy.deepcopy(batch), training=True)['inputs']
    b = ref(copy.deepcopy(batch), training=True)['inputs']
    assert torch.equal(a, b)
    with pytest.raises(TypeError, match='batch_augments'):
        _augmenting_preprocessor([3])


def test_distiller_with_augmenting_preprocessor_masks_augmented_labels():
    """The distiller's preprocessor applies the augment; the KL then ignores
    the pixels that the augment marked."""
    pre_cfg = dict(STUDENT['data_preprocessor'])
    pre_cfg.update(
        type='mmprockd.SegDataPreProcessorWithAugments',
        batch_augments=[dict(type='mmprockd.TestOnlyHideBottomHalf')])
    _augmenting_preprocessor(None)  # registers the test augment
    student = copy.deepcopy(STUDENT)
    student['data_preprocessor'] = pre_cfg
    model = build(student=student)
    losses, seen = run_loss(model, seg_batch())
    valid = seen['valid'][0]
    assert valid[:, :4].all() and not valid[:, 4:].any()
    kl = kl_by_hand(seen['preds'][0], seen['targets'][0])
    expected = KL_WEIGHT * TEMPERATURE**2 * kl[:, :4].mean()
    torch.testing.assert_close(losses['distill.loss_kl'], expected)


def _norm_buffers(module: torch.nn.Module) -> dict:
    return {
        n: b.clone()
        for n, b in module.named_buffers()
        if 'running_' in n or 'num_batches_tracked' in n
    }


@pytest.mark.parametrize('head_grad', [True, False])
def test_branch_pass_leaves_student_bn_buffers_as_a_student_step(head_grad):
    """The prototype branch runs the student's heads (FCN: conv + BN) a
    second time in train mode. After a distillation step every BN buffer of
    the student must equal what a student-only step leaves: one more batch
    counted per step, running stats of the student's own features only."""
    student = copy.deepcopy(STUDENT)
    for head in ('decode_head', 'auxiliary_head'):
        student[head]['norm_cfg'] = dict(type='BN', requires_grad=True)
    model = build(student=student, proto_head_grad=head_grad)
    model.train()
    alone = copy.deepcopy(model.student).train()
    data = model.data_preprocessor(seg_batch(), True)
    before = _norm_buffers(model.student)
    assert before, 'the student must have BN buffers for this test'
    for step in (1, 2):
        alone.loss(data['inputs'], data['data_samples'])
        model.loss(data['inputs'], data['data_samples'])
        want, got = _norm_buffers(alone), _norm_buffers(model.student)
        assert got.keys() == want.keys()
        for name in want:
            assert torch.equal(got[name], want[name]), name
        heads = [n for n in got if 'head' in n and 'num_batches' in n]
        assert heads and all(int(got[n]) == step for n in heads)
    # the student's own pass does move the decode head's running mean
    moved = [
        n for n in before if 'decode_head' in n and 'running_mean' in n
        and not torch.equal(before[n], got[n])
    ]
    assert moved


def test_branch_cache_serves_a_branch_that_replaces_the_decode_level():
    """[ours] branch_cache for a segmentor. The decode head reads level 3
    only (``in_index=3``), so a frozen branch that replaces level 3 is a
    fixed function of the image: its logits and maps are stored, and a
    later step distils the same KL and branch-feature targets as a model
    without the store, without running the teacher. A branch at level 2,
    which the decode head does not read, cannot be cached."""
    student = copy.deepcopy(STUDENT)
    for head in ('decode_head', 'auxiliary_head'):
        student[head]['dropout_ratio'] = 0.0  # the same forward each run
    kwargs = dict(
        student=student,
        proto_levels=[3],
        branch_head='own',
        branch_feat_loss=dict(type='mmprockd.BranchMimicLoss'))
    assert build(**kwargs).iface.logit_levels(4) == [3]
    cached = build(branch_cache=dict(dtype='fp32'), **kwargs)
    plain = build(**kwargs)
    for m in (cached, plain):
        m.branch_frozen = True
        m.train()
    batch = seg_batch()
    for i, sample in enumerate(batch['data_samples']):
        sample.set_metainfo(dict(img_path=f'canvas_{i}.png'))
    teacher_calls = []
    real = cached.teacher.from_student_input
    cached.teacher.from_student_input = lambda x, *a: (
        teacher_calls.append(x.shape[0]) or real(x, *a))
    ref, _ = run_loss(plain, batch)
    first, _ = run_loss(cached, batch)
    second, seen = run_loss(cached, batch)
    assert teacher_calls == [2], 'the second step must come from the store'
    assert len(cached.branch_cache) == 2 and cached.branch_cache.hits == 2
    assert seen['targets'][0].shape == (2, NUM_CLASSES, 8, 8)
    for losses in (first, second):
        for key in ('distill.loss_kl', 'distill.loss_branch_feat'):
            assert losses[key].item() == pytest.approx(
                ref[key].item(), rel=1e-5, abs=1e-9), key
    assert second['distill.loss_kl'].item() > 0
    with pytest.raises(ValueError, match=r'the head reads \(\[3\] of 4\)'):
        build(branch_cache=dict(), **dict(kwargs, proto_levels=[2]))
