"""[ours] Self-training of the prototype branch on unlabelled images."""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmprockd.registry import MODELS


@MODELS.register_module()
class PseudoLabelLoss(nn.Module):
    """[ours] Cross-entropy of a classifier against its own confident
    predictions, on images that have no label.

    The prototype branch of :class:`ProtoDistiller` is a classifier on
    frozen-teacher features, trained on the labelled images only. With an
    unlabelled transfer set (label -1, docs/method.md) it can also learn
    from those images, as in pseudo-labelling (Lee, 2013) with FixMatch's
    confidence threshold (Sohn et al., 2020), here without a strong view:
    an image whose largest class probability reaches ``threshold`` is
    labelled with that class (no gradient through the label), the others
    are left out. The loss is

    ``loss_weight * sum_i [p_i >= threshold] * CE(logits_i, argmax_i) / M``

    over the ``M`` unlabelled images of the batch: FixMatch's mean over all
    of them, so the loss grows with the share of confident images instead
    of giving one confident image the weight of a batch.

    Args:
        threshold (float): the smallest class probability, in (0, 1], that
            makes a prediction a label. Defaults to 0.95 (FixMatch's).
        loss_weight (float): multiplies the loss. Defaults to 1.0.
    """

    def __init__(self,
                 threshold: float = 0.95,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if not 0 < threshold <= 1:
            raise ValueError('PseudoLabelLoss: threshold must be in (0, 1], '
                             f'got {threshold}')
        self.threshold = float(threshold)
        self.loss_weight = float(loss_weight)

    def forward(self, logits: Tensor) -> Tuple[Tensor, Tensor]:
        """The loss and the share of images that got a label.

        Args:
            logits (Tensor): ``(M, C)`` class logits of the unlabelled
                images, ``M >= 1``.

        Returns:
            tuple: the loss (a scalar) and the fraction of the ``M`` images
            above the threshold (a detached scalar, for the log).
        """
        if logits.dim() != 2 or logits.shape[0] == 0:
            raise ValueError('PseudoLabelLoss: expected (M, C) logits with '
                             f'M >= 1, got shape {tuple(logits.shape)}')
        with torch.no_grad():
            conf, label = logits.float().softmax(1).max(1)
            keep = (conf >= self.threshold).float()
        ce = F.cross_entropy(logits.float(), label, reduction='none')
        loss = (ce * keep).sum() / logits.shape[0]
        return self.loss_weight * loss, keep.mean()
