"""[ours] ProtoDistiller's box distillation (``box_loss``) and the KL
through the branch's head (``kd_head='branch'``), on the tiny RetinaNet of
test_proto_distiller.py."""
import pytest
import torch
from test_proto_distiller import build, grads_of, loss_step

from mmprockd.models.losses import BoxDistillLoss

BOX = dict(type='mmprockd.BoxDistillLoss', loss_weight=2.0)


def _frozen(**kwargs):
    model = build(branch_head='own', box_loss=BOX, **kwargs)
    model.branch_frozen = True
    model.train()
    return model


def _spy_heads(model):
    """Record the bbox_head outputs of the student's and of the branch's
    head, in call order."""
    seen = []
    for name, head in (('student', model.student.bbox_head),
                       ('branch', model.branch_student.bbox_head)):
        real = head.forward

        def spy(feats, _real=real, _name=name):
            out = _real(feats)
            seen.append(
                (_name, [f.detach() for f in feats],
                 [x.detach() for x in out[0]], [x.detach() for x in out[1]]))
            return out

        head.forward = spy
    return seen


def test_box_loss_is_the_weighted_l1_between_the_two_heads_deltas():
    model = _frozen()
    seen = _spy_heads(model)
    losses = loss_step(model)
    (_, _, s_cls, s_box), (_, _, b_cls, b_box) = seen
    by_hand = BoxDistillLoss(loss_weight=2.0)(s_box, b_box, b_cls)
    assert losses['distill.loss_box'].item() == pytest.approx(
        by_hand.item(), rel=1e-6)
    assert losses['distill.loss_box'].item() > 0
    model.zero_grad()
    losses['distill.loss_box'].backward()
    # the student's regression branch learns, its classification branch and
    # the frozen branch do not
    head = model.student.bbox_head
    assert head.retina_reg.weight.grad.abs().sum() > 0
    assert head.retina_cls.weight.grad is None or \
        head.retina_cls.weight.grad.abs().sum() == 0
    assert all(p.grad is None for b in model._branch_modules()
               for p in b.parameters())


def test_the_branch_cache_serves_the_boxes_as_the_branch_gives_them():
    plain = _frozen()
    cached = _frozen(branch_cache=dict(dtype='fp32'))
    ref = loss_step(plain)
    first = loss_step(cached)
    second = loss_step(cached)
    assert cached.branch_cache.hits == 2
    # per image: 4 score levels and 4 box levels
    assert len(
        cached.branch_cache.get_each([next(iter(cached.branch_cache._store))],
                                     'cpu')[0]) == 8
    for losses in (first, second):
        for key in ('distill.loss_kl', 'distill.loss_box'):
            assert losses[key].item() == pytest.approx(
                ref[key].item(), rel=1e-5), key


def test_kd_head_branch_runs_the_students_maps_through_the_frozen_head():
    model = _frozen(kd_head='branch')
    seen = _spy_heads(model)
    losses = loss_step(model)
    # the student's own head (its task loss), the branch's head on the
    # branch's maps, then the branch's head on the student's maps
    assert [s[0] for s in seen] == ['student', 'branch', 'branch']
    student_maps = seen[0][1]
    _, cross_maps, cross_cls, cross_box = seen[2]
    _, _, b_cls, b_box = seen[1]
    assert all(torch.equal(a, b) for a, b in zip(student_maps, cross_maps))
    kl = model.kl_loss(cross_cls, b_cls)
    box = BoxDistillLoss(loss_weight=2.0)(cross_box, b_box, b_cls)
    assert losses['distill.loss_kl'].item() == pytest.approx(
        kl.item(), rel=1e-6)
    assert losses['distill.loss_box'].item() == pytest.approx(
        box.item(), rel=1e-6)
    model.zero_grad()
    (losses['distill.loss_kl'] + losses['distill.loss_box']).backward()
    # the gradient trains the student's maps, not its head, and never the
    # branch's head
    assert any(g is not None and g.abs().sum() > 0
               for g in grads_of(model.student.neck))
    assert all(g is None or g.abs().sum() == 0
               for g in grads_of(model.student.bbox_head))
    assert all(p.grad is None for p in model.branch_student.parameters())


@pytest.mark.parametrize('kwargs, text', [
    (dict(kd_head='teacher'), "kd_head must be 'student' or 'branch'"),
    (dict(kd_head='branch'), "needs branch_head='own'"),
    (dict(box_loss=dict(loss_weight=1.0)), "model.box_loss=dict"),
])
def test_bad_box_and_kd_head_settings_are_refused(kwargs, text):
    with pytest.raises(ValueError, match=text):
        build(**kwargs)
