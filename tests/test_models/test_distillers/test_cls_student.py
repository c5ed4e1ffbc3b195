"""ProtoDistiller around an mmpretrain ImageClassifier student (tiny, CPU).

A random-init MobileNetV2 (widen 0.25) teaches a CIFAR ResNet-18 or a tiny
ViT (``out_type='featmap'``); both pool in the neck
(``GlobalAveragePooling``), so the prototype branch replaces the backbone
maps before the pooling. The KL on logits is checked by hand with logits set
through the head, and the prototype-branch loss is the CE of those logits.
"""
import copy
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmprockd.registry import MODELS

NUM_CLASSES = 10
TEMPERATURE = 4.0
KL_WEIGHT = 10.0  # the authors' "ratio10"

TEACHER = dict(
    type='mmprockd.FrozenTeacher',
    backbone=dict(
        type='mmpretrain.MobileNetV2', widen_factor=0.25, out_indices=(4, )),
    layers=['layer3', 'layer5'],
    # the teacher sees 128x128 while the student sees 32x32 CIFAR images
    input_scale=4.0)

PREPROCESSOR = dict(
    type='ClsDataPreprocessor',
    num_classes=NUM_CLASSES,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=False)

STUDENTS = dict(
    resnet=(dict(
        type='ImageClassifier',
        data_preprocessor=PREPROCESSOR,
        backbone=dict(type='ResNet_CIFAR', depth=18, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=NUM_CLASSES,
            in_channels=512,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0))), [512]),
    vit=(dict(
        type='ImageClassifier',
        data_preprocessor=PREPROCESSOR,
        backbone=dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=32,
                num_layers=2,
                num_heads=2,
                feedforward_channels=64),
            img_size=32,
            patch_size=8,
            out_type='featmap'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=NUM_CLASSES,
            in_channels=32,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0))), [32]))


def distiller_cfg(kind: str = 'resnet', **overrides) -> dict:
    student, channels = STUDENTS[kind]
    cfg = dict(
        type='mmprockd.ProtoDistiller',
        student=copy.deepcopy(student),
        teacher=copy.deepcopy(TEACHER),
        student_channels=channels,
        learner=dict(
            type='mmprockd.PrototypeLearner', channels=16, num_prototypes=8),
        augment=dict(type='mmprockd.TaskAdaptiveAugment'),
        proto_weight=0.5,
        kl_loss=dict(
            type='mmprockd.ConsistencyKLLoss',
            temperature=TEMPERATURE,
            loss_weight=KL_WEIGHT))
    cfg.update(overrides)
    return cfg


def build(kind: str = 'resnet', **overrides):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    return MODELS.build(distiller_cfg(kind, **overrides))


def cls_batch(num: int = 3) -> dict:
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(1)
    inputs = [
        torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8, generator=g)
        for _ in range(num)
    ]
    samples = [DataSample().set_gt_label(i % NUM_CLASSES) for i in range(num)]
    return dict(inputs=inputs, data_samples=samples)


def loss_step(model, batch=None):
    data = model.data_preprocessor(batch or cls_batch(), True)
    return model(**data, mode='loss')


@pytest.mark.parametrize('kind', ['resnet', 'vit'])
def test_loss_keys_and_gradients(kind):
    model = build(kind)
    model.train()
    assert all(not m.training for m in model.teacher.modules())
    losses = loss_step(model)
    assert {'student.loss', 'distill.proto.loss',
            'distill.loss_kl'} <= set(losses), sorted(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    # the prototype branch alone trains the prototypes, not the backbone
    losses['distill.proto.loss'].backward(retain_graph=True)
    assert model.learner.prototypes.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.student.backbone.parameters())
    assert model.student.head.fc.weight.grad.abs().sum() > 0
    model.zero_grad()
    total, _ = model.parse_losses(losses)
    total.backward()
    assert model.learner.prototypes.grad.abs().sum() > 0
    grads = [p.grad for p in model.student.backbone.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None and not p.requires_grad
               for p in model.teacher.parameters())


