"""LogitKDDistiller: KD from a frozen trained model of the student's task
(stage 2 of the probe-then-distil baseline, docs/benchmark.md).

Tiny random-init classifiers and RetinaNets on the CPU: the KL is checked by
hand against the two models' own logits, the frozen model must stay frozen
(no gradient, unchanged weights, eval mode, not saved), the student must
start as it does alone, and bad inputs fail at build or at the first step
with the reason.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmprockd.engine.student_export import student_config
from mmprockd.registry import MODELS

PRE = dict(
    type='mmpretrain.ClsDataPreprocessor',
    num_classes=10,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)


def classifier(backbone: dict, channels: int, num_classes: int = 10) -> dict:
    return dict(
        type='mmpretrain.ImageClassifier',
        data_preprocessor=PRE,
        backbone=backbone,
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        head=dict(
            type='mmpretrain.LinearClsHead',
            num_classes=num_classes,
            in_channels=channels,
            loss=dict(type='mmpretrain.CrossEntropyLoss', loss_weight=1.0)))


STUDENT = classifier(
    dict(
        type='mmpretrain.ResNet',
        depth=18,
        stem_channels=8,
        base_channels=8,
        out_indices=(3, )), 64)
# the "probe": another architecture with the same head layout
TEACHER = classifier(
    dict(type='mmpretrain.MobileNetV2', widen_factor=0.25, out_indices=(6, )),
    80)


def save_teacher(path, cfg=TEACHER, seed=1):
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict()), path)
    return model


def distiller(ckpt, **kwargs):
    cfg = dict(
        type='mmprockd.LogitKDDistiller',
        student=copy.deepcopy(STUDENT),
        teacher=copy.deepcopy(TEACHER),
        teacher_ckpt=str(ckpt),
        kl_loss=dict(
            type='mmprockd.ConsistencyKLLoss',
            temperature=4.0,
            loss_weight=0.5))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def cls_batch(model, n=3):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8, generator=g)
        for _ in range(n)
    ]
    samples = [DataSample().set_gt_label(i % 10) for i in range(n)]
    return model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)


@pytest.fixture(autouse=True)
def scope():
    init_default_scope('mmprockd')


def test_kl_by_hand_and_the_frozen_model_stays_frozen(tmp_path):
    ckpt = tmp_path / 'probe.pth'
    reference = save_teacher(ckpt).eval()
    model = distiller(ckpt)
    model.train()
    teacher = model.teacher
    assert not teacher.training and all(not p.requires_grad
                                        for p in teacher.parameters())
    # loaded strictly from the checkpoint, and outside the module tree
    for (k, v), (k2, v2) in zip(teacher.state_dict().items(),
                                reference.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert not any(
        k.startswith('teacher') or '_teacher' in k for k in model.state_dict())
    assert all(k.startswith('student.') for k in model.state_dict())

    data = cls_batch(model)
    inputs, samples = data['inputs'], data['data_samples']
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'student.loss', 'distill.loss_kl'}

    # by hand: 0.5 * T^2 * mean_n sum_c p_t (log p_t - log p_s), T = 4
    with torch.no_grad():
        s = model.student.head(
            model.student.neck(model.student.backbone(inputs)))
        t = reference.head(reference.neck(reference.backbone(inputs)))
    log_ps, log_pt = F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1)
    by_hand = 0.5 * 16 * (log_pt.exp() * (log_pt - log_ps)).sum(1).mean()
    assert torch.allclose(losses['distill.loss_kl'], by_hand, rtol=1e-5)
    assert by_hand > 0

    before = [p.clone() for p in teacher.parameters()]
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    losses['distill.loss_kl'].backward()
    grads = [p.grad for p in model.student.backbone.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    optim.step()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    # the teacher's BN statistics are the checkpoint's, whatever the mode
    model.train()
    model(inputs, samples, mode='loss')
    for (k, v), v2 in zip(teacher.state_dict().items(),
                          reference.state_dict().values()):
        assert torch.equal(v, v2), k


def test_student_starts_as_it_does_alone_and_predicts_alone(tmp_path):
    ckpt = tmp_path / 'probe.pth'
    save_teacher(ckpt)
    torch.manual_seed(7)
    alone = MODELS.build(copy.deepcopy(STUDENT))
    alone.init_weights()
    torch.manual_seed(7)
    model = distiller(ckpt)
    model.init_weights()
    for (k, v), v2 in zip(model.student.state_dict().items(),
                          alone.state_dict().values()):
        assert torch.equal(v, v2), k
    data = cls_batch(model, n=2)
    model.eval()
    alone.eval()
    got = model(data['inputs'], data['data_samples'], mode='predict')
    want = alone(data['inputs'], data['data_samples'], mode='predict')
    assert torch.equal(got[0].pred_score, want[0].pred_score)


def test_a_copy_shares_the_frozen_model_and_copies_the_student(tmp_path):
    """EMAHook's deep copy: one frozen model in memory, the student copied
    (equal values in separate storage), and the copy still distils."""
    ckpt = tmp_path / 'probe.pth'
    save_teacher(ckpt)
    model = distiller(ckpt)
    twin = copy.deepcopy(model)
    assert twin.teacher is model.teacher
    ours, theirs = model.student.state_dict(), twin.student.state_dict()
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k
        assert ours[k].data_ptr() != theirs[k].data_ptr(), k
    data = cls_batch(twin)
    losses = twin(data['inputs'], data['data_samples'], mode='loss')
    assert losses['distill.loss_kl'].item() > 0


def test_distill_and_kl_scales_multiply_the_kl(tmp_path):
    ckpt = tmp_path / 'probe.pth'
    save_teacher(ckpt)
    model = distiller(ckpt)
    data = cls_batch(model)
    full = model(data['inputs'], data['data_samples'], mode='loss')
    model.distill_scale, model.kl_scale = 0.5, 0.5
    quarter = model(data['inputs'], data['data_samples'], mode='loss')
    assert torch.allclose(quarter['distill.loss_kl'],
                          0.25 * full['distill.loss_kl'])


def test_unlabelled_images_are_distilled_not_classified(tmp_path):
    """[ours] An image with the label -1 (a transfer-set image) is in the
    KL, not in the cross-entropy: by hand on three images, one labelled."""
    ckpt = tmp_path / 'probe.pth'
    reference = save_teacher(ckpt).eval()
    model = distiller(ckpt)
    data = cls_batch(model)
    inputs, samples = data['inputs'], data['data_samples']
    samples[0].set_gt_label(-1)
    samples[2].set_gt_label(-1)
    losses = model(inputs, samples, mode='loss')
    with torch.no_grad():
        s = model.student.head(
            model.student.neck(model.student.backbone(inputs)))
        t = reference.head(reference.neck(reference.backbone(inputs)))
    torch.testing.assert_close(losses['student.loss'],
                               F.cross_entropy(s[[1]], torch.tensor([1])))
    log_ps, log_pt = F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1)
    by_hand = 0.5 * 16 * (log_pt.exp() * (log_pt - log_ps)).sum(1).mean()
    torch.testing.assert_close(losses['distill.loss_kl'], by_hand)


def test_unlabelled_pass_leaves_a_bn_necks_buffers_to_the_labelled_images():
    """The unlabelled images' neck-and-head pass keeps the norm buffers: a
    BN neck counts one step and holds the statistics of the labelled
    images alone, as a step on them alone gives."""
    from mmprockd.models.distillers.student_interface import StudentInterface
    cfg = copy.deepcopy(STUDENT)
    cfg['neck'] = dict(
        type='mmpretrain.LinearNeck',
        in_channels=64,
        out_channels=16,
        gap_dim=2,
        norm_cfg=dict(type='BN1d'))
    cfg['head']['in_channels'] = 16
    torch.manual_seed(0)
    mixed = MODELS.build(cfg).train()
    alone = copy.deepcopy(mixed)
    data = cls_batch(mixed, n=4)
    inputs, samples = data['inputs'], data['data_samples']
    samples[1].set_gt_label(-1)
    samples[3].set_gt_label(-1)
    with torch.no_grad():
        feats = tuple(mixed.backbone(inputs))
    losses, logits = StudentInterface(mixed,
                                      'cls').loss(inputs, feats, samples)
    keep = [0, 2]
    ref_losses, _ = StudentInterface(alone,
                                     'cls').loss(inputs[keep],
                                                 tuple(f[keep] for f in feats),
                                                 [samples[i] for i in keep])
    torch.testing.assert_close(losses['loss'], ref_losses['loss'])
    bn, ref = mixed.neck.norm, alone.neck.norm
    assert int(bn.num_batches_tracked) == 1
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)
    assert logits[0].shape == (4, 10)


def test_teacher_input_scale_resizes_what_the_frozen_model_sees(tmp_path):
    ckpt = tmp_path / 'probe.pth'
    reference = save_teacher(ckpt).eval()
    model = distiller(ckpt, teacher_input_scale=2.0)
    seen = []
    model.teacher.backbone.register_forward_hook(
        lambda m, args, out: seen.append(args[0]))
    data = cls_batch(model)
    inputs, samples = data['inputs'], data['data_samples']
    losses = model(inputs, samples, mode='loss')
    # the frozen model got the 32 px batch at 64 px, bilinearly resized
    big = F.interpolate(
        inputs, scale_factor=2.0, mode='bilinear', align_corners=False)
    assert seen[0].shape == (3, 3, 64, 64)
    assert torch.equal(seen[0], big)
    with torch.no_grad():
        s = model.student.head(
            model.student.neck(model.student.backbone(inputs)))
        t = reference.head(reference.neck(reference.backbone(big)))
        t_small = reference.head(reference.neck(reference.backbone(inputs)))
    log_ps, log_pt = F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1)
    by_hand = 0.5 * 16 * (log_pt.exp() * (log_pt - log_ps)).sum(1).mean()
    assert torch.allclose(losses['distill.loss_kl'], by_hand, rtol=1e-5)
    # and it is not what the frozen model says at the student's size
    assert not torch.allclose(t, t_small, rtol=1e-3)
    # a feature target would be on another grid; a scale must be positive
    feat = dict(type='mmprockd.BranchMimicLoss', loss_weight=1.0)
    with pytest.raises(ValueError, match='feat_loss needs'):
        distiller(ckpt, teacher_input_scale=2.0, feat_loss=feat)
    with pytest.raises(ValueError, match='teacher_input_scale must be'):
        distiller(ckpt, teacher_input_scale=0)


def test_bad_inputs_name_what_is_wrong(tmp_path):
    ckpt = tmp_path / 'probe.pth'
    save_teacher(ckpt)
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        distiller(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        distiller(ckpt, teacher=str(tmp_path / 'no_such_config.py'))
    # normalised differently: the frozen model would see the wrong image
    other = copy.deepcopy(TEACHER)
    other['data_preprocessor'] = dict(PRE, mean=[0, 0, 0], std=[1, 1, 1])
    with pytest.raises(ValueError, match='preprocesses its input'):
        distiller(ckpt, teacher=other)
    # weights of another model: strict loading names the keys
    wrong = tmp_path / 'wrong.pth'
    torch.save(
        dict(state_dict=MODELS.build(copy.deepcopy(STUDENT)).state_dict()),
        wrong)
    with pytest.raises(RuntimeError, match='backbone'):
        distiller(wrong)
    # another label space: refused at the first step, with both shapes
    five = classifier(TEACHER['backbone'], 80, num_classes=5)
    five_ckpt = tmp_path / 'five.pth'
    save_teacher(five_ckpt, five)
    model = distiller(five_ckpt, teacher=five)
    data = cls_batch(model)
    with pytest.raises(ValueError, match=r'\(3, 5\).*\(3, 10\)'):
        model(data['inputs'], data['data_samples'], mode='loss')


def test_teacher_from_a_config_file_and_student_export(tmp_path):
    ckpt = tmp_path / 'probe.pth'
    save_teacher(ckpt)
    path = tmp_path / 'probe_cfg.py'
    Config(dict(model=TEACHER)).dump(str(path))
    model = distiller(ckpt, teacher=str(path))
    assert type(model.teacher.backbone).__name__ == 'MobileNetV2'
    cfg = Config(
        dict(
            model=dict(
                type='mmprockd.LogitKDDistiller',
                student=STUDENT,
                teacher=str(path),
                teacher_ckpt=str(ckpt),
                kl_loss=dict(type='mmprockd.ConsistencyKLLoss')),
            custom_hooks=[dict(type='mmprockd.DistillScheduleHook')]))
    plain = student_config(cfg)
    assert plain.model.type == 'mmpretrain.ImageClassifier'
    assert plain.custom_hooks == []


def retinanet_pair():
    """A tiny RetinaNet student (ResNet-18) and a RetinaNet "probe" on
    another backbone (MobileNetV2) with the same 5-level FPN width and head,
    in mmdet's scope."""
    from mmengine.hub import get_config
    init_default_scope('mmdet')
    base = get_config('mmdet::_base_/models/retinanet_r50_fpn.py').model
    head = dict(
        base.bbox_head,
        num_classes=3,
        in_channels=16,
        feat_channels=16,
        stacked_convs=1)
    student = dict(
        base,
        backbone=dict(base.backbone, depth=18, base_channels=8, init_cfg=None),
        neck=dict(base.neck, in_channels=[8, 16, 32, 64], out_channels=16),
        bbox_head=head)
    teacher = dict(
        base,
        backbone=dict(
            type='mmpretrain.MobileNetV2',
            widen_factor=0.25,
            out_indices=(2, 4, 6)),
        neck=dict(
            base.neck,
            in_channels=[8, 24, 80],
            out_channels=16,
            start_level=0,
            add_extra_convs='on_input'),
        bbox_head=head)
    return student, teacher


