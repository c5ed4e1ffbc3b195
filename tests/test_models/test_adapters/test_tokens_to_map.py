import pytest
import torch

from mmprockd.models.adapters import LevelAdapter, infer_grid, tokens_to_map


def test_map_passes_through():
    x = torch.rand(2, 3, 4, 5)
    assert tokens_to_map(x, (64, 80)) is x


def test_tokens_with_class_token_become_a_map():
    # 1 class token + a 2x3 grid of 2-channel tokens, row-major
    grid = torch.arange(12.).view(1, 6, 2)
    tokens = torch.cat([torch.full((1, 1, 2), -1.), grid], dim=1)
    out = tokens_to_map(tokens, (32, 48))  # stride 16 -> 2x3
    assert out.shape == (1, 2, 2, 3)
    # channel 0 of token (row 1, col 2) is grid[0, 5, 0] = 10
    assert out[0, 0, 1, 2] == 10.
    assert out[0, 1, 0, 0] == 1.
    assert (out != -1).all()


def test_swin_style_tuple_gives_the_grid():
    tokens = torch.rand(1, 6, 4)
    out = tokens_to_map((tokens, (3, 2)), (999, 999))
    assert out.shape == (1, 4, 3, 2)
    assert torch.equal(out[0, :, 2, 1], tokens[0, 5])


def test_ceil_grid_of_odd_sizes():
    assert infer_grid(13 * 19, (200, 304)) == (13, 19, 0)  # stride 16


def test_impossible_token_count_is_a_clear_error():
    with pytest.raises(ValueError, match='7 tokens do not form a grid'):
        tokens_to_map(torch.rand(1, 7, 2), (64, 64))


def test_level_adapter_identity_and_projection():
    m = LevelAdapter(8, [8, 4])
    x = torch.rand(1, 8, 2, 2)
    a, b = m([x, x])
    assert a is x
    assert b.shape == (1, 4, 2, 2)
    with pytest.raises(ValueError, match='expected 2 levels, got 1'):
        m([x])
