"""PseudoLabelLoss [ours]: the cross-entropy of confident predictions
against their own argmax, over all the unlabelled images; values by hand."""
import math

import pytest
import torch

from mmprockd.models.losses import PseudoLabelLoss


def test_by_hand_threshold_and_mean_over_all_images():
    # row 0: p = softmax(ln 19, 0) = (0.95, 0.05): exactly at the threshold
    # row 1: p = (0.5, 0.5): below it, left out
    # row 2: p = (1/11, 10/11) ~ 0.909: below 0.95, left out
    logits = torch.tensor([[math.log(19.), 0.], [0., 0.], [0., math.log(10.)]])
    loss, ratio = PseudoLabelLoss(threshold=0.95, loss_weight=2.0)(logits)
    # -ln 0.95 for row 0, divided by the 3 images, times the weight 2
    assert float(loss) == pytest.approx(2.0 * -math.log(0.95) / 3, rel=1e-5)
    assert float(ratio) == pytest.approx(1 / 3)
    loss, ratio = PseudoLabelLoss(threshold=0.9)(logits)
    assert float(loss) == pytest.approx(
        (-math.log(0.95) - math.log(10 / 11)) / 3, rel=1e-5)
    assert float(ratio) == pytest.approx(2 / 3)


def test_gradient_through_the_logits_not_the_label():
    """The label is the argmax, taken without a gradient: the gradient of
    a kept row is softmax - onehot (over M), a left-out row gets none."""
    logits = torch.tensor([[3., 0., 0.], [0., 0., 0.]], requires_grad=True)
    loss, _ = PseudoLabelLoss(threshold=0.8)(logits)
    loss.backward()
    p = torch.softmax(torch.tensor([3., 0., 0.]), 0)
    assert float(p[0]) > 0.8
    expected = (p - torch.tensor([1., 0., 0.])) / 2
    torch.testing.assert_close(logits.grad[0], expected)
    torch.testing.assert_close(logits.grad[1], torch.zeros(3))


def test_a_threshold_outside_0_1_and_non_2d_scores_are_refused():
    with pytest.raises(ValueError, match='threshold'):
        PseudoLabelLoss(threshold=0.)
    with pytest.raises(ValueError, match='threshold'):
        PseudoLabelLoss(threshold=1.5)
    with pytest.raises(ValueError, match=r'\(M, C\)'):
        PseudoLabelLoss()(torch.zeros(0, 4))
    with pytest.raises(ValueError, match=r'\(M, C\)'):
        PseudoLabelLoss()(torch.zeros(4))
