"""KL consistency between the prototype branch and the student (METHOD 3)."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmprockd.registry import MODELS


def _bernoulli_kl(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """Elementwise KL(Bern(sigmoid(p)) || Bern(sigmoid(q)))."""
    p = p_logits.sigmoid()
    log_p, log_1p = F.logsigmoid(p_logits), F.logsigmoid(-p_logits)
    log_q, log_1q = F.logsigmoid(q_logits), F.logsigmoid(-q_logits)
    return p * (log_p - log_q) + (1 - p) * (log_1p - log_1q)


@MODELS.register_module()
class ConsistencyKLLoss(nn.Module):
    """KL(p(target) || p(pred)) with a temperature, summed over classes.

    ``target`` are the logits of the student's head on the
    prototype-augmented teacher features; ``pred`` those on the student's own
    features.

    * ``kind='softmax'`` (classification, segmentation): KL over the class
      axis 1 of ``(N, C)`` or ``(N, C, H, W)``; averaged over samples or
      valid pixels.
    * ``kind='sigmoid'`` (RetinaNet-style heads): each anchor and class is a
      Bernoulli variable; the KL is summed over classes and anchors of a
      location and averaged over locations.

    The loss is multiplied by ``T**2`` (Hinton et al.), so that its gradient
    keeps its size when ``T`` changes.

    Args:
        kind (str): ``'softmax'`` or ``'sigmoid'``.
        temperature (float): divides both logits. Defaults to 1.0.
        detach_target (bool): no gradient through the target (the student
            learns from the prototype branch, not the other way). Defaults to
            True.
        loss_weight (float): multiplies the loss. Defaults to 1.0.
    """

    def __init__(self,
                 kind: str = 'softmax',
                 temperature: float = 1.0,
                 detach_target: bool = True,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if kind not in ('softmax', 'sigmoid'):
            raise ValueError("ConsistencyKLLoss: kind must be 'softmax' or "
                             f"'sigmoid', got {kind!r}")
        if temperature <= 0:
            raise ValueError('ConsistencyKLLoss: temperature must be > 0, '
                             f'got {temperature}')
        self.kind = kind
        self.temperature = float(temperature)
        self.detach_target = detach_target
        self.loss_weight = loss_weight

    def _single(self, pred: Tensor, target: Tensor,
                valid: Optional[Tensor]) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError('ConsistencyKLLoss: pred and target shapes '
                             f'differ: {tuple(pred.shape)} vs '
                             f'{tuple(target.shape)}')
        T = self.temperature
        pred, target = pred.float() / T, target.float() / T
        if self.detach_target:
            target = target.detach()
        if self.kind == 'softmax':
            kl = F.kl_div(
                F.log_softmax(pred, dim=1),
                F.log_softmax(target, dim=1),
                reduction='none',
                log_target=True).sum(1)  # (N,) or (N, H, W)
        else:
            kl = _bernoulli_kl(target, pred)
            kl = kl.sum(1) if kl.dim() > 1 else kl  # over anchors x classes
        if valid is not None:
            valid = valid.to(kl.dtype)
            return (kl * valid).sum() / valid.sum().clamp(min=1.0)
        return kl.mean()

    def forward(self,
                preds: Sequence[Tensor],
                targets: Sequence[Tensor],
                valid: Optional[List[Tensor]] = None) -> Tensor:
        """Mean over levels of the per-level loss.

        Args:
            preds (Sequence[Tensor]): student logits, one tensor per level.
            targets (Sequence[Tensor]): prototype-branch logits, same shapes.
            valid (list[Tensor], optional): per level, a bool mask of the
                positions that count (``(N, H, W)``; segmentation ignore).
        """
        if len(preds) != len(targets):
            raise ValueError(f'ConsistencyKLLoss: {len(preds)} pred levels '
                             f'but {len(targets)} target levels')
        losses = [
            self._single(p, t, None if valid is None else valid[i])
            for i, (p, t) in enumerate(zip(preds, targets))
        ]
        return self.loss_weight * self.temperature**2 * torch.stack(
            losses).mean()
