"""mmseg's data preprocessor with batch augmentations built from config.

mmseg 1.2's ``SegDataPreProcessor`` stores ``batch_augments`` as given and
calls it as one function, so the list of config dicts its docstring promises
fails on the first training batch. This subclass builds every entry with the
registry (so ``type='mmdet.BatchFixedSizePad'`` or an unscoped type of the
config's ``default_scope`` both work) and applies them in order, after
stacking and padding, on training batches only (as mmseg does).
"""
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmseg.models.data_preprocessor import SegDataPreProcessor
from torch import Tensor

from mmprockd.registry import MODELS

BatchAugment = Union[dict, Callable]


class BatchAugmentSequence(nn.Module):
    """Apply batch augments one after the other.

    Modules are held in a ``ModuleList`` so that they move with the
    preprocessor (``.to(device)``); other callables are kept as they are.

    Args:
        augments (Sequence[Callable]): each maps ``(inputs, data_samples)``
            to ``(inputs, data_samples)``.
    """

    def __init__(self, augments: Sequence[Callable]) -> None:
        super().__init__()
        self.modules_ = nn.ModuleList(
            [a for a in augments if isinstance(a, nn.Module)])
        self.augments = list(augments)

    def forward(self, inputs: Tensor,
                data_samples: Optional[list]) -> Tuple[Tensor, list]:
        """Run every augment on the stacked ``(N, C, H, W)`` batch."""
        for augment in self.augments:
            inputs, data_samples = augment(inputs, data_samples)
        return inputs, data_samples


@MODELS.register_module()
class SegDataPreProcessorWithAugments(SegDataPreProcessor):
    """``SegDataPreProcessor`` whose ``batch_augments`` are config dicts.

    Args:
        batch_augments (list[dict | Callable], optional): batch augments,
            each a config (built from ``mmprockd``'s ``MODELS`` registry,
            which falls back to the ``default_scope``'s registry and resolves
            scoped types such as ``'mmdet.BatchFixedSizePad'``) or an already
            built callable ``(inputs, data_samples) -> (inputs,
            data_samples)``. Applied in order to training batches after
            padding. Defaults to None.
        **kwargs: the other arguments of ``SegDataPreProcessor`` (``mean``,
            ``std``, ``size``, ``size_divisor``, ``pad_val``,
            ``seg_pad_val``, ``bgr_to_rgb``, ``rgb_to_bgr``, ``test_cfg``).

    Note:
        mmdet's ``BatchFixedSizePad`` builds here, but its ``pad_seg``
        reads mmdet's ``gt_sem_seg.sem_seg`` field, not mmseg's
        ``gt_sem_seg.data``: use it with ``pad_seg=False`` only if the
        labels need no padding, or write an mmseg-aware augment.
    """

    def __init__(self,
                 batch_augments: Optional[List[BatchAugment]] = None,
                 **kwargs) -> None:
        super().__init__(batch_augments=None, **kwargs)
        if batch_augments is None:
            return
        if isinstance(batch_augments, dict) or callable(batch_augments):
            batch_augments = [batch_augments]
        built = []
        for i, augment in enumerate(batch_augments):
            if isinstance(augment, dict):
                augment = MODELS.build(augment)
            if not callable(augment):
                name = type(augment).__name__
                raise TypeError(
                    f'SegDataPreProcessorWithAugments: batch_augments[{i}] '
                    f'must be a config dict or a callable, got {name}')
            built.append(augment)
        self.batch_augments = BatchAugmentSequence(built) if built else None
