"""How specialised the prototypes are: the entropy of a soft assignment to
K prototypes (the learner's ``return_assign``, the augment's
``return_attn``), reported by the proxy benchmarks (docs/benchmark.md)."""
import math
from typing import Tuple

from torch import Tensor


def assignment_entropy(assign: Tensor) -> Tuple[Tensor, Tensor]:
    """How specialised a soft assignment to K prototypes is.

    Args:
        assign (Tensor): (N, K, H, W), summing to 1 over K (the learner's
            ``return_assign`` or the augment's ``return_attn``).

    Returns:
        tuple[Tensor, Tensor]: per position, the entropy over the K
        prototypes divided by log K, of shape (N, H, W): 1 when a position
        is spread evenly over all prototypes, 0 when it goes to one
        prototype; and the mass each prototype receives, summed over the
        positions, of shape (K,), from which the usage entropy
        (:func:`usage_entropy`) says whether all prototypes are used or a
        few take everything.
    """
    if assign.dim() != 4:
        raise ValueError('assignment_entropy: assign must be (N, K, H, W), '
                         f'got {tuple(assign.shape)}')
    k = assign.size(1)
    if k < 2:
        raise ValueError('assignment_entropy: needs K >= 2 prototypes')
    p = assign.float().clamp_min(0)
    ent = -(p * p.clamp_min(1e-12).log()).sum(dim=1) / math.log(k)
    return ent, p.sum(dim=(0, 2, 3))


def usage_entropy(mass: Tensor) -> float:
    """Entropy of the prototypes' share of the assignment mass (the second
    output of :func:`assignment_entropy`, summed over batches), divided by
    log K: 1 when every prototype gets the same share, 0 when one gets all
    of it."""
    share = mass.float() / mass.sum().clamp_min(1e-12)
    ent = -(share * share.clamp_min(1e-12).log()).sum()
    return float(ent / math.log(share.numel()))
