import pytest
import torch
import torch.nn as nn

from mmprockd.models.adapters import LevelAdapter


def test_default_is_identity_where_channels_match():
    m = LevelAdapter(8, [8, 4])
    assert isinstance(m.convs[0], nn.Identity)
    assert m.convs[1].kernel_size == (1, 1)
    x = torch.randn(1, 8, 3, 3)
    assert torch.equal(m([x, x])[0], x)


def test_out_kernel_puts_a_signed_conv_at_every_level():
    m = LevelAdapter(8, [8, 4], out_kernel=3)
    assert [c.kernel_size for c in m.convs] == [(3, 3), (3, 3)]
    # a 3x3 conv with only the centre tap set to identity is identity: the
    # padding keeps the grid, and no activation clips negative values
    conv = m.convs[0]
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    conv.weight.data[:, :, 1, 1] = torch.eye(8)
    x = torch.randn(2, 8, 5, 4)
    out = m([x, x])
    assert torch.allclose(out[0], x) and (out[0] < 0).any()
    assert out[1].shape == (2, 4, 5, 4)
    # a one-pixel level: only the centre tap sees data
    nn.init.constant_(m.convs[1].weight, 1.0)
    nn.init.zeros_(m.convs[1].bias)
    one = torch.ones(1, 8, 1, 1)
    assert m([one, one])[1].flatten().tolist() == [8.0] * 4


@pytest.mark.parametrize('k', [-1, 2])
def test_a_negative_or_even_out_kernel_is_refused(k):
    with pytest.raises(ValueError, match='out_kernel'):
        LevelAdapter(8, [8], out_kernel=k)
