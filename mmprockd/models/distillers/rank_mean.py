"""The logged losses of a DDP step: the mean over ranks, not rank 0's.

mmengine's ``BaseModel.parse_losses`` (0.10.7) and its DDP wrapper's
``train_step`` hand the logger the log variables of the local rank, and
only rank 0 writes the log, so a 2-process log shows rank 0's half of each
global batch. :class:`RankMeanLogVars` replaces each logged value by its mean
over the ranks; the loss that is backpropagated is not touched (DDP already
averages the gradients).

Keys. Ranks may log different keys in one step: ``nan_guard`` drops the
distillation losses (and adds ``distill.loss_zero``) on the rank whose loss
was not finite. Every rank therefore keeps the same sorted list of the keys
agreed so far, and the one collective of a step is an ``all_reduce`` (sum)
of ``[flag, value_1, count_1, value_2, count_2, ...]`` over that list: a
rank without a key adds 0 to both, so each key's mean is over the ranks
that logged it. ``flag`` counts the ranks that logged a key outside the
list; then, and only then (the first step, and a step that brings a new
key), the ranks also gather their ``{key: value}`` dicts (a second
collective), take the means from those and extend the list with the union,
in the same order on every rank, so the buffers of later steps line up. A
key that no rank logged in a step is not logged. ``loss`` is the mean of the
ranks' total losses (each rank's sum over its own ``loss`` keys): with a key
on one rank only, it is not the sum of the logged parts.
"""
from typing import Dict, List

import torch
from mmengine.dist import (all_gather_object, all_reduce, get_world_size,
                           is_distributed)
from torch import Tensor


class RankMeanLogVars:
    """The mean over DDP ranks of a step's log variables.

    Call it on every rank at every step, with the ``log_vars`` of
    ``parse_losses``; outside a process group of more than one rank it
    returns them as they are. It must be called the same number of times on
    every rank, like any collective (DDP's backward already requires that).
    """

    def __init__(self) -> None:
        self.keys: List[str] = []  # the agreed keys, the same on all ranks
        self._index: Dict[str, int] = {}

    @staticmethod
    def active() -> bool:
        return is_distributed() and get_world_size() > 1

    def __call__(self, log_vars: Dict[str, Tensor]) -> Dict[str, Tensor]:
        if not log_vars or not self.active():
            return log_vars
        device = next(iter(log_vars.values())).device
        local = {k: v.detach().to(torch.float64) for k, v in log_vars.items()}
        zero = torch.zeros((), dtype=torch.float64, device=device)
        one = torch.ones((), dtype=torch.float64, device=device)
        new = any(k not in self._index for k in local)
        parts = [one if new else zero]
        for k in self.keys:
            v = local.get(k)
            parts += [zero, zero] if v is None else [v.to(device), one]
        buf = torch.stack(parts)
        all_reduce(buf, op='sum')
        buf = buf.cpu()  # the one host sync; the logger reads them anyway
        if buf[0] > 0:
            means = self._gather_means(local)
        else:
            means = {
                k: buf[1 + 2 * i] / buf[2 + 2 * i]
                for i, k in enumerate(self.keys) if buf[2 + 2 * i] > 0
            }
        # this rank's order first, then the keys only other ranks logged
        order = list(log_vars) + sorted(set(means) - set(log_vars))
        dtype = {k: v.dtype for k, v in log_vars.items()}
        default = torch.get_default_dtype()
        return {k: means[k].to(dtype.get(k, default)) for k in order}

    def _gather_means(self, local: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Means from every rank's ``{key: value}``; extends the key list."""
        gathered = all_gather_object({k: v.item() for k, v in local.items()})
        union = sorted(set().union(*gathered))
        self.keys = sorted(set(self.keys) | set(union))
        self._index = {k: i for i, k in enumerate(self.keys)}
        means = {}
        for k in union:
            values = [g[k] for g in gathered if k in g]
            means[k] = torch.tensor(
                sum(values) / len(values), dtype=torch.float64)
        return means
