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

A cache belongs to the run, not to the model: its contents are not in the
model's ``state_dict`` (so neither in a student export nor in what
``branch_ckpt`` loads); ``ExactResumeHook`` keeps them in the training
checkpoints (:meth:`TeacherFeatureCache.state_dict`), so that a resumed run
serves the same hits as the uninterrupted one.
"""
from collections import OrderedDict
from typing import Any, Dict, Hashable, List, Optional, Sequence

import torch
from torch import Tensor

_DTYPES = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16
}
_NAMES = {v: k for k, v in _DTYPES.items()}


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

    def state_dict(self) -> Dict[str, Any]:
        """The contents, compactly: the keys in LRU order (oldest first),
        the shape of every stored map, and all of the maps flattened into
        one tensor of the storage dtype (a copy: a stored map may be a view
        of a whole batch, which ``torch.save`` would write whole); the
        dtype and the counters. Tensors, strings, numbers and tuples only,
        so a ``weights_only`` load reads it."""
        keys = list(self._store)
        maps = [m for k in keys for m in self._store[k]]
        data = torch.cat([m.reshape(-1) for m in maps]) if maps else \
            torch.zeros(0, dtype=self.dtype)
        return dict(
            dtype=_NAMES[self.dtype],
            keys=keys,
            shapes=[
                tuple(tuple(m.shape) for m in self._store[k]) for k in keys
            ],
            data=data,
            hits=self.hits,
            misses=self.misses)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Replace the contents and counters with those of
        :meth:`state_dict` (the newest ``max_items`` if there are more).

        Raises:
            ValueError: if ``state`` was stored in another dtype (its maps
                would not be the ones this cache stores) or its ``data``
                does not hold the maps its ``shapes`` name.
        """
        if state['dtype'] != _NAMES[self.dtype]:
            raise ValueError(
                f"TeacherFeatureCache: the saved contents are {state['dtype']}"
                f', this cache stores {_NAMES[self.dtype]}; set its '
                f"dtype={state['dtype']!r} to take them")
        data = state['data'].to('cpu', self.dtype)
        sizes = [
            int(torch.Size(s).numel()) for ss in state['shapes'] for s in ss
        ]
        if len(state['keys']) != len(state['shapes']) or \
                sum(sizes) != data.numel():
            raise ValueError(
                f"TeacherFeatureCache: the saved contents name "
                f"{len(state['keys'])} keys, {len(state['shapes'])} shape "
                f'lists and {sum(sizes)} values, but hold {data.numel()}')
        self._store.clear()
        pieces = iter(data.split(sizes)) if sizes else iter(())
        for key, shapes in zip(state['keys'], state['shapes']):
            # clones: a view would keep the whole flat tensor alive
            self._store[key] = [next(pieces).view(s).clone() for s in shapes]
        while len(self._store) > self.max_items:
            self._store.popitem(last=False)
        self.hits, self.misses = int(state['hits']), int(state['misses'])

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
