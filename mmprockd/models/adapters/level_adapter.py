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
        out_kernel (int): [ours] 0 keeps the 1x1 conv / identity above; a
            positive k puts a k x k conv (no activation) at every level, so
            that the branch ends, like an FPN output, in a conv whose values
            are signed (the learner and augment end in a ReLU). Defaults
            to 0.
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
                 out_kernel: int = 0,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if out_kernel < 0 or (out_kernel and out_kernel % 2 == 0):
            raise ValueError('LevelAdapter: out_kernel must be 0 or a '
                             f'positive odd int, got {out_kernel}')
        self.in_channels = in_channels
        self.out_channels = list(out_channels)
        if out_kernel:
            self.convs = nn.ModuleList(
                nn.Conv2d(in_channels, c, out_kernel, padding=out_kernel // 2)
                for c in self.out_channels)
        else:
            self.convs = nn.ModuleList(nn.Identity(
            ) if c == in_channels else nn.Conv2d(in_channels, c, 1)
                                       for c in self.out_channels)

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """Map each ``(N, D, H_l, W_l)`` to ``(N, C_l, H_l, W_l)``."""
        if len(feats) != len(self.convs):
            raise ValueError(f'LevelAdapter: expected {len(self.convs)} '
                             f'levels, got {len(feats)}')
        return [conv(f) for conv, f in zip(self.convs, feats)]
