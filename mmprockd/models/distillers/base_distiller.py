"""What every distiller of mmprockd shares (:class:`BaseDistiller`): the
student built from its config, a frozen teacher held outside the module
tree, ``forward`` that distils for ``loss`` and runs the student alone
otherwise, train/eval that never wakes the teacher, a deep copy (EMA) that
shares it, and logs averaged over the DDP ranks."""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModel
from torch import Tensor

from mmprockd.registry import MODELS
from .frozen_teacher import deepcopy_sharing
from .rank_mean import RankMeanLogVars
from .student_interface import StudentInterface

LossDict = Dict[str, Union[Tensor, List[Tensor]]]


class BaseDistiller(BaseModel):
    """A student and a frozen teacher, the teacher never saved or trained.

    A subclass builds its teacher and distillation modules after
    ``super().__init__``, hands the teacher to :meth:`_hold_teacher` and
    calls :meth:`_end_build` once nothing more draws a random init: the RNG
    is then back where the student left it, so the student's
    ``init_weights`` draws exactly what it draws in a student-alone run
    with the same seed, and paired comparisons (docs/benchmark.md) start
    from the same student. It writes :meth:`loss`; ``predict`` and
    ``tensor`` are the student's.

    Args:
        student (dict): the student model config (mmdet detector, mmseg
            segmentor or mmpretrain classifier); its data preprocessor is
            the distiller's.
        data_preprocessor (dict, optional): handed to the student when its
            own config has none, exactly as mmengine's Runner does for a
            plain model (mmpretrain configs keep it at the top level).
        log_rank_mean (bool): under DDP, log every loss (and ``loss``, the
            total) as its mean over the ranks, so that a 2-process log reads
            like a 1-process one with the same global batch; the
            backpropagated loss stays the rank's own. One extra collective
            per step (:class:`RankMeanLogVars`). False logs rank 0's values,
            mmengine's default.
        init_cfg (dict, optional): initialisation config.
    """

    #: attributes a deep copy shares with the original instead of copying
    shared_on_copy: Tuple[str, ...] = ('_teacher', )

    def __init__(self,
                 student: dict,
                 data_preprocessor: Optional[dict] = None,
                 log_rank_mean: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if data_preprocessor is not None and \
                student.get('data_preprocessor') is None:
            student = dict(student, data_preprocessor=data_preprocessor)
        self.student = MODELS.build(student)
        self.data_preprocessor = self.student.data_preprocessor
        self.iface = StudentInterface.from_model(self.student)
        self._rng_after_student = torch.get_rng_state()
        self.distill_scale = 1.0  # set by DistillScheduleHook
        self.kl_scale = 1.0  # set by DistillScheduleHook(kl_start=...)
        self.log_rank_mean = log_rank_mean
        self._rank_mean = RankMeanLogVars()

    def _hold_teacher(self, teacher: torch.nn.Module) -> None:
        """Keep ``teacher`` outside the module tree: not saved, not in DDP
        or the optimizer, and ``model.train()`` cannot switch it out of
        eval."""
        object.__setattr__(self, '_teacher', teacher)

    def _end_build(self) -> None:
        """Put the RNG back as it was right after the student was built."""
        torch.set_rng_state(self.__dict__.pop('_rng_after_student'))

    @property
    def teacher(self) -> torch.nn.Module:
        """The frozen teacher (not a submodule: never saved or trained)."""
        return self._teacher

    def __deepcopy__(self, memo: dict):
        """A copy shares the frozen teacher (and :attr:`shared_on_copy`),
        which nothing trains, and copies the rest: mmengine's ``EMAHook``
        copies the whole model to average it (:func:`deepcopy_sharing`)."""
        return deepcopy_sharing(self, memo, self.shared_on_copy)

    def train(self, mode: bool = True) -> 'BaseDistiller':
        """The usual train/eval switch; the teacher stays in eval."""
        super().train(mode)
        self._teacher.eval()
        return self

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """``loss`` distils; ``predict`` and ``tensor`` are the student's."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('predict', 'tensor'):
            return self.student(inputs, data_samples, mode=mode)
        raise RuntimeError(f'{type(self).__name__}: invalid mode {mode!r}; '
                           'only loss, predict and tensor are supported')

    def loss(self, inputs: Tensor, data_samples: list) -> LossDict:
        """The student's loss (``student.*``) and the distillation losses
        (``distill.*``)."""
        raise NotImplementedError

    def _log_only_key(self, key: str) -> bool:
        """Whether the loss ``key`` is logged but kept out of the total."""
        return False

    def parse_losses(self, losses: LossDict) -> Tuple[Tensor, dict]:
        """mmengine's total loss, which is backpropagated as it is, and
        log variables that are, under DDP, the mean over the ranks
        (``log_rank_mean``; :class:`RankMeanLogVars` for the keys that only
        some ranks log). Called on every rank at every training step."""
        logged = {k: v for k, v in losses.items() if self._log_only_key(k)}
        loss, log_vars = super().parse_losses({
            k: v
            for k, v in losses.items() if k not in logged
        })
        for k, v in logged.items():  # logged, not trained
            log_vars[k] = (v if isinstance(v, Tensor) else sum(
                x.mean() for x in v)).detach().mean()
        if self.log_rank_mean:
            log_vars = self._rank_mean(log_vars)
        return loss, log_vars
