"""A neck followed by prototype augmentation of each of its outputs.

``AugmentedNeck`` lets a student carry ``TaskAdaptiveAugment`` after any
OpenMMLab neck (mmdet FPN, mmseg neck, ...) from config alone: the wrapped
neck is built from the registry, so under ``default_scope='mmdet'`` a bare
``type='FPN'`` resolves in mmdet.
"""
import copy
from typing import List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmprockd.registry import MODELS

ConfigType = dict
OptMultiConfig = Optional[Union[dict, List[dict]]]
Prototypes = Optional[Union[Tensor, Sequence[Tensor]]]


@MODELS.register_module()
class AugmentedNeck(BaseModule):
    """Wrap a neck and apply a ``TaskAdaptiveAugment`` to each output.

    Args:
        neck (dict): Config of the wrapped neck.
        augment (dict): Config of the augmentation, e.g.
            ``dict(type='mmprockd.TaskAdaptiveAugment', num_prototypes=72)``.
            ``in_channels`` defaults to the neck's ``out_channels``.
        share (bool): If True, one augmentation module (one set of weights
            and one prototype buffer) serves every output; otherwise each
            output has its own. Defaults to True.
        num_outs (int, optional): Number of neck outputs. Needed when
            ``share`` is False; defaults to the neck's ``num_outs`` attribute
            (as in mmdet's FPN). When given, the output count is checked.
            Defaults to None.
        init_cfg (dict or list[dict], optional): Initialisation config.
            Defaults to None.

    Example:
        >>> import torch
        >>> from mmengine.registry import DefaultScope
        >>> with DefaultScope.overwrite_default_scope('mmdet'):
        ...     neck = AugmentedNeck(
        ...         neck=dict(type='FPN', in_channels=[8, 16],
        ...                   out_channels=4, num_outs=3),
        ...         augment=dict(type='mmprockd.TaskAdaptiveAugment',
        ...                      num_prototypes=6))
        >>> inputs = (torch.rand(1, 8, 16, 16), torch.rand(1, 16, 8, 8))
        >>> for out in neck(inputs):
        ...     print(tuple(out.shape))
        (1, 4, 16, 16)
        (1, 4, 8, 8)
        (1, 4, 4, 4)
    """

    def __init__(self,
                 neck: ConfigType,
                 augment: ConfigType,
                 share: bool = True,
                 num_outs: Optional[int] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = self.__class__.__name__
        self.neck = MODELS.build(neck)
        self.share = share
        if num_outs is None:
            num_outs = getattr(self.neck, 'num_outs', None)
        if not share and num_outs is None:
            raise ValueError(
                f'{name}: share=False needs num_outs, and the neck '
                f'{type(self.neck).__name__} has no num_outs attribute')
        self.num_outs = num_outs

        num_augments = 1 if share else num_outs
        out_channels = getattr(self.neck, 'out_channels', None)
        self.augments = nn.ModuleList()
        for i in range(num_augments):
            cfg = copy.deepcopy(augment)
            if 'in_channels' not in cfg:
                cfg['in_channels'] = self._channels_of(out_channels, i)
            self.augments.append(MODELS.build(cfg))

    def _channels_of(self, out_channels: Union[int, Sequence[int], None],
                     index: int) -> int:
        """Input channels of the ``index``-th augmentation module."""
        name = self.__class__.__name__
        if isinstance(out_channels, int):
            return out_channels
        if out_channels is None:
            raise ValueError(
                f'{name}: the neck {type(self.neck).__name__} has no '
                f'out_channels; set augment.in_channels')
        if self.share and len(set(out_channels)) != 1:
            raise ValueError(
                f'{name}: share=True needs equal out_channels, got '
                f'{list(out_channels)}; set share=False')
        return out_channels[index]

    def set_prototypes(self, prototypes: Union[Tensor,
                                               Sequence[Tensor]]) -> None:
        """Copy prototypes into the buffers of the augmentation modules.

        Args:
            prototypes (Tensor | Sequence[Tensor]): One (K, D) tensor for
                every module, or one per module.
        """
        for augment, protos in zip(self.augments,
                                   self._per_module(prototypes)):
            augment.set_prototypes(protos)

    def _per_module(self, prototypes: Prototypes) -> list:
        if prototypes is None or isinstance(prototypes, Tensor):
            return [prototypes] * len(self.augments)
        if len(prototypes) != len(self.augments):
            raise ValueError(
                f'{self.__class__.__name__}: got {len(prototypes)} prototype '
                f'tensors for {len(self.augments)} augmentation modules')
        return list(prototypes)

    def forward(self,
                inputs: Sequence[Tensor],
                prototypes: Prototypes = None) -> Tuple[Tensor, ...]:
        """Run the neck, then augment each of its outputs.

        Args:
            inputs (Sequence[Tensor]): Inputs of the wrapped neck.
            prototypes (Tensor | Sequence[Tensor], optional): Prototypes of
                shape (K, D) for every module, or one per module; None uses
                the buffers. Defaults to None.

        Returns:
            tuple[Tensor]: The augmented neck outputs, each (N, D, H_i, W_i).
        """
        outs = self.neck(inputs)
        if isinstance(outs, Tensor):
            outs = (outs, )
        if self.num_outs is not None and len(outs) != self.num_outs:
            raise ValueError(
                f'{self.__class__.__name__}: expected {self.num_outs} neck '
                f'outputs (num_outs), got {len(outs)}')
        protos = self._per_module(prototypes)
        results = []
        for i, out in enumerate(outs):
            j = 0 if self.share else i
            results.append(self.augments[j](out, protos[j]))
        return tuple(results)
