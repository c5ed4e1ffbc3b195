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
        kl_start (int): [ours] a curriculum for the consistency KL alone:
            it is off before this iteration/epoch, so the prototype branch
            learns the task first, then ramps in linearly over
            ``kl_warmup``. Its factor multiplies the common one. Defaults to
            0 (the KL follows the common schedule).
        kl_warmup (int): length of the KL's own ramp. Defaults to 0.
        branch_stop (int, optional): [ours] from this iteration/epoch on,
            the prototype branch stops training (``model.branch_frozen``):
            it runs in eval mode without gradient, its task loss is dropped,
            and the KL keeps teaching the student its predictions. A branch
            with its own head memorises a small training set, and its soft
            labels then say no more than the hard ones; stopped early, it is
            a teacher like a probe on frozen features (docs/method.md).
            Under DDP the frozen parameters get no gradient: wrap the model
            with ``find_unused_parameters=True`` (checked before training).
            None (default) trains the branch to the end.
    """
    priority = 'NORMAL'

    def __init__(self,
                 warmup: int = 0,
                 stop: Optional[int] = None,
                 by_epoch: bool = False,
                 kl_start: int = 0,
                 kl_warmup: int = 0,
                 branch_stop: Optional[int] = None) -> None:
        if warmup < 0 or (stop is not None and stop < 0):
            raise ValueError('DistillScheduleHook: warmup and stop must be '
                             f'>= 0, got {warmup}, {stop}')
        if kl_start < 0 or kl_warmup < 0:
            raise ValueError('DistillScheduleHook: kl_start and kl_warmup '
                             f'must be >= 0, got {kl_start}, {kl_warmup}')
        if branch_stop is not None and branch_stop < 0:
            raise ValueError('DistillScheduleHook: branch_stop must be >= 0 '
                             f'or None, got {branch_stop}')
        self.branch_stop = branch_stop
        self.kl_start = kl_start
        self.kl_warmup = kl_warmup
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

    def kl_scale_at(self, iteration: int, epoch: int,
                    iters_per_epoch: int) -> float:
        """The KL's own factor at a 0-based iteration / epoch: 0 before
        ``kl_start``, then a linear ramp over ``kl_warmup``."""
        if self.by_epoch:
            per = max(iters_per_epoch, 1)
            started = epoch >= self.kl_start
            since = epoch + (iteration % per) / per - self.kl_start
        else:
            started = iteration >= self.kl_start
            since = iteration - self.kl_start + 1
        if not started:
            return 0.0
        if self.kl_warmup == 0:
            return 1.0
        return min(1.0, since / self.kl_warmup)

    def branch_frozen_at(self, iteration: int, epoch: int) -> bool:
        """Whether the branch is frozen at a 0-based iteration / epoch."""
        if self.branch_stop is None:
            return False
        return (epoch if self.by_epoch else iteration) >= self.branch_stop

    def before_train(self, runner) -> None:
        """Refuse ``branch_stop`` before any work where it cannot work."""
        if self.branch_stop is None:
            return
        wrapped = is_model_wrapper(runner.model)
        model = runner.model.module if wrapped else runner.model
        if not hasattr(model, 'branch_frozen') or \
                getattr(model, 'learner', None) is None:
            raise ValueError(
                'DistillScheduleHook: branch_stop needs a ProtoDistiller with '
                f'a prototype branch (learner), got {type(model).__name__}')
        if wrapped and hasattr(runner.model, 'find_unused_parameters') and \
                not runner.model.find_unused_parameters:
            raise ValueError(
                'DistillScheduleHook: branch_stop leaves the frozen branch '
                'without gradients, which DDP refuses unless the model is '
                "wrapped with model_wrapper_cfg=dict(type="
                "'MMDistributedDataParallel', find_unused_parameters=True)")

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
        if self.kl_start or self.kl_warmup:
            kl = self.kl_scale_at(runner.iter, runner.epoch, per_epoch)
            model.kl_scale = kl
            runner.message_hub.update_scalar('train/kl_scale', kl)
        if self.branch_stop is not None:
            frozen = self.branch_frozen_at(runner.iter, runner.epoch)
            if model.branch_frozen != frozen:
                model.branch_frozen = frozen
