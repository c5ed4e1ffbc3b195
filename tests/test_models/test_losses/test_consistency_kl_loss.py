import math

import pytest
import torch

from mmprockd.models.losses import ConsistencyKLLoss


def test_softmax_kl_by_hand():
    # target p = softmax(0, ln 3) = (1/4, 3/4); pred q = (1/2, 1/2)
    target = torch.tensor([[0., math.log(3.)]])
    pred = torch.zeros(1, 2)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    loss = ConsistencyKLLoss('softmax')([pred], [target])
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_temperature_scales_logits_and_multiplies_t_squared():
    target = torch.tensor([[0., 2 * math.log(3.)]])
    pred = torch.zeros(1, 2)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    loss = ConsistencyKLLoss('softmax', temperature=2.0)([pred], [target])
    assert loss.item() == pytest.approx(4 * expected, abs=1e-6)


def test_sigmoid_kl_is_bernoulli_and_summed_over_channels():
    # p = sigmoid(0) = 0.5 on both channels; q = sigmoid(ln 3) = 0.75
    target = torch.zeros(1, 2, 1, 1)
    pred = torch.full((1, 2, 1, 1), math.log(3.))
    one = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    loss = ConsistencyKLLoss('sigmoid')([pred], [target])
    assert loss.item() == pytest.approx(2 * one, abs=1e-6)


def test_valid_mask_ignores_pixels():
    target = torch.zeros(1, 2, 1, 2)
    target[0, 1, 0, 0] = math.log(3.)  # KL > 0 at pixel 0 only
    pred = torch.zeros(1, 2, 1, 2)
    kl0 = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    crit = ConsistencyKLLoss('softmax')
    both = crit([pred], [target])
    assert both.item() == pytest.approx(kl0 / 2, abs=1e-6)
    only0 = crit([pred], [target], [torch.tensor([[[True, False]]])])
    only1 = crit([pred], [target], [torch.tensor([[[False, True]]])])
    assert only0.item() == pytest.approx(kl0, abs=1e-6)
    assert only1.item() == pytest.approx(0.0, abs=1e-7)


def test_gradient_goes_to_pred_only_when_target_detached():
    pred = torch.zeros(2, 3, requires_grad=True)
    target = torch.rand(2, 3, requires_grad=True)
    ConsistencyKLLoss()([pred], [target]).backward()
    assert pred.grad.abs().sum() > 0 and target.grad is None
    target.grad = None
    ConsistencyKLLoss(detach_target=False)([pred.detach()],
                                           [target]).backward()
    assert target.grad.abs().sum() > 0


def test_an_unknown_kind_and_a_shape_mismatch_are_refused():
    with pytest.raises(ValueError, match="kind must be 'softmax'"):
        ConsistencyKLLoss('mse')
    with pytest.raises(ValueError, match='shapes differ'):
        ConsistencyKLLoss()([torch.zeros(1, 2)], [torch.zeros(1, 3)])


def test_confidence_weighting_by_hand_sigmoid_two_levels():
    """[ours] weighting='confidence': per level, sum_loc w * KL / sum_loc w
    with w the target's largest class probability (detached)."""
    # level 0: two cells. Cell 0: target logits (ln 3, -inf-ish) -> p =
    # (0.75, ~0), w = 0.75; cell 1: target (0, 0) -> p = (0.5, 0.5), w = 0.5.
    t0 = torch.tensor([[[[math.log(3.), 0.]], [[-30., 0.]]]])  # (1, 2, 1, 2)
    p0 = torch.zeros(1, 2, 1, 2)  # q = 0.5 everywhere

    def bern(p, q):
        return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))

    kl_c0 = bern(0.75, 0.5) + bern(1 / (1 + math.exp(30.)), 0.5)
    kl_c1 = 2 * bern(0.5, 0.5)  # 0
    level0 = (0.75 * kl_c0 + 0.5 * kl_c1) / (0.75 + 0.5)
    # level 1: one cell, target p = sigmoid(ln 9) = 0.9 on one channel
    t1 = torch.tensor([[[[math.log(9.)]], [[-30.]]]])
    p1 = torch.zeros(1, 2, 1, 1)
    level1 = bern(0.9, 0.5) + bern(1 / (1 + math.exp(30.)), 0.5)
    crit = ConsistencyKLLoss('sigmoid', weighting='confidence')
    target0 = t0.clone().requires_grad_()
    loss = crit([p0, p1], [target0, t1])
    assert loss.item() == pytest.approx((level0 + level1) / 2, rel=1e-5)
    # unweighted for comparison: the plain mean over the cells
    plain = ConsistencyKLLoss('sigmoid')([p0, p1], [t0, t1])
    assert plain.item() == pytest.approx(
        ((kl_c0 + kl_c1) / 2 + level1) / 2, rel=1e-5)
    # 'location': all weighted cells of all levels together
    loc = ConsistencyKLLoss(
        'sigmoid', weighting='confidence', reduction='location')([p0, p1],
                                                                 [t0, t1])
    w1 = 0.9
    assert loc.item() == pytest.approx(
        (0.75 * kl_c0 + 0.5 * kl_c1 + w1 * level1) / (0.75 + 0.5 + w1),
        rel=1e-5)
    with pytest.raises(ValueError, match='weighting'):
        ConsistencyKLLoss('sigmoid', weighting='entropy')


def test_confidence_weighting_softmax_detection_ignores_background():
    """A softmax detection head's weight is its best foreground class
    (mmdet puts background last), over the anchors of a location."""
    crit = ConsistencyKLLoss('softmax', weighting='confidence')
    # (N, C + 1, A, H, W) with C = 2, A = 2, one cell: anchor 0 is sure of
    # background, anchor 1 gives class 1 probability 0.6
    logits = torch.zeros(1, 3, 2, 1, 1)
    logits[0, :, 0, 0, 0] = torch.tensor([-20., -20., 20.])
    logits[0, :, 1, 0, 0] = torch.log(torch.tensor([0.1, 0.6, 0.3]))
    conf = crit._confidence(logits, torch.Size([1, 1, 1]))
    assert conf.item() == pytest.approx(0.6, rel=1e-5)
