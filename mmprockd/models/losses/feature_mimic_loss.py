"""Feature-mimic baseline (FitNet hint with PKD normalisation)."""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmprockd.registry import MODELS


def _standardise(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Zero mean, unit variance per sample and channel over space."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


@MODELS.register_module()
class FeatureMimicLoss(nn.Module):
    """MSE between standardised student features, mapped by a learnable 1x1
    connector to the teacher's channels, and standardised teacher features.

    This is the baseline ProC-KD is compared with: it copies the teacher's
    feature structure directly. The connector sits on the student side
    (FitNet), so the frozen teacher target cannot collapse; standardising
    both sides (PKD) removes the scale gap between a transformer teacher
    and a CNN student.

    Args:
        student_channels (Sequence[int]): channels of each student level.
        teacher_channels (int): channels of the aligned teacher target.
        loss_weight (float): multiplies the loss. Defaults to 1.0.
    """

    def __init__(self,
                 student_channels: Sequence[int],
                 teacher_channels: int,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.connectors = nn.ModuleList(
            nn.Conv2d(c, teacher_channels, 1) for c in student_channels)
        self.loss_weight = loss_weight

    def forward(self, student: Sequence[Tensor],
                teacher: Sequence[Tensor]) -> Tensor:
        """Mean over student levels of the MSE.

        Args:
            student (Sequence[Tensor]): one ``(N, C_l, H_l, W_l)`` per level.
            teacher (Sequence[Tensor]): the teacher layers; for each student
                level they are resized to its grid and concatenated (the
                target, detached).
        """
        if len(student) != len(self.connectors):
            raise ValueError(
                f'FeatureMimicLoss: {len(self.connectors)} connectors but '
                f'{len(student)} student levels')
        losses = []
        for conn, s in zip(self.connectors, student):
            t = torch.cat([
                F.interpolate(
                    m, size=s.shape[-2:], mode='bilinear', align_corners=False)
                if m.shape[-2:] != s.shape[-2:] else m for m in teacher
            ],
                          dim=1)
            s = _standardise(conn(s.float()))
            t = _standardise(t.detach().float())
            losses.append(((s - t)**2).mean())
        return self.loss_weight * torch.stack(losses).mean()
