"""The guard against non-finite distillation losses (:class:`NanGuard`)."""
from typing import Dict, List, Optional, Union

import torch
from mmengine.logging import MMLogger
from torch import Tensor

LossDict = Dict[str, Union[Tensor, List[Tensor]]]


def finite(value: Union[Tensor, List[Tensor]]) -> bool:
    """Whether a loss (a tensor or a list of them) is finite everywhere."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return all(bool(torch.isfinite(v).all()) for v in values)


class NanGuard:
    """Drops a step's distillation losses when one is not finite, and stops
    a run whose distillation stays broken.

    Args:
        drop (bool): drop the distillation losses of a step whose value is
            not finite (logged), instead of poisoning the student.
        max_steps (int, optional): stop with a RuntimeError after this many
            consecutive steps whose distillation loss was not finite (a
            step with a finite one resets the count; a step without
            distillation leaves it as is), whether ``drop`` dropped them or
            not: a permanently broken distillation must not turn into plain
            student training. None disables the check.
        owner (str): the distiller's name, for the messages.
    """

    def __init__(self, drop: bool, max_steps: Optional[int],
                 owner: str) -> None:
        if max_steps is not None and max_steps < 1:
            raise ValueError(f'{owner}: max_nan_steps must be >= 1 or '
                             f'None, got {max_steps}')
        self.drop = drop
        self.max_steps = max_steps
        self.owner = owner
        self.skips = 0  # steps whose distillation losses were dropped
        self.streak = 0  # consecutive steps with a non-finite one

    def __call__(self, distill: LossDict) -> LossDict:
        """``distill``, or nothing if one of its losses is not finite and
        the guard drops them; counts the step for ``max_steps``."""
        if not distill or not (self.drop or self.max_steps is not None):
            return distill
        bad = [k for k, v in distill.items() if 'loss' in k and not finite(v)]
        self._count(bad)
        if bad and self.drop:
            self.skips += 1
            MMLogger.get_current_instance().warning(
                f'{self.owner}: non-finite distillation loss {bad}, '
                f'dropped for this step ({self.skips} so far)')
            return {}
        return distill

    def _count(self, bad: List[str]) -> None:
        """Count consecutive steps with a non-finite distillation loss.

        Args:
            bad (list[str]): The loss keys that are not finite this step;
                empty for a finite step, which resets the count.

        Raises:
            RuntimeError: at the ``max_steps``-th consecutive step.
        """
        self.streak = self.streak + 1 if bad else 0
        if self.max_steps is not None and self.streak >= self.max_steps:
            raise RuntimeError(
                f'{self.owner}: the distillation loss {bad} was not finite '
                f'for {self.streak} consecutive steps (max_nan_steps='
                f'{self.max_steps}); stopping rather than training the '
                'student without distillation; check the teacher checkpoint, '
                'the learning rate and the distillation loss weights')
