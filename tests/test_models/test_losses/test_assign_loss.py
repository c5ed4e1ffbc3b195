# Copyright (c) mmprockd contributors. All rights reserved.
"""[ours] PrototypeAssignLoss: prototype-assignment distillation."""
import math

import pytest
import torch

from mmprockd.models.losses import PrototypeAssignLoss
from mmprockd.models.necks import PrototypeLearner


def two_prototype_learner():
    """D = 2, K = 2, the assignment conv set by hand: logits (2x, 2y)."""
    learner = PrototypeLearner(in_channels=[2], channels=2, num_prototypes=2)
    with torch.no_grad():
        conv = learner.assigners[0]
        conv.weight.copy_(2 * torch.eye(2).view(2, 2, 1, 1))
        conv.bias.zero_()
    return learner


def identity_loss(weight=1.0):
    crit = PrototypeAssignLoss(
        student_channels=[2], channels=2, loss_weight=weight)
    with torch.no_grad():
        crit.projectors[0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        crit.projectors[0].bias.zero_()
    return crit


def test_assign_log_probs_by_hand():
    learner = two_prototype_learner()
    # the token (3, 4) normalises to (0.6, 0.8): logits (1.2, 1.6)
    tokens = torch.tensor([3., 4.]).view(1, 2, 1, 1)
    got = learner.assign_log_probs(tokens).view(2)
    want = torch.tensor([1.2, 1.6]).log_softmax(0)
    assert torch.allclose(got, want, atol=1e-6)
    assert got.exp().sum().item() == pytest.approx(1.0)
    with pytest.raises(
            ValueError, match=r'\(N, 2, H, W\), got \(1, 3, 1, 1\)'):
        learner.assign_log_probs(torch.zeros(1, 3, 1, 1))


def test_kl_by_hand_on_one_token():
    learner, crit = two_prototype_learner(), identity_loss(weight=2.0)
    # student token (1, 0): logits (2, 0), q = softmax(2, 0)
    s = torch.tensor([1., 0.]).view(1, 2, 1, 1)
    p = torch.tensor([0.25, 0.75]).view(1, 2, 1, 1)
    q = torch.tensor([2., 0.]).softmax(0)
    kl = 0.25 * math.log(0.25 / q[0]) + 0.75 * math.log(0.75 / q[1])
    assert crit([s], [p], learner).item() == pytest.approx(2 * kl, rel=1e-5)
    # the student assigned as the target: no loss; a one-hot target (0 log 0)
    # stays finite
    assert crit([s], [q.view(1, 2, 1, 1)], learner).item() == pytest.approx(
        0.0, abs=1e-6)
    onehot = torch.tensor([1., 0.]).view(1, 2, 1, 1)
    assert crit([s], [onehot], learner).item() == pytest.approx(
        -2 * math.log(q[0]), rel=1e-5)


def test_mean_over_positions_and_sum_over_levels():
    learner, crit = two_prototype_learner(), identity_loss()
    s = torch.tensor([[1., 0.], [0., 1.]]).T.reshape(1, 2, 1, 2)
    p = torch.full((1, 2, 1, 2), 0.5)
    q0 = torch.tensor([2., 0.]).softmax(0)  # the first position's
    # both positions are mirror images: the same KL, so the mean is one
    kl = 0.5 * math.log(0.5 / q0[0]) + 0.5 * math.log(0.5 / q0[1])
    assert crit([s], [p], learner).item() == pytest.approx(kl, rel=1e-5)
    two = PrototypeAssignLoss(student_channels=[2, 2], channels=2)
    two.projectors = torch.nn.ModuleList([crit.projectors[0]] * 2)
    learner2 = PrototypeLearner(
        in_channels=[2], channels=2, num_prototypes=2, num_levels=2)
    learner2.assigners = learner.assigners
    assert two([s, s], [p, p], learner2).item() == pytest.approx(
        2 * kl, rel=1e-5)


def test_gradient_reaches_the_student_and_projector_only():
    learner, crit = two_prototype_learner(), identity_loss()
    s = torch.tensor([1., 0.5]).view(1, 2, 1, 1).requires_grad_()
    p = torch.tensor([0.9, 0.1]).view(1, 2, 1, 1).requires_grad_()
    crit([s], [p], learner).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert crit.projectors[0].weight.grad.abs().sum() > 0
    assert p.grad is None, 'the target is detached'
    assert all(q.grad is None for q in learner.parameters()), \
        'the assignment conv and prototypes are the target\'s'


def test_refuses_mismatched_levels_and_shapes():
    learner, crit = two_prototype_learner(), identity_loss()
    s = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match='1 projectors, 2 student maps'):
        crit([s, s], [s, s], learner)
    with pytest.raises(ValueError, match=r'\(1, 2, 2, 2\) but the target'):
        crit([s], [torch.full((1, 2, 1, 1), 0.5)], learner)
