"""[ours] Prototype-assignment distillation: the student's features learn to
fall on the same prototypes as the teacher's."""
from typing import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from mmprockd.registry import MODELS


@MODELS.register_module()
class PrototypeAssignLoss(nn.Module):
    """[ours] KL from the prototype branch's soft assignment to the
    student's, at every prototype level.

    ProC-KD's :class:`PrototypeLearner` softly assigns every token of the
    fused teacher features to K learned prototypes (its step 3). This loss
    transfers that part structure to the student directly, without asking
    the branch to be a better detector or classifier ("prototype-assignment
    distillation"): a 1x1 conv per level projects the
    student's map ``s_l`` (``C_l`` channels) to the learner's D channels,
    and the learner assigns the projected tokens over the same prototypes
    with the same assignment conv (:meth:`PrototypeLearner.assign_log_probs`,
    no gradient into it). With ``p`` the branch's assignment (detached) and
    ``q`` the student's, both (N, K, H_l, W_l),

    ``loss = loss_weight * sum_l mean_{n,h,w} sum_k p log(p / q)``.

    Only the student and the projectors learn from it. The target is
    informative only if the assignment has specialised: the authors' init
    leaves it spread evenly over K (docs/benchmark.md), NetVLAD's
    (``learner.assign_init='prototypes'``) does not.

    Args:
        student_channels (Sequence[int]): channels of the student's map at
            each prototype level (filled in by :class:`ProtoDistiller`).
        channels (int): the learner's D (filled in likewise).
        loss_weight (float): multiplies the sum over levels. Defaults to 1.0.
    """

    def __init__(self,
                 student_channels: Sequence[int],
                 channels: int,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.student_channels = [int(c) for c in student_channels]
        self.channels = int(channels)
        self.loss_weight = float(loss_weight)
        self.projectors = nn.ModuleList(
            nn.Conv2d(c, self.channels, 1) for c in self.student_channels)

    def forward(self, student: Sequence[Tensor], target: Sequence[Tensor],
                learner: nn.Module) -> Tensor:
        """The loss.

        Args:
            student (Sequence[Tensor]): the student's maps of the prototype
                levels, ``(N, C_l, H_l, W_l)`` each.
            target (Sequence[Tensor]): the branch's assignments of the same
                levels, ``(N, K, H_l, W_l)``, summing to 1 over K.
            learner (nn.Module): the :class:`PrototypeLearner` whose
                prototypes and assignment conv assign the student's tokens.
        """
        if not len(student) == len(target) == len(self.projectors):
            raise ValueError(
                f'PrototypeAssignLoss: {len(self.projectors)} projectors, '
                f'{len(student)} student maps and {len(target)} target '
                'assignments; expected one of each per prototype level')
        loss = 0.
        for level, (s, p,
                    proj) in enumerate(zip(student, target, self.projectors)):
            log_q = learner.assign_log_probs(proj(s.float()), level)
            p = p.detach().float()
            if log_q.shape != p.shape:
                raise ValueError(
                    f'PrototypeAssignLoss: level {level}: the student\'s '
                    f'assignment is {tuple(log_q.shape)} but the target\'s '
                    f'is {tuple(p.shape)}')
            kl = torch.special.xlogy(p, p) - p * log_q
            loss = loss + kl.sum(1).mean()
        return self.loss_weight * loss