def test_prototype_branch_replaces_maps_before_pooling():
    model = build('vit')
    data = model.data_preprocessor(cls_batch(), True)
    feats = model.iface.extract(data['inputs'])
    assert len(feats) == 1 and feats[0].shape == (3, 32, 4, 4)
    proto = model.prototype_branch(
        model._teacher_features(data['inputs']), feats)
    assert proto[0].shape == feats[0].shape
    assert not torch.allclose(proto[0], feats[0])


@pytest.mark.parametrize('kind', ['resnet', 'vit'])
def test_kl_and_proto_ce_by_hand(kind):
    """Known logits through the head: the student branch gets ``A``, the
    prototype branch ``B``; the KL is ``sum p log(p/q)`` with
    ``p = softmax(B/T)``, ``q = softmax(A/T)``, averaged over samples."""
    model = build(kind)
    g = torch.Generator().manual_seed(5)
    A = torch.randn(3, NUM_CLASSES, generator=g) * 3
    B = torch.randn(3, NUM_CLASSES, generator=g) * 3
    calls = []

    def fake_forward(feats):
        calls.append(feats)
        logits = A if len(calls) == 1 else B
        return logits + 0 * feats[-1].sum()  # keeps the graph

    model.student.head.forward = fake_forward
    losses = loss_step(model)
    assert len(calls) == 2
    kl = 0.0
    for n in range(3):
        a = [math.exp(v / TEMPERATURE) for v in A[n].tolist()]
        b = [math.exp(v / TEMPERATURE) for v in B[n].tolist()]
        q = [v / sum(a) for v in a]
        p = [v / sum(b) for v in b]
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)) / 3
    expected = KL_WEIGHT * TEMPERATURE**2 * kl
    assert float(losses['distill.loss_kl']) == pytest.approx(
        expected, rel=1e-5)
    labels = torch.arange(3) % NUM_CLASSES
    torch.testing.assert_close(losses['student.loss'],
                               F.cross_entropy(A, labels))
    torch.testing.assert_close(losses['distill.proto.loss'],
                               0.5 * F.cross_entropy(B, labels))


def test_distill_fraction_kl_and_proto_ce_on_the_subset_by_hand():
    """``distill_fraction=0.5`` of 3 images: 2 images (fixed here to 0 and
    2) go through the prototype branch; the KL and the branch CE are
    computed on them alone, the student CE on all 3."""
    model = build('resnet', distill_fraction=0.5)
    model.distill_indices = lambda n: torch.tensor([0, 2])
    g = torch.Generator().manual_seed(6)
    A = torch.randn(3, NUM_CLASSES, generator=g) * 3
    B = torch.randn(2, NUM_CLASSES, generator=g) * 3
    calls = []

    def fake_forward(feats):
        calls.append(feats[-1].shape[0])
        logits = A if len(calls) == 1 else B
        return logits + 0 * feats[-1].sum()

    model.student.head.forward = fake_forward
    losses = loss_step(model)
    assert calls == [3, 2]
    assert float(losses['distill.loss_kl']) == pytest.approx(
        _kl_by_hand(A[[0, 2]], B, 2), rel=1e-5)
    labels = torch.arange(3) % NUM_CLASSES
    torch.testing.assert_close(losses['student.loss'],
                               F.cross_entropy(A, labels))
    torch.testing.assert_close(losses['distill.proto.loss'],
                               0.5 * F.cross_entropy(B, labels[[0, 2]]))


def _kl_by_hand(A, B, rows):
    kl = 0.0
    for a_row, b_row in zip(A.tolist(), B.tolist()):
        a = [math.exp(v / TEMPERATURE) for v in a_row]
        b = [math.exp(v / TEMPERATURE) for v in b_row]
        q = [v / sum(a) for v in a]
        p = [v / sum(b) for v in b]
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)) / rows
    return KL_WEIGHT * TEMPERATURE**2 * kl


