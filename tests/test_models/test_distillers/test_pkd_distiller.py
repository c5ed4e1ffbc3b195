"""PKDDistiller, the feature-mimic baseline, on a tiny RetinaNet; and the
distillers' shared base: the checkpoint layout, copies and bad input."""
import copy

import pytest
import torch
from test_proto_distiller import (build, grads_of, loss_step, tiny_student,
                                  tiny_teacher)

from mmprockd.models.distillers import (BaseDistiller, FeatureDistiller,
                                        ProtoDistiller)
from mmprockd.testing import det_batch

FEAT = dict(type='mmprockd.FeatureMimicLoss', loss_weight=6.0)


def build_pkd(**kwargs):
    return build(
        dict(
            dict(
                type='mmprockd.PKDDistiller',
                student=tiny_student(),
                teacher=tiny_teacher(),
                student_channels=[32] * 4,
                feat_loss=FEAT), **kwargs))


def test_pkd_is_a_feature_distiller_without_a_branch():
    model = build_pkd()
    assert isinstance(model, FeatureDistiller)
    assert isinstance(model, BaseDistiller)
    assert not isinstance(model, ProtoDistiller)
    # only the student and the connectors are saved, under the keys a
    # ProtoDistiller(learner=None, feat_loss=...) checkpoint has
    assert {k.split('.')[0]
            for k in model.state_dict()} == {'student', 'feat_loss'}
    # teacher layers 8 + 24 channels -> a 32-channel connector per level
    assert [c.in_channels for c in model.feat_loss.connectors] == [32] * 4
    assert [c.out_channels for c in model.feat_loss.connectors] == [32] * 4
    assert not hasattr(model, 'learner')
    assert not hasattr(model, 'branch_frozen')


