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


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind must be 'softmax'"):
        ConsistencyKLLoss('mse')
    with pytest.raises(ValueError, match='shapes differ'):
        ConsistencyKLLoss()([torch.zeros(1, 2)], [torch.zeros(1, 3)])
