"""[ours] BoxDistillLoss: the student's box deltas towards the branch's,
each anchor weighted by the branch's confidence."""
import math

import pytest
import torch

from mmprockd.models.losses import BoxDistillLoss
from mmprockd.models.losses.box_distill_loss import anchor_confidence


def _logit(p):
    return math.log(p / (1 - p))


def test_sigmoid_loss_by_hand_on_two_anchors():
    # one image, one location, A = 2 anchors, C = 2 classes; mmdet's layout
    # is anchor-major: channels (a0c0, a0c1, a1c0, a1c1)
    scores = torch.tensor([_logit(0.2),
                           _logit(0.8),
                           _logit(0.1),
                           _logit(0.4)]).view(1, 4, 1, 1)
    conf = anchor_confidence(scores, 2, 'sigmoid')
    assert conf.flatten().tolist() == pytest.approx([0.8, 0.4])
    student = torch.zeros(1, 8, 1, 1)
    branch = torch.tensor([1., -1., 0., 0., 0.5, 0.5, 0.5,
                           0.5]).view(1, 8, 1, 1)
    # anchor 0: |1| + |-1| = 2, weight 0.8; anchor 1: 4 x 0.5 = 2, weight
    # 0.4: (0.8 * 2 + 0.4 * 2) / 1.2 = 2, times the loss weight
    loss = BoxDistillLoss(loss_weight=3.0)([student], [branch], [scores])
    assert loss.item() == pytest.approx(6.0)
    # moving anchor 1 alone, the weighted mean moves by its share only
    branch2 = branch.clone()
    branch2[0, 4:] = 2.0  # anchor 1: 4 x 2 = 8
    loss = BoxDistillLoss()([student], [branch2], [scores])
    assert loss.item() == pytest.approx((0.8 * 2 + 0.4 * 8) / 1.2)


def test_levels_pool_their_anchors_and_only_the_student_gets_gradient():
    s1 = torch.zeros(1, 4, 1, 1, requires_grad=True)
    s2 = torch.zeros(1, 4, 2, 1, requires_grad=True)
    t1 = torch.ones(1, 4, 1, 1, requires_grad=True)  # L1 4 at one anchor
    t2 = torch.zeros(1, 4, 2, 1)  # L1 0 at two anchors
    lg1 = torch.full((1, 1, 1, 1), _logit(0.5))
    lg2 = torch.full((1, 1, 2, 1), _logit(0.5))
    loss = BoxDistillLoss()([s1, s2], [t1, t2], [lg1, lg2])
    # weights 0.5 at each of the three anchors: 0.5 * 4 / 1.5
    assert loss.item() == pytest.approx(2.0 / 1.5)
    loss.backward()
    # d/ds of |s - 1| at s = 0 is -1, times 0.5 / 1.5
    assert s1.grad.flatten().tolist() == pytest.approx([-1 / 3] * 4)
    assert t1.grad is None


def test_softmax_confidence_skips_the_background_class():
    # (N, C + 1, A, H, W) with the background last
    logits = torch.log(torch.tensor([0.1, 0.3, 0.6])).view(1, 3, 1, 1, 1)
    conf = anchor_confidence(logits, 1, 'softmax')
    assert conf.flatten().tolist() == pytest.approx([0.3])


def test_mismatched_levels_and_shapes_are_refused():
    crit = BoxDistillLoss()
    a = torch.zeros(1, 4, 2, 2)
    with pytest.raises(ValueError, match='same levels'):
        crit([a, a], [a], [torch.zeros(1, 1, 2, 2)])
    with pytest.raises(ValueError, match=r'\(N, A \* 4, H, W\)'):
        crit([a], [torch.zeros(1, 4, 1, 2)], [torch.zeros(1, 1, 2, 2)])
    with pytest.raises(ValueError, match="'sigmoid'"):
        BoxDistillLoss(kind='l1')