def test_pkd_loss_is_the_feature_mimic_of_the_teacher_maps():
    model = build_pkd()
    model.train()
    data = model.data_preprocessor(det_batch(2, (64, 96)), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {
        'student.loss_cls', 'student.loss_bbox', 'distill.loss_feat'
    }
    feats = model.iface.extract(data['inputs'])
    by_hand = model.feat_loss(feats, model._teacher_features(data['inputs']))
    assert losses['distill.loss_feat'].item() == pytest.approx(
        by_hand.item(), rel=1e-6)
    model.distill_scale = 0.5
    half = model(**data, mode='loss')['distill.loss_feat']
    assert half.item() == pytest.approx(0.5 * by_hand.item(), rel=1e-6)
    model.zero_grad()
    losses['distill.loss_feat'].backward()
    assert any(g is not None and g.abs().sum() > 0
               for g in grads_of(model.student.neck))
    assert all(g is not None and g.abs().sum() > 0
               for g in grads_of(model.feat_loss))
    assert all(p.grad is None for p in model.teacher.parameters())


def test_pkd_step_without_distillation_touches_the_connectors():
    model = build_pkd()
    model.distill_scale = 0.0
    losses = loss_step(model)
    assert 'distill.loss_feat' not in losses
    assert losses['distill.loss_zero'].item() == 0.0
    losses['distill.loss_zero'].backward()
    assert all(g is not None and g.abs().sum() == 0
               for g in grads_of(model.feat_loss))


def test_pkd_inverted_projection_maps_the_teacher_to_each_level():
    model = build_pkd(feat_loss=dict(FEAT, projector='teacher'))
    assert [c.in_channels for c in model.feat_loss.connectors] == [32] * 4
    assert 'distill.loss_feat' in loss_step(model)


def test_pkd_nan_guard_drops_the_feature_loss(monkeypatch):
    model = build_pkd(max_nan_steps=2)
    monkeypatch.setattr(model.feat_loss, 'forward',
                        lambda *args: torch.tensor(float('nan')))
    losses = loss_step(model)
    assert 'distill.loss_feat' not in losses
    assert losses['distill.loss_zero'].item() == 0.0
    assert (model.nan_skips, model.nan_streak) == (1, 1)
    with pytest.raises(
            RuntimeError,
            match=r'PKDDistiller: the distillation loss '
            r"\['distill.loss_feat'\] was not finite for 2"):
        loss_step(model)


@pytest.mark.parametrize('kwargs,exc,text', [
    (dict(feat_loss=None), ValueError, 'PKDDistiller: feat_loss is the '
     'distillation, it cannot be None'),
    (dict(feat_loss=dict(loss_weight=2.0)), ValueError,
     r"PKDDistiller: model.feat_loss=dict\(loss_weight=2.0\) has no 'type'"),
    (dict(student_ckpt='/no/such/student.pth'), FileNotFoundError,
     "PKDDistiller: student_ckpt '/no/such/student.pth' does not exist"),
    (dict(student_channels=[64] * 4), ValueError,
     r'PKDDistiller: model.student_channels=\[64, 64, 64, 64\], but'),
    (dict(learner=dict(type='mmprockd.PrototypeLearner')), TypeError,
     'learner'),
])
def test_pkd_bad_input_is_a_clear_error_at_build(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        build_pkd(**kwargs)


def test_a_copy_shares_the_teacher_and_the_caches():
    model = build(
        branch_head='own',
        teacher_cache=dict(max_items=4),
        branch_cache=dict(max_items=4))
    other = copy.deepcopy(model)
    assert other.teacher is model.teacher
    assert other.teacher_cache is model.teacher_cache
    assert other.branch_cache is model.branch_cache
    assert other.learner is not model.learner
    pkd = build_pkd(teacher_cache=dict(max_items=4))
    pkd_copy = copy.deepcopy(pkd)
    assert pkd_copy.teacher is pkd.teacher
    assert pkd_copy.teacher_cache is pkd.teacher_cache
    assert pkd_copy.feat_loss is not pkd.feat_loss


# the attributes whose modules a ProtoDistiller saved, in the order it
# registered them: the checkpoint layout of every branch checkpoint
# (branch_ckpt) and of resumed runs (the optimizer's parameter order)
SAVED_LAYOUT = ('student', 'learner', 'augment', 'level_adapter',
                'branch_student', 'kl_loss', 'feat_loss', 'branch_feat_loss',
                'assign_loss')


def test_the_checkpoint_layout_is_the_attribute_layout():
    """Every saved key is ``<attribute>.<key>`` of one of
    :data:`SAVED_LAYOUT`, in that order, and the optimizer sees the
    parameters in that order too; a state dict written that way, from the
    modules alone, loads strictly."""
    model = build(
        branch_head='own',
        feat_loss=FEAT,
        branch_feat_loss=dict(type='mmprockd.BranchMimicLoss'),
        assign_loss=dict(type='mmprockd.PrototypeAssignLoss'))
    layout = [(name, getattr(model, name)) for name in SAVED_LAYOUT]
    assert all(m is not None for _, m in layout)
    keys = [f'{n}.{k}' for n, m in layout for k in m.state_dict()]
    assert list(model.state_dict()) == keys
    assert len(keys) == 198
    params = [f'{n}.{k}' for n, m in layout for k, _ in m.named_parameters()]
    assert [k for k, _ in model.named_parameters()] == params
    old = {
        f'{n}.{k}': torch.full_like(v, 0.25) if v.is_floating_point() else v
        for n, m in layout
        for k, v in m.state_dict().items()
    }
    other = build(
        branch_head='own',
        feat_loss=FEAT,
        branch_feat_loss=dict(type='mmprockd.BranchMimicLoss'),
        assign_loss=dict(type='mmprockd.PrototypeAssignLoss'))
    assert not other.load_state_dict(old, strict=True).missing_keys
    assert torch.equal(other.learner.prototypes,
                       torch.full_like(other.learner.prototypes, 0.25))
    assert torch.equal(
        other.feat_loss.connectors[0].weight,
        torch.full_like(other.feat_loss.connectors[0].weight, 0.25))
