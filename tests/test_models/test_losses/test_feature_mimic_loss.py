"""FeatureMimicLoss is PKD (Cao et al. 2022) with a 1x1 projector on the
student side (FitNet) or on the teacher side (inverted projection, Auty et
al. 2024). Expected values are worked out by hand below."""
import math

import pytest
import torch

from mmprockd.models.losses import FeatureMimicLoss


def identity(crit, level=0, select=None):
    """Connector ``level`` as an identity (or a channel selector)."""
    conn = crit.connectors[level]
    with torch.no_grad():
        conn.bias.zero_()
        conn.weight.zero_()
        if select is None:
            for i in range(conn.out_channels):
                conn.weight[i, i] = 1.0
        else:
            conn.weight[0, select] = 1.0
    return crit


def col(*values):
    """A ``(N, 1, 1, 1)`` map, one value per image."""
    return torch.tensor(values).view(-1, 1, 1, 1)


def test_standardises_over_batch_and_space_not_per_sample():
    # one 1x1 level (P7-like) on 2 images: per image there is a single value,
    # so a per-sample standardisation gives 0 on both sides and loss 0.
    # PKD pools (N, H, W): student (1, 3) has mean 2 and unbiased std
    # sqrt(((1-2)^2 + (3-2)^2) / (2-1)) = sqrt(2), so it standardises to
    # (-1/sqrt2, 1/sqrt2); the teacher (4, 0) to (1/sqrt2, -1/sqrt2).
    # Each difference is 2/sqrt2 = sqrt2, squared 2: MSE 2, halved: 1.
    crit = identity(FeatureMimicLoss([1], 1))
    assert crit([col(1., 3.)], [col(4., 0.)]).item() == pytest.approx(
        1.0, rel=1e-5)
    # the same ordering is a perfect correlation
    assert crit([col(1., 3.)], [col(0., 4.)]).item() == pytest.approx(
        0.0, abs=1e-9)


def test_std_is_unbiased_and_mse_is_halved():
    # s = [0, 1, 2, 3] on one 2x2 map, teacher -s. Mean 1.5, deviations
    # (-1.5, -.5, .5, 1.5), sum of squares 5, unbiased variance 5/3.
    # z_s = dev / sqrt(5/3), z_t = -z_s: mean of (2 z)^2 is
    # 4 * (5 / (5/3)) / 4 = 3, halved 1.5 (the biased std would give 2,
    # no half 3).
    crit = identity(FeatureMimicLoss([1], 1))
    s = torch.tensor([[[[0., 1.], [2., 3.]]]])
    assert crit([s], [-s]).item() == pytest.approx(1.5, rel=1e-5)
    # an increasing affine map of the teacher changes nothing
    assert crit([s], [10 * s - 4]).item() == pytest.approx(0.0, abs=1e-9)


def test_levels_are_summed_and_weighted():
    t = torch.tensor([[[[0., 1.], [2., 3.]]]])
    s1 = torch.tensor([[[[0., 1.], [3., 2.]]]])
    s2 = -t
    # level 1: z differs by (0, 0, -1, 1) / sqrt(5/3): squares sum
    # 2 / (5/3) = 1.2, MSE 0.3, halved 0.15. Level 2: 1.5 (see above).
    crit = FeatureMimicLoss([1, 1], 1, loss_weight=6.0)
    identity(crit, 0)
    identity(crit, 1)
    single = identity(FeatureMimicLoss([1], 1))
    assert single([s1], [t]).item() == pytest.approx(0.15, rel=1e-5)
    loss = crit([s1, s2], [t]).item()
    assert loss == pytest.approx(6.0 * (0.15 + 1.5), rel=1e-5)
    # not the mean of the levels, not without the half
    assert loss != pytest.approx(6.0 * (0.15 + 1.5) / 2, rel=1e-3)


def test_single_value_channel_gives_zero_not_nan():
    # one image, one 1x1 location: no spread to correlate
    crit = identity(FeatureMimicLoss([1], 1))
    s = col(2.).requires_grad_()
    loss = crit([s], [col(5.)])
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(s.grad).all()


def test_student_projector_maps_student_to_teacher_channels():
    crit = FeatureMimicLoss([3, 5], 2)
    assert crit.projector == 'student'
    assert [(c.in_channels, c.out_channels)
            for c in crit.connectors] == [(3, 2), (5, 2)]


def test_teacher_projector_maps_teacher_to_student_channels():
    crit = FeatureMimicLoss([1, 3], 2, projector='teacher')
    assert [(c.in_channels, c.out_channels)
            for c in crit.connectors] == [(2, 1), (2, 3)]
    # teacher channel 0 is (4, 0) over the 2 images, channel 1 (-3, 7);
    # the student (1, 3). Selecting channel 0 gives the opposite ordering
    # (loss 1, as in the first test), channel 1 the same ordering (loss 0).
    teacher = torch.cat([col(4., 0.), col(-3., 7.)], dim=1)
    crit = FeatureMimicLoss([1], 2, projector='teacher')
    identity(crit, select=0)
    assert crit([col(1., 3.)], [teacher]).item() == pytest.approx(
        1.0, rel=1e-5)
    identity(crit, select=1)
    assert crit([col(1., 3.)], [teacher]).item() == pytest.approx(
        0.0, abs=1e-9)


@pytest.mark.parametrize('projector', ['student', 'teacher'])
def test_gradient_reaches_student_and_projector_not_teacher(projector):
    torch.manual_seed(0)
    crit = FeatureMimicLoss([3, 4], 5, projector=projector)
    student = [
        torch.randn(2, 3, 4, 4, requires_grad=True),
        torch.randn(2, 4, 2, 2, requires_grad=True)
    ]
    # two teacher layers on other grids: resized and concatenated (2 + 3)
    teacher = [
        torch.randn(2, 2, 8, 8, requires_grad=True),
        torch.randn(2, 3, 1, 1, requires_grad=True)
    ]
    loss = crit(student, teacher)
    assert math.isfinite(loss.item()) and loss.item() > 0
    loss.backward()
    assert all(s.grad.abs().sum() > 0 for s in student)
    assert all(t.grad is None for t in teacher)
    assert all(c.weight.grad.abs().sum() > 0 for c in crit.connectors)


def test_bad_projector_and_level_count():
    with pytest.raises(ValueError, match="projector must be .*got 'both'"):
        FeatureMimicLoss([1], 1, projector='both')
    with pytest.raises(ValueError, match='1 connectors but 2 student'):
        FeatureMimicLoss([1], 1)([col(1.), col(2.)], [col(1.)])
