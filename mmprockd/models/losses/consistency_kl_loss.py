"""KL consistency between the prototype branch and the student (METHOD 3)."""
from typing import List, Optional, Sequence, Tuple

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

    * ``kind='softmax'`` (classification, segmentation, softmax detection
      heads): KL over the class axis 1 of ``(N, C)``, ``(N, C, H, W)`` or,
      for a detection head with A anchors per location,
      ``(N, C + 1, A, H, W)`` (:class:`StudentInterface` puts the classes of
      each anchor on axis 1), summed over the anchors of a location.
    * ``kind='sigmoid'`` (RetinaNet-style heads): each anchor and class is a
      Bernoulli variable; the KL is summed over the classes and anchors of a
      location.

    A "location" is a sample (classification), a valid pixel
    (segmentation) or a grid cell of one level (detection). ``reduction``
    says how locations of several levels (FPN) are averaged:

    * ``'level'``: the mean over the locations of each level, then the mean
      over levels. Every level weighs the same, so one P7 cell weighs as
      much as all the P3 cells that cover it. (The authors' code has one
      level; this was our first choice for FPNs.)
    * ``'location'`` [ours]: the mean over all locations of all levels, so
      every location weighs the same.

    The two agree for a single level. The loss is multiplied by ``T**2``
    (Hinton et al.), so that its gradient keeps its size when ``T`` changes.

    Args:
        kind (str): ``'softmax'`` or ``'sigmoid'``.
        temperature (float): divides both logits. Defaults to 1.0.
        detach_target (bool): no gradient through the target (the student
            learns from the prototype branch, not the other way). Defaults to
            True.
        reduction (str): ``'level'`` or ``'location'``, see above.
            Defaults to ``'level'``.
        weighting (str, optional): ``'confidence'`` [ours]: each location's
            KL is weighted by the target's confidence there, the largest
            class probability over its classes (and anchors; foreground
            classes only for softmax detection heads) at T = 1, detached,
            and a level's (or all levels') weighted sum is divided by the
            sum of the weights instead of the count. On a
            dense detector most anchors are background on which both sides
            are near 0, and an unweighted mean dilutes the few locations
            where the target says something. None (default) weighs every
            location the same.
        loss_weight (float): multiplies the loss. Defaults to 1.0.
    """

    def __init__(self,
                 kind: str = 'softmax',
                 temperature: float = 1.0,
                 detach_target: bool = True,
                 reduction: str = 'level',
                 weighting: Optional[str] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if kind not in ('softmax', 'sigmoid'):
            raise ValueError("ConsistencyKLLoss: kind must be 'softmax' or "
                             f"'sigmoid', got {kind!r}")
        if temperature <= 0:
            raise ValueError('ConsistencyKLLoss: temperature must be > 0, '
                             f'got {temperature}')
        if reduction not in ('level', 'location'):
            raise ValueError("ConsistencyKLLoss: reduction must be 'level' "
                             f"or 'location', got {reduction!r}")
        if weighting not in (None, 'confidence'):
            raise ValueError("ConsistencyKLLoss: weighting must be None or "
                             f"'confidence', got {weighting!r}")
        self.weighting = weighting
        self.kind = kind
        self.temperature = float(temperature)
        self.detach_target = detach_target
        self.reduction = reduction
        self.loss_weight = loss_weight

    def _single(self, pred: Tensor, target: Tensor,
                valid: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """The sum of the KL over the valid locations of one level, and
        their number."""
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
                log_target=True).sum(1)  # (N,), (N, H, W) or (N, A, H, W)
            if kl.dim() == 4:  # detection: sum the anchors of a location
                kl = kl.sum(1)
        else:
            kl = _bernoulli_kl(target, pred)
            kl = kl.sum(1) if kl.dim() > 1 else kl  # over anchors x classes
        weight = None
        if self.weighting == 'confidence':
            weight = self._confidence(target.detach() * T, kl.shape)
        if valid is not None:
            valid = valid.to(kl.dtype)
            weight = valid if weight is None else weight * valid
        if weight is not None:
            return (kl * weight).sum(), weight.sum()
        return kl.sum(), kl.new_tensor(float(kl.numel()))

    def _confidence(self, logits: Tensor, shape: torch.Size) -> Tensor:
        """The target's largest class probability at each location
        (``shape``, the KL's), at T = 1."""
        if self.kind == 'softmax':
            probs = logits.softmax(dim=1)
            if probs.dim() == 5:  # detection (N, C + 1, A, H, W): the
                # foreground classes (mmdet puts background last), then
                # the anchors of a location -> (N, H, W)
                conf = probs[:, :-1].amax(dim=1).amax(dim=1)
            else:
                conf = probs.amax(dim=1)
        else:
            conf = logits.sigmoid()
            conf = conf.amax(dim=1) if conf.dim() > 1 else conf
        return conf.reshape(shape)

    def forward(self,
                preds: Sequence[Tensor],
                targets: Sequence[Tensor],
                valid: Optional[List[Tensor]] = None) -> Tensor:
        """The KL averaged over locations (``reduction``).

        Args:
            preds (Sequence[Tensor]): student logits, one tensor per level.
            targets (Sequence[Tensor]): prototype-branch logits, same shapes.
            valid (list[Tensor], optional): per level, a bool mask of the
                positions that count (``(N, H, W)``; segmentation ignore).
        """
        if len(preds) != len(targets):
            raise ValueError(f'ConsistencyKLLoss: {len(preds)} pred levels '
                             f'but {len(targets)} target levels')
        sums, counts = zip(*[
            self._single(p, t, None if valid is None else valid[i])
            for i, (p, t) in enumerate(zip(preds, targets))
        ])
        sums, counts = torch.stack(sums), torch.stack(counts)
        # counts are location counts or weight sums; a level with none
        # (all ignored, or weights 0) has a sum of 0 and adds 0
        if self.reduction == 'level':
            loss = (sums / counts.clamp(min=1e-6)).mean()
        else:
            loss = sums.sum() / counts.sum().clamp(min=1e-6)
        return self.loss_weight * self.temperature**2 * loss
