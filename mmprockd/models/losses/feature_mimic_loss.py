"""Feature-mimic baselines: PKD with a FitNet connector, and the inverted
projection of Auty et al. (2024)."""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmprockd.registry import MODELS

PROJECTORS = ('student', 'teacher')


def pkd_standardise(x: Tensor, eps: float = 1e-6) -> Tensor:
    """PKD's normalisation of an ``(N, C, H, W)`` map.

    Each channel is standardised over the batch and space jointly: its mean
    and (unbiased) standard deviation are taken over ``(N, H, W)`` and
    ``(x - mean) / (std + eps)`` is returned. A channel with a single value
    (one image, a 1x1 map) has no spread to correlate; it gives zeros (in
    the graph) where the unbiased std would give NaN.
    """
    centred = x - x.mean(dim=(0, 2, 3), keepdim=True)
    if x.numel() // x.shape[1] < 2:
        return centred
    std = x.std(dim=(0, 2, 3), keepdim=True)  # unbiased, as PKD
    return centred / (std + eps)


@MODELS.register_module()
class FeatureMimicLoss(nn.Module):
    """PKD feature imitation across tasks, with a learnable 1x1 projector.

    For every student level ``l`` the teacher layers are resized to its grid
    and concatenated into the target ``t`` (detached: the teacher never
    learns). Both sides are standardised per channel over ``(N, H, W)``
    (:func:`pkd_standardise`), and

    ``loss = loss_weight * sum_l MSE(std(s_l), std(t_l)) / 2``

    with the MSE averaged over the elements of level ``l`` and the levels
    summed, as in PKD (Cao et al. 2022; mmrazor's ``PKDLoss`` per FPN level).
    Up to a constant, each level's term is ``1 - r`` with ``r`` the Pearson
    correlation of a channel's student and teacher values.

    The teacher's channels differ from the student's (cross-task), so a 1x1
    conv per level maps one side to the other:

    - ``projector='student'`` (FitNet, the default): ``s_l`` is the student
      level through a conv from its channels to ``teacher_channels``;
      ``t_l`` is the teacher target as it is.
    - ``projector='teacher'`` (inverted projection, Auty, Miles,
      Kolbeinsson, Mikolajczyk, "Learning to Project for Cross-Task
      Knowledge Distillation", 2024): ``t_l`` is the detached teacher target
      through a conv from ``teacher_channels`` to the level's channels, so
      the projector can learn to drop the teacher's task-specific
      directions; ``s_l`` is the student level as it is. The gradient
      reaches the projector and the student, not the teacher.

    Args:
        student_channels (Sequence[int]): channels of each student level.
        teacher_channels (int): channels of the concatenated teacher target.
        loss_weight (float): multiplies the sum over levels. PKD uses 6 for
            RetinaNet (per FPN level, levels summed). Defaults to 1.0.
        projector (str): ``'student'`` or ``'teacher'``, the side that the
            1x1 convs (``connectors``, one per level) sit on. Defaults to
            ``'student'``.
    """

    def __init__(self,
                 student_channels: Sequence[int],
                 teacher_channels: int,
                 loss_weight: float = 1.0,
                 projector: str = 'student') -> None:
        super().__init__()
        if projector not in PROJECTORS:
            raise ValueError(
                "FeatureMimicLoss: projector must be 'student' or "
                f"'teacher', got {projector!r}")
        self.projector = projector
        if projector == 'student':
            convs = (
                nn.Conv2d(c, teacher_channels, 1) for c in student_channels)
        else:
            convs = (
                nn.Conv2d(teacher_channels, c, 1) for c in student_channels)
        self.connectors = nn.ModuleList(convs)
        self.loss_weight = loss_weight

    def forward(self, student: Sequence[Tensor],
                teacher: Sequence[Tensor]) -> Tensor:
        """Sum over student levels of the halved MSE of the standardised
        maps, times ``loss_weight``.

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
        loss = 0.
        for conn, s in zip(self.connectors, student):
            t = torch.cat([
                F.interpolate(
                    m, size=s.shape[-2:], mode='bilinear', align_corners=False)
                if m.shape[-2:] != s.shape[-2:] else m for m in teacher
            ],
                          dim=1).detach().float()
            s = s.float()
            if self.projector == 'student':
                s = conn(s)
            else:
                t = conn(t)
            loss = loss + F.mse_loss(pkd_standardise(s),
                                     pkd_standardise(t)) / 2
        return self.loss_weight * loss


@MODELS.register_module()
class BranchMimicLoss(nn.Module):
    """[ours] PKD from the prototype branch's features to the student's.

    ProC-KD's prototype branch turns the frozen teacher's maps into features
    of the student's own shape (the prototype levels of
    :class:`ProtoDistiller`, after the level adapter) and trains them on the
    student's task. This loss asks each student level to correlate with the
    branch's features of the same level, channel by channel:
    ``loss = loss_weight * sum_l MSE(std(s_l), std(b_l)) / 2`` with PKD's
    standardisation (:func:`pkd_standardise`) and the branch side detached
    (the branch learns from its own task loss only). Unlike
    :class:`FeatureMimicLoss` the target is already in the student's space
    and shaped by the student's task, so no projector is needed.

    Args:
        loss_weight (float): multiplies the sum over levels. Defaults to 1.0.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student: Sequence[Tensor],
                branch: Sequence[Tensor]) -> Tensor:
        """Sum over levels of the halved MSE of the standardised maps.

        Args:
            student (Sequence[Tensor]): the student's maps of the prototype
                levels, ``(N, C_l, H_l, W_l)`` each.
            branch (Sequence[Tensor]): the branch's maps of the same levels
                and shapes (detached here).
        """
        if len(student) != len(branch):
            raise ValueError(f'BranchMimicLoss: {len(student)} student '
                             f'levels but {len(branch)} branch levels')
        loss = 0.
        for s, b in zip(student, branch):
            if s.shape != b.shape:
                raise ValueError('BranchMimicLoss: student and branch maps '
                                 f'differ: {tuple(s.shape)} vs '
                                 f'{tuple(b.shape)}')
            loss = loss + F.mse_loss(
                pkd_standardise(s.float()), pkd_standardise(
                    b.detach().float())) / 2
        return self.loss_weight * loss
