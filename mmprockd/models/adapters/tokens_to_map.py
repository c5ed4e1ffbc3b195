"""Turn a teacher layer's output into a ``(N, C, H, W)`` map.

Backbones return maps, token sequences ``(N, L, C)`` (ViT/DeiT blocks, Swin
norms), with or without class/distillation tokens, or tuples such as Swin's
``(tokens, hw_shape)``. The distiller records arbitrary named layers, so it
meets all of these.
"""
import math
from typing import Any, Sequence, Tuple

from torch import Tensor


def infer_grid(num_tokens: int,
               input_hw: Tuple[int, int],
               max_extra: int = 2) -> Tuple[int, int, int]:
    """Find ``(h, w, extra)`` with ``h * w + extra == num_tokens``.

    ``h, w`` is the grid of some power-of-two stride over ``input_hw`` (the
    teacher's input size); ``extra`` leading tokens (class, distillation) are
    dropped.

    Raises:
        ValueError: if no stride from 1 to 128 fits.
    """
    H, W = input_hw
    for extra in range(max_extra + 1):
        for stride in (1, 2, 4, 8, 14, 16, 28, 32, 64, 128):
            h, w = math.ceil(H / stride), math.ceil(W / stride)
            if h * w + extra == num_tokens:
                return h, w, extra
    raise ValueError(
        f'tokens_to_map: {num_tokens} tokens do not form a grid over an '
        f'input of {H}x{W} at any stride (with up to {max_extra} extra '
        'tokens); record a layer that outputs a map instead')


def tokens_to_map(out: Any, input_hw: Sequence[int]) -> Tensor:
    """Convert one recorded layer output to ``(N, C, H, W)``.

    Args:
        out (Tensor | tuple): a map ``(N, C, H, W)``, tokens ``(N, L, C)``,
            or a tuple whose first item is one of these; a tuple
            ``(tokens, (h, w))`` gives the grid explicitly.
        input_hw (Sequence[int]): the teacher's input ``(H, W)``.

    Returns:
        Tensor: ``(N, C, h, w)``.
    """
    hw = None
    if isinstance(out, (tuple, list)):
        if len(out) == 2 and isinstance(out[1], (tuple, list)) \
                and len(out[1]) == 2:
            hw = tuple(int(v) for v in out[1])
        out = out[0]
    if not isinstance(out, Tensor):
        raise TypeError(f'tokens_to_map: expected a tensor, got {type(out)}')
    if out.dim() == 4:
        return out
    if out.dim() != 3:
        raise ValueError('tokens_to_map: expected (N, C, H, W) or (N, L, C),'
                         f' got shape {tuple(out.shape)}')
    N, L, C = out.shape
    if hw is None:
        h, w, extra = infer_grid(L, tuple(input_hw))
    else:
        (h, w), extra = hw, L - hw[0] * hw[1]
    # (N, extra + h*w, C) -> (N, C, h, w)
    return out[:, extra:].transpose(1, 2).reshape(N, C, h, w)
