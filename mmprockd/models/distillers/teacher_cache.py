"""Reuse teacher features across epochs when the teacher's input is
deterministic.

The teacher is frozen, so for the same image, the same geometric transform
and the same padded batch shape its features never change. With a
deterministic training pipeline (fixed resize, no random crop, scale jitter
or photometric noise) they can be computed once and reused every epoch.

**Caveat:** the key is built from the sample's image path (or id), its
``img_shape``, ``scale_factor``, ``flip``/``flip_direction`` and the batch's
padded shape. A random crop, a random resize to the same shape, or colour
jitter changes the input without changing the key, and the cache would then
return features of another view of the image. Keep ``teacher_cache`` off
for such pipelines (the mmdet COCO 1x pipeline has a random flip only,
which is in the key, so it is valid there). Batch augments of the data
preprocessor (Mixup, CutMix, a multi-scale resize) act after the key is
made: ``ProtoDistiller`` refuses a cache with them at build.
"""
from collections import OrderedDict
from typing import Hashable, List, Optional, Sequence

import torch
from torch import Tensor

_DTYPES = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16
}


def sample_key(sample, batch_shape: Sequence[int]) -> Optional[Hashable]:
    """The cache key of one data sample, or None if it has no identity."""
    meta = sample.metainfo
    ident = meta.get('img_path', meta.get('img_id'))
    if ident is None:
        return None

    def freeze(v):
        if isinstance(v, (list, tuple)):
            return tuple(freeze(x) for x in v)
        if hasattr(v, 'tolist'):
            return freeze(v.tolist())
        return v

    return (ident, freeze(meta.get('img_shape')),
            freeze(meta.get('scale_factor')), bool(meta.get('flip', False)),
            meta.get('flip_direction'), tuple(batch_shape))


class TeacherFeatureCache:
    """An LRU store of per-sample teacher maps, kept on the CPU.

    Args:
        max_items (int): samples kept; the oldest are dropped first.
        dtype (str): storage precision, ``'fp16'`` (default), ``'bf16'`` or
            ``'fp32'``; features come back as float32 on the input device.
    """

    def __init__(self, max_items: int = 20000, dtype: str = 'fp16') -> None:
        if dtype not in _DTYPES:
            raise ValueError(f'TeacherFeatureCache: dtype must be one of '
                             f'{list(_DTYPES)}, got {dtype!r}')
        if max_items <= 0:
            raise ValueError('TeacherFeatureCache: max_items must be > 0')
        self.max_items = max_items
        self.dtype = _DTYPES[dtype]
        self._store: 'OrderedDict[Hashable, List[Tensor]]' = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        """Drop every stored sample (the counters stay)."""
        self._store.clear()

    def get(self, keys: Sequence[Optional[Hashable]],
            device: torch.device) -> Optional[List[Tensor]]:
        """Batched maps if every key is stored, else None (counted)."""
        if not keys or any(k is None or k not in self._store for k in keys):
            self.misses += 1
            return None
        self.hits += 1
        for k in keys:
            self._store.move_to_end(k)
        levels = zip(*(self._store[k] for k in keys))
        return [
            torch.stack(maps).to(device=device, dtype=torch.float32)
            for maps in levels
        ]

    def get_each(self, keys: Sequence[Optional[Hashable]],
                 device: torch.device) -> List[Optional[List[Tensor]]]:
        """Per sample: its stored maps (float32 on ``device``, one per
        level, without the batch axis) or None; hits and misses are counted
        per sample."""
        out: List[Optional[List[Tensor]]] = []
        for k in keys:
            if k is None or k not in self._store:
                self.misses += 1
                out.append(None)
                continue
            self.hits += 1
            self._store.move_to_end(k)
            out.append([
                m.to(device=device, dtype=torch.float32)
                for m in self._store[k]
            ])
        return out

    def put(self, keys: Sequence[Optional[Hashable]],
            feats: Sequence[Tensor]) -> None:
        """Store sample ``i`` of every level under ``keys[i]``."""
        for i, k in enumerate(keys):
            if k is None:
                continue
            self._store[k] = [
                f[i].detach().to('cpu', self.dtype) for f in feats
            ]
            self._store.move_to_end(k)
        while len(self._store) > self.max_items:
            self._store.popitem(last=False)
