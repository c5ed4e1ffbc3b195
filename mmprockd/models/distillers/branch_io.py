"""What goes in and out of ProtoDistiller's prototype branch besides its
forward pass: the outputs it hands to the distillation losses, the cache
that serves a frozen branch's outputs ([ours], ``branch_cache``) and the
loading of a trained branch from a checkpoint ([ours], ``branch_ckpt``)."""
from typing import Callable, Hashable, List, NamedTuple, Optional, Sequence

import torch
from mmengine.logging import MMLogger
from torch import Tensor

from .teacher_cache import TeacherFeatureCache


class BranchOutputs(NamedTuple):
    """What the prototype branch gives for a batch: its head's logits, its
    maps of the prototype levels, the learner's assignments of those levels
    (empty when cached without ``assign_loss``), the teacher features
    (None when the branch cache served some images) and a dense detection
    head's box deltas per level (empty without ``box_loss``)."""
    logits: List[Tensor]
    maps: List[Tensor]
    assigns: List[Tensor]
    teacher_feats: Optional[List[Tensor]]
    boxes: List[Tensor] = []


def cached_branch_outputs(cache: TeacherFeatureCache,
                          keys: Sequence[Optional[Hashable]],
                          device: torch.device,
                          run: Callable[[Tensor], BranchOutputs],
                          num_levels: int,
                          keep_maps: bool,
                          keep_assigns: bool,
                          keep_boxes: bool = False) -> BranchOutputs:
    """A frozen branch's outputs for the images named by ``keys`` (see
    ``sample_key``), from ``cache`` where it holds them; ``run(idx)``
    computes them for the images at ``idx`` that it lacks, and they are
    stored. The logits are
    always cached, the ``num_levels`` maps only if ``keep_maps`` and the
    assignments only if ``keep_assigns`` and the box deltas (as many levels
    as the logits) only if ``keep_boxes`` (a loss reads them). Every image's
    outputs come back rounded to the stored dtype, as a later hit returns
    them, so a step does not depend on whether it was the first."""
    cached = cache.get_each(keys, device)
    missing = [i for i, c in enumerate(cached) if c is None]
    if missing:
        out = run(torch.tensor(missing, device=device))
        fresh = out.logits + (out.boxes if keep_boxes else []) + \
            (out.maps if keep_maps else []) + \
            (out.assigns if keep_assigns else [])
        cache.put([keys[i] for i in missing], fresh)
        for j, i in enumerate(missing):
            cached[i] = [x[j].to(cache.dtype).float() for x in fresh]
    n_maps = num_levels if keep_maps else 0
    n_assigns = num_levels if keep_assigns else 0
    outs = [torch.stack(level) for level in zip(*cached)]
    n_heads = len(outs) - n_maps - n_assigns
    n_logits = n_heads // 2 if keep_boxes else n_heads
    maps = outs[n_heads:n_heads + n_maps]
    return BranchOutputs(outs[:n_logits], maps, outs[n_heads + n_maps:], None,
                         outs[n_logits:n_heads])


def load_branch_checkpoint(model: torch.nn.Module, path: str,
                           names: Sequence[str]) -> int:
    """Load the submodules ``names`` of ``model`` (those that are not None)
    from the ProtoDistiller checkpoint ``path``, strictly: each of their
    tensors must be there with its shape. A ``module.`` prefix (DDP) is
    dropped. Returns the number of tensors loaded.

    Raises:
        RuntimeError: if the file cannot be read or holds no state dict.
        ValueError: if a tensor is missing or has another shape.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    try:
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except Exception as err:
        raise RuntimeError(f'ProtoDistiller: branch_ckpt {path!r} could '
                           f'not be read: {err}') from err
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise RuntimeError(f'ProtoDistiller: branch_ckpt {path!r} holds '
                           'no state dict')
    state = {
        k[len('module.'):] if k.startswith('module.') else k: v
        for k, v in state.items()
    }
    ours = {
        f'{n}.{k}': v
        for n in names if getattr(model, n, None) is not None
        for k, v in getattr(model, n).state_dict().items()
    }
    missing = sorted(k for k in ours if k not in state)
    wrong = sorted(f'{k}: {tuple(state[k].shape)} in the file, '
                   f'{tuple(v.shape)} here' for k, v in ours.items()
                   if k in state and tuple(state[k].shape) != tuple(v.shape))
    if missing or wrong:
        raise ValueError(
            f'ProtoDistiller: branch_ckpt {path!r} does not hold this '
            f'branch: {len(missing)} tensors missing '
            f'{missing[:5]}{" ..." if len(missing) > 5 else ""}, '
            f'{len(wrong)} of another shape {wrong[:5]}; it must be a '
            'checkpoint of a ProtoDistiller with the same learner, '
            "augment, level adapter and student head (branch_head='own')")
    model.load_state_dict({k: state[k] for k in ours}, strict=False)
    MMLogger.get_current_instance().info(
        f'ProtoDistiller: the prototype branch ({len(ours)} tensors) '
        f'loaded from {path}')
    return len(ours)