def test_dense_detector_bernoulli_kl_per_anchor(tmp_path):
    """A RetinaNet student and a RetinaNet "probe" on another backbone:
    the sigmoid KL over every anchor and class, per-level mean."""
    from mmprockd.testing import det_batch
    student, teacher = retinanet_pair()
    ckpt = tmp_path / 'probe.pth'
    save_teacher(ckpt, teacher)
    model = distiller(
        ckpt,
        student=student,
        teacher=teacher,
        kl_loss=dict(type='mmprockd.ConsistencyKLLoss', loss_weight=1.0))
    assert model.kl_loss.kind == 'sigmoid'
    data = model.data_preprocessor(det_batch(2, (64, 64), 3), True)
    inputs, samples = data['inputs'], data['data_samples']
    losses = model(inputs, samples, mode='loss')
    with torch.no_grad():
        s = model.student.bbox_head(model.student.extract_feat(inputs))[0]
        t = model.teacher.bbox_head(model.teacher.extract_feat(inputs))[0]
    levels = []
    for sl, tl in zip(s, t):
        p = tl.sigmoid()
        q = sl.sigmoid()
        kl = p * (p.log() - q.log()) + (1 - p) * ((1 - p).log() -
                                                  (1 - q).log())
        # summed over the anchors x classes of a cell, mean over cells
        levels.append(kl.sum(1).mean())
    by_hand = torch.stack(levels).mean()
    assert len(s) == 5
    assert torch.allclose(losses['distill.loss_kl'], by_hand, rtol=1e-4)


