# Copyright (c) mmprockd contributors. All rights reserved.
"""[ours] A frozen backbone whose outputs are stored by input content.

A linear probe on a frozen ImageNet backbone (stage 1 of probe-then-distil)
or a frozen probe distilled into a student (stage 2) runs the same backbone
on the same few images epoch after epoch. With a deterministic pipeline
(a fixed resize and a flip) there are only so many distinct inputs, and a
frozen backbone in eval mode maps each to the same features every time.
This wrapper keys every sample by a digest of its input tensor (values,
shape and dtype), so it can never serve the features of another input:
a random crop or colour jitter only lowers the hit rate. It is what
``teacher_cache`` does for :class:`ProtoDistiller`, for models that never
see data samples (a backbone gets only the batch tensor).

mmpretrain's ``frozen_stages`` and ``norm_eval`` freeze a backbone only in
part (a stem or the last conv may stay trainable); this wrapper freezes all
of it and keeps it in eval mode, or the cache would be wrong.
"""
import hashlib
from typing import Hashable, List, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmprockd.registry import MODELS
from ..distillers.teacher_cache import TeacherFeatureCache


def content_key(x: Tensor) -> Hashable:
    """A digest of one sample's values, shape and dtype."""
    data = x.detach().contiguous().cpu()
    digest = hashlib.blake2b(
        data.view(torch.uint8).numpy().tobytes(), digest_size=16)
    return digest.hexdigest(), tuple(data.shape), str(data.dtype)


@MODELS.register_module()
class CachedFrozenBackbone(BaseModule):
    """A frozen backbone (no gradient, always in eval mode) whose per-sample
    outputs are cached by input content.

    Args:
        backbone (dict): the backbone config (e.g. mmpretrain's
            ``MobileNetV2`` with a ``Pretrained`` init_cfg); it must return
            a tensor or a tuple of tensors with the batch first.
        max_items (int): samples kept (LRU). Defaults to 20000.
        dtype (str): storage precision, ``'fp32'`` (default: the cached
            features are the computed ones, bit for bit), ``'fp16'`` or
            ``'bf16'``.
    """

    def __init__(self,
                 backbone: dict,
                 max_items: int = 20000,
                 dtype: str = 'fp32') -> None:
        super().__init__()
        self.backbone = MODELS.build(backbone)
        self.backbone.requires_grad_(False)
        self.cache = TeacherFeatureCache(max_items=max_items, dtype=dtype)
        self._single = None  # does the backbone return one tensor

    def train(self, mode: bool = True) -> 'CachedFrozenBackbone':
        super().train(mode)
        self.backbone.eval()
        return self

    def init_weights(self) -> None:
        super().init_weights()
        # a Pretrained init_cfg replaces the weights: stored outputs of the
        # old ones would be wrong
        self.cache.clear()

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        keys = [content_key(s) for s in x]
        stored = self.cache.get_each(keys, x.device)
        missing = [i for i, s in enumerate(stored) if s is None]
        if missing:
            out = self.backbone(x[missing])
            single = isinstance(out, Tensor)
            fresh = [out] if single else list(out)
            self.cache.put([keys[i] for i in missing], fresh)
            for j, i in enumerate(missing):
                stored[i] = [f[j] for f in fresh]
        else:
            single = self._single
        self._single = single
        levels: List[Tensor] = [
            torch.stack(maps) for maps in zip(*stored)  # type: ignore
        ]
        return levels[0] if single else tuple(levels)
