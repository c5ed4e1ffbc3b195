"""Refuse to write a checkpoint whose weights are not finite."""
from typing import Dict, List

import torch
from mmengine.hooks import Hook

from mmprockd.registry import HOOKS


def nonfinite_keys(state_dict: Dict[str, object]) -> List[str]:
    """The keys of the floating-point tensors that hold a NaN or an inf.

    Args:
        state_dict (dict): Parameter and buffer names to tensors; entries
            that are not floating-point tensors are skipped.

    Returns:
        list[str]: the offending keys, in the state dict's order.
    """
    bad = []
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if not bool(torch.isfinite(value).all()):
                bad.append(key)
    return bad


def check_finite_state_dict(state_dict: Dict[str, object], what: str) -> None:
    """Raise when a state dict about to be saved holds non-finite weights.

    Args:
        state_dict (dict): The weights to be saved.
        what (str): What is being saved, for the message (a file name).

    Raises:
        RuntimeError: naming ``what``, how many tensors are not finite and
            the first few keys.
    """
    bad = nonfinite_keys(state_dict)
    if bad:
        raise RuntimeError(
            f'refusing to save {what}: {len(bad)} of its {len(state_dict)} '
            f'tensors are not finite (NaN or inf), e.g. {bad[:5]}: the '
            'training diverged')


@HOOKS.register_module()
class FiniteCheckpointHook(Hook):
    """Stop a run rather than let mmengine's ``CheckpointHook`` save NaN or
    inf weights.

    It runs in ``before_save_checkpoint`` with the lowest priority, after
    any hook that changes the checkpoint (e.g. ``EMAHook``), and raises
    before anything is written. ``tools/train.py`` adds it to every run;
    ``StudentCheckpointHook`` makes the same check itself.
    """
    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Check ``checkpoint['state_dict']``.

        Raises:
            RuntimeError: some weights are not finite.
        """
        meta = checkpoint.get('meta', {})
        what = (f'the checkpoint of epoch {meta.get("epoch")}, iteration '
                f'{meta.get("iter")} in {runner.work_dir}')
        check_finite_state_dict(checkpoint.get('state_dict', {}), what)