def test_unlabelled_images_get_the_kl_not_the_cross_entropy():
    """[ours] A transfer set: images 1 and 3 carry the label -1. The
    student's and the branch's CE are those of images 0 and 2; the KL
    pairs all four, each student row with its own image's branch row."""
    model = build('resnet')
    batch = cls_batch(4)
    labels = [3, -1, 5, -1]
    for sample, label in zip(batch['data_samples'], labels):
        sample.set_gt_label(label)
    g = torch.Generator().manual_seed(7)
    A = torch.randn(4, NUM_CLASSES, generator=g) * 3
    B = torch.randn(4, NUM_CLASSES, generator=g) * 3
    # the head runs on the labelled images first, then on the others
    rows = [A[[0, 2]], A[[1, 3]], B[[0, 2]], B[[1, 3]]]
    calls = []

    def fake_forward(feats):
        calls.append(feats[-1].shape[0])
        return rows[len(calls) - 1] + 0 * feats[-1].sum()

    model.student.head.forward = fake_forward
    losses = loss_step(model, batch)
    assert calls == [2, 2, 2, 2]
    seen = torch.tensor([3, 5])
    torch.testing.assert_close(losses['student.loss'],
                               F.cross_entropy(A[[0, 2]], seen))
    torch.testing.assert_close(losses['distill.proto.loss'],
                               0.5 * F.cross_entropy(B[[0, 2]], seen))
    assert float(losses['distill.loss_kl']) == pytest.approx(
        _kl_by_hand(A, B, 4), rel=1e-5)


def test_branch_pseudo_labels_on_the_unlabelled_images_by_hand():
    """[ours] branch_pseudo_loss: the branch's rows of the unlabelled
    images 1 and 3; row 1 is sure of class 2 (p = 0.9), row 3 is not (p =
    0.1 each), so the loss is CE(row 1, 2) / 2 images, scaled by
    proto_weight, and half the images got a label. A frozen branch does
    not learn, so it gets none."""
    model = build(
        'resnet',
        branch_pseudo_loss=dict(
            type='mmprockd.PseudoLabelLoss', threshold=0.8))
    batch = cls_batch(4)
    for sample, label in zip(batch['data_samples'], [3, -1, 5, -1]):
        sample.set_gt_label(label)
    A = torch.zeros(4, NUM_CLASSES)
    B = torch.zeros(4, NUM_CLASSES)
    B[1, 2] = math.log(0.9 * (NUM_CLASSES - 1) / 0.1)  # p(2) = 0.9
    rows = [A[[0, 2]], A[[1, 3]], B[[0, 2]], B[[1, 3]]]
    calls = []

    def fake_forward(feats):
        calls.append(feats[-1].shape[0])
        return rows[(len(calls) - 1) % 4] + 0 * feats[-1].sum()

    model.student.head.forward = fake_forward
    losses = loss_step(model, batch)
    assert float(losses['distill.proto.loss_pseudo']) == pytest.approx(
        0.5 * -math.log(0.9) / 2, rel=1e-5)
    assert float(losses['distill.proto.pseudo_ratio']) == 0.5
    total, log_vars = model.parse_losses(losses)
    assert 'distill.proto.loss_pseudo' in log_vars
    model.branch_frozen = True
    losses = loss_step(model, batch)
    assert not any('pseudo' in k for k in losses)


def test_unlabelled_only_batch_and_gradients():
    """No labelled image: no task loss, the KL alone trains the student;
    an unlabelled image's features get a gradient through the KL only."""
    model = build('resnet')
    model.train()
    batch = cls_batch(2)
    for sample in batch['data_samples']:
        sample.set_gt_label(-1)
    losses = loss_step(model, batch)
    assert set(losses) == {'distill.loss_kl'}
    total, _ = model.parse_losses(losses)
    total.backward()
    grads = [p.grad for p in model.student.backbone.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)

    # the interface: task loss of the labelled rows, logits of all rows in
    # batch order, and param_grad=False leaves the head's weights alone
    model.zero_grad()
    data = model.data_preprocessor(cls_batch(3), True)
    data['data_samples'][1].set_gt_label(-1)
    feats = tuple(f.detach().requires_grad_()
                  for f in model.iface.extract(data['inputs']))
    losses, logits = model.iface.loss(
        data['inputs'], feats, data['data_samples'], param_grad=False)
    head = model.student.head
    with torch.no_grad():
        full = head(model.student.neck(feats))
    torch.testing.assert_close(logits[0], full)
    torch.testing.assert_close(
        losses['loss'], F.cross_entropy(full[[0, 2]], torch.tensor([0, 2])))
    (losses['loss'] + logits[0][1].sum()).backward()
    assert head.fc.weight.grad is None
    # image 1 is in no CE: its gradient is that of its logits' sum alone
    assert feats[0].grad[1].abs().sum() > 0
    w = head.fc.weight.sum(0) / feats[0][1].shape[-1]**2
    torch.testing.assert_close(feats[0].grad[1],
                               w[:, None, None].expand_as(feats[0][1]))


