"""Channel alignment from the prototype space to each student level."""
from typing import List, Sequence

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmprockd.registry import MODELS


@MODELS.register_module()
class LevelAdapter(BaseModule):
    """A 1x1 conv from ``in_channels`` to each level's channels, or identity
    where they are equal (the common FPN case: 256 everywhere).

    Spatial alignment (resize to every student level, RetinaNet's extra
    P6/P7 included) is done by the learner's fusion; tokens are turned into
    maps by :func:`tokens_to_map` when the teacher is recorded.

    Args:
        in_channels (int): channels of the prototype space ``D``.
        out_channels (Sequence[int]): channels of each student level.
        init_cfg (dict, optional): initialisation config. Defaults to None.

    Example:
        >>> import torch
        >>> m = LevelAdapter(8, [8, 4])
        >>> [o.shape for o in m([torch.rand(1, 8, 2, 2)] * 2)]
        [torch.Size([1, 8, 2, 2]), torch.Size([1, 4, 2, 2])]
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: Sequence[int],
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = list(out_channels)
        self.convs = nn.ModuleList(nn.Identity() if c == in_channels else nn.
                                   Conv2d(in_channels, c, 1)
                                   for c in self.out_channels)

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """Map each ``(N, D, H_l, W_l)`` to ``(N, C_l, H_l, W_l)``."""
        if len(feats) != len(self.convs):
            raise ValueError(f'LevelAdapter: expected {len(self.convs)} '
                             f'levels, got {len(feats)}')
        return [conv(f) for conv, f in zip(self.convs, feats)]