def test_feature_pkd_from_the_frozen_models_neck(tmp_path):
    """[ours] feat_loss: PKD between the student's FPN maps and the frozen
    probe's of the same shapes, by hand; it trains the student's neck and
    leaves the frozen model without gradient."""
    from mmprockd.models.losses.feature_mimic_loss import pkd_standardise
    from mmprockd.testing import det_batch
    student, teacher = retinanet_pair()
    ckpt = tmp_path / 'probe.pth'
    save_teacher(ckpt, teacher)
    model = distiller(
        ckpt,
        student=student,
        teacher=teacher,
        kl_loss=dict(type='mmprockd.ConsistencyKLLoss', loss_weight=1.0),
        feat_loss=dict(type='mmprockd.BranchMimicLoss', loss_weight=2.0))
    data = model.data_preprocessor(det_batch(2, (64, 64), 3), True)
    inputs, samples = data['inputs'], data['data_samples']
    model.distill_scale = 0.5
    losses = model(inputs, samples, mode='loss')
    with torch.no_grad():
        s = model.student.extract_feat(inputs)
        t = model.teacher.extract_feat(inputs)
    assert len(s) == len(t) == 5
    by_hand = 0.5 * 2.0 * sum(
        F.mse_loss(pkd_standardise(a), pkd_standardise(b)) / 2
        for a, b in zip(s, t))
    assert losses['distill.loss_feat'].item() == pytest.approx(
        by_hand.item(), rel=1e-5)
    losses['distill.loss_feat'].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.student.neck.parameters())
    assert all(p.grad is None for p in model.student.bbox_head.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())