@pytest.mark.parametrize('kind', ['resnet', 'vit'])
def test_predict_is_the_students(kind):
    model = build(kind)
    model.eval()
    data = model.data_preprocessor(cls_batch(), False)
    with torch.no_grad():
        ours = model(**copy.deepcopy(data), mode='predict')
        ref = model.student(**copy.deepcopy(data), mode='predict')
    for a, b in zip(ours, ref):
        assert torch.equal(a.pred_score, b.pred_score)
        assert torch.equal(a.pred_label, b.pred_label)


def test_student_checkpoint_loads_in_plain_mmpretrain(tmp_path):
    from mmengine.runner import load_checkpoint

    from mmprockd.engine.hooks.student_checkpoint_hook import \
        StudentCheckpointHook
    model = build('resnet')
    loss_step(model)  # BN statistics move
    model.eval()
    runner = SimpleNamespace(
        model=model,
        epoch=0,
        iter=0,
        work_dir=str(tmp_path),
        cfg=Config(dict(model=distiller_cfg(), default_scope='mmpretrain')),
        logger=SimpleNamespace(info=lambda msg: None),
        train_dataloader=SimpleNamespace(
            dataset=SimpleNamespace(
                metainfo=dict(classes=[str(i) for i in range(NUM_CLASSES)]))))
    hook = StudentCheckpointHook(interval=1, by_epoch=True)
    hook.before_train(runner)
    hook.after_train_epoch(runner)
    plain_cfg = Config.fromfile(str(tmp_path / 'student_config.py'))
    assert plain_cfg.model.type == 'ImageClassifier'
    from mmpretrain.registry import MODELS as CLS_MODELS
    plain = CLS_MODELS.build(plain_cfg.model)
    load_checkpoint(plain, str(tmp_path / 'student_epoch_1.pth'), strict=True)
    plain.eval()
    data = model.data_preprocessor(cls_batch(), False)
    with torch.no_grad():
        torch.testing.assert_close(
            plain(data['inputs'], mode='tensor'),
            model(data['inputs'], mode='tensor'))


def test_clear_errors():
    bad = copy.deepcopy(TEACHER)
    bad['layers'] = ['layer3', 'layers5']
    with pytest.raises(KeyError, match='layers5'):
        build(teacher=bad)
    bad = copy.deepcopy(TEACHER)
    bad['ckpt'] = '/nonexistent/teacher.pth'
    with pytest.raises(FileNotFoundError):
        build(teacher=bad)
    bad_learner = dict(
        type='mmprockd.PrototypeLearner',
        channels=16,
        num_prototypes=8,
        in_channels=[8, 8])
    with pytest.raises(ValueError, match='learner.in_channels'):
        build(learner=bad_learner)
    # found at build, by a forward of the student on a zero image
    with pytest.raises(
            ValueError,
            match=r'model.student_channels=\[256\], but the feature levels '
            r'of the student ImageClassifier \(ResNet_CIFAR backbone maps\) '
            r'have \[512\] channels: set student_channels=\[512\]'):
        build(student_channels=[256])


def test_vector_backbone_output_is_a_clear_error():
    """The prototype branch needs maps ``(N, C, H, W)``; a ViT student with
    its default ``out_type='cls_token'`` gives ``(N, C)``. The channel check
    passes (``shape[1]`` is C) and the error, if any, comes from deep inside
    the learner."""
    student = copy.deepcopy(STUDENTS['vit'][0])
    student['backbone']['out_type'] = 'cls_token'
    model = build('vit', student=student)
    with pytest.raises(ValueError, match=r"must be maps.*out_type='featmap'"):
        loss_step(model)
