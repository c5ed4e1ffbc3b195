"""Warm-up and stop point of the distillation losses."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmprockd.registry import HOOKS


@HOOKS.register_module()
class DistillScheduleHook(Hook):
    """Scale every ``distill.*`` loss by a factor that ramps linearly from 0
    to 1 over the warm-up and drops to 0 (teacher no longer run) at the stop
    point. Counted in iterations, or in epochs with ``by_epoch=True``.

    Args:
        warmup (int): length of the linear warm-up. Defaults to 0.
        stop (int, optional): from this iteration/epoch on, no distillation.
        by_epoch (bool): count ``warmup`` and ``stop`` in epochs.
    """
    priority = 'NORMAL'

    def __init__(self,
                 warmup: int = 0,
                 stop: Optional[int] = None,
                 by_epoch: bool = False) -> None:
        if warmup < 0 or (stop is not None and stop < 0):
            raise ValueError('DistillScheduleHook: warmup and stop must be '
                             f'>= 0, got {warmup}, {stop}')
        self.warmup = warmup
        self.stop = stop
        self.by_epoch = by_epoch

    def scale_at(self, iteration: int, epoch: int,
                 iters_per_epoch: int) -> float:
        """The factor at a 0-based iteration / epoch."""
        if self.by_epoch:
            pos = epoch + (iteration % max(iters_per_epoch, 1)) / max(
                iters_per_epoch, 1)
            done = epoch
        else:
            pos = done = iteration
        if self.stop is not None and done >= self.stop:
            return 0.0
        if self.warmup == 0:
            return 1.0
        return min(1.0, (pos + (0 if self.by_epoch else 1)) / self.warmup)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        try:
            per_epoch = len(runner.train_dataloader)
        except TypeError:
            per_epoch = 1
        scale = self.scale_at(runner.iter, runner.epoch, per_epoch)
        model.distill_scale = scale
        runner.message_hub.update_scalar('train/distill_scale', scale)
