"""[ours] Box-regression distillation from a dense detector's frozen
branch: the student's box deltas pulled towards the branch's where the
branch is confident."""
from typing import Sequence

import torch.nn as nn
from torch import Tensor

from mmprockd.registry import MODELS


def anchor_confidence(logits: Tensor, num_anchors: int, kind: str) -> Tensor:
    """The largest foreground class probability of every anchor of a dense
    head's score map, ``(N, A, H, W)``.

    ``logits`` is one level as :class:`StudentInterface` gives it: sigmoid
    heads ``(N, A * C, H, W)`` (anchor-major, as mmdet lays them out);
    softmax heads ``(N, C + 1, A, H, W)`` with the background last.
    """
    if kind == 'sigmoid':
        n, ac, h, w = logits.shape
        probs = logits.sigmoid().view(n, num_anchors, ac // num_anchors, h, w)
        return probs.amax(dim=2)
    return logits.softmax(dim=1)[:, :-1].amax(dim=1)


@MODELS.register_module()
class BoxDistillLoss(nn.Module):
    """[ours] L1 between the student's and the branch's box regression,
    each anchor weighted by the branch's confidence there.

    A dense detector's KL (:class:`ConsistencyKLLoss`) passes what the
    frozen branch scores, not where it puts the box. This loss adds the
    box: at every anchor, the L1 distance between the student's encoded
    deltas and the branch's (both from the same box coder, so in the same
    units), summed over the four coordinates, weighted by the branch's
    largest class probability at that anchor (detached), and divided by
    the sum of the weights over all anchors of all levels. Background
    anchors, where the branch's deltas mean nothing, weigh next to
    nothing. Distilling the regression output goes back to Chen et al.,
    "Learning efficient object detection models with knowledge
    distillation" (NeurIPS 2017); the confidence weighting is ours.

    Args:
        kind (str): ``'sigmoid'`` or ``'softmax'``: how the branch's scores
            become probabilities (the student head's ``kl_kind``).
        loss_weight (float): multiplies the loss. Defaults to 1.0.
    """

    def __init__(self,
                 kind: str = 'sigmoid',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if kind not in ('softmax', 'sigmoid'):
            raise ValueError("BoxDistillLoss: kind must be 'softmax' or "
                             f"'sigmoid', got {kind!r}")
        self.kind = kind
        self.loss_weight = loss_weight

    def forward(self, preds: Sequence[Tensor], targets: Sequence[Tensor],
                target_logits: Sequence[Tensor]) -> Tensor:
        """The weighted L1 over the anchors of all levels.

        Args:
            preds (Sequence[Tensor]): the student's box deltas, one
                ``(N, A * 4, H, W)`` map per level.
            targets (Sequence[Tensor]): the branch's, same shapes.
            target_logits (Sequence[Tensor]): the branch's scores per
                level (see :func:`anchor_confidence`).
        """
        if not len(preds) == len(targets) == len(target_logits):
            raise ValueError(
                f'BoxDistillLoss: {len(preds)} student levels, '
                f'{len(targets)} branch box levels and {len(target_logits)} '
                'branch score levels; they must be the same levels')
        total = preds[0].new_zeros(())
        weight_sum = preds[0].new_zeros(())
        for level, (p, t, lg) in enumerate(zip(preds, targets, target_logits)):
            if p.shape != t.shape or p.shape[1] % 4:
                raise ValueError(
                    f'BoxDistillLoss: level {level}: student deltas '
                    f'{tuple(p.shape)}, branch deltas {tuple(t.shape)}; '
                    'both must be (N, A * 4, H, W) of the same head')
            n, a4, h, w = p.shape
            conf = anchor_confidence(lg.detach().float(), a4 // 4, self.kind)
            if conf.shape != (n, a4 // 4, h, w):
                raise ValueError(
                    f'BoxDistillLoss: level {level}: the branch scores give '
                    f'{tuple(conf.shape)} anchor confidences for '
                    f'{(n, a4 // 4, h, w)} anchors')
            l1 = (p.float() - t.detach().float()).abs()
            l1 = l1.view(n, a4 // 4, 4, h, w).sum(dim=2)
            total = total + (l1 * conf).sum()
            weight_sum = weight_sum + conf.sum()
        return self.loss_weight * total / weight_sum.clamp(min=1e-6)


__all__ = ['BoxDistillLoss', 'anchor_confidence']
