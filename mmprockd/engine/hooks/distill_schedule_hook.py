"""Warm-up and stop point of the distillation losses."""
from typing import List, Optional

from mmengine.hooks import Hook

from mmprockd.registry import HOOKS
from ..runner_model import unwrapped_model


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
        student_start (int): [ours] two-stage ProC-KD in one run: before
            this iteration/epoch only the prototype branch trains
            (``model.student_paused``: the student's loss, the KL and the
            feature losses are not computed, and its parameters, norm
            buffers and optimizer state stay as built); from it on the
            student trains, from its init. With ``branch_stop`` equal to
            it, the branch is a fixed teacher for the whole student phase,
            as in the two-run recipe (docs/method.md). The distillation
            warm-up starts again at it, over ``student_warmup``. Needs a
            ProtoDistiller with ``branch_head='own'`` and, under DDP,
            ``find_unused_parameters=True``. Defaults to 0 (off).
        student_warmup (int, optional): length of the distillation warm-up
            that starts at ``student_start``. Defaults to ``warmup``.
        student_schedule (list[dict], optional): the param schedulers of
            the student phase, written as for a run of their own (``begin``
            and ``end`` count from ``student_start``): at ``student_start``
            every optimizer group's scheduled values (``lr``, momentum...)
            go back to their initial ones and these schedulers replace the
            config's ``param_scheduler``, which then only covers the branch
            phase. They are rebuilt when a run resumes in the student phase.
            None keeps the config's schedulers for the whole run.
    """
    priority = 'NORMAL'

    def __init__(self,
                 warmup: int = 0,
                 stop: Optional[int] = None,
                 by_epoch: bool = False,
                 kl_start: int = 0,
                 kl_warmup: int = 0,
                 branch_stop: Optional[int] = None,
                 student_start: int = 0,
                 student_warmup: Optional[int] = None,
                 student_schedule: Optional[List[dict]] = None) -> None:
        if warmup < 0 or (stop is not None and stop < 0):
            raise ValueError('DistillScheduleHook: warmup and stop must be '
                             f'>= 0, got {warmup}, {stop}')
        if kl_start < 0 or kl_warmup < 0:
            raise ValueError('DistillScheduleHook: kl_start and kl_warmup '
                             f'must be >= 0, got {kl_start}, {kl_warmup}')
        if branch_stop is not None and branch_stop < 0:
            raise ValueError('DistillScheduleHook: branch_stop must be >= 0 '
                             f'or None, got {branch_stop}')
        if student_start < 0 or (student_warmup is not None
                                 and student_warmup < 0):
            raise ValueError('DistillScheduleHook: student_start and '
                             'student_warmup must be >= 0, got '
                             f'{student_start}, {student_warmup}')
        if branch_stop is not None and branch_stop < student_start:
            raise ValueError(
                f'DistillScheduleHook: branch_stop={branch_stop} comes before '
                f'student_start={student_start}: in between nothing would '
                'train (the branch is frozen and the student paused)')
        if student_schedule is not None and not student_start:
            raise ValueError('DistillScheduleHook: student_schedule needs '
                             'student_start > 0')
        if student_schedule is not None and (
                not isinstance(student_schedule, (list, tuple)) or not all(
                    isinstance(c, dict) and 'type' in c
                    for c in student_schedule)):
            raise TypeError('DistillScheduleHook: student_schedule must be a '
                            'list of param scheduler configs (dicts with a '
                            f"'type'), got {student_schedule!r}")
        self.student_start = student_start
        self.student_warmup = student_warmup
        self.student_schedule = None if student_schedule is None else [
            dict(c) for c in student_schedule
        ]
        self._student_schedule_on = False
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
        warmup = self.warmup
        if self.student_start and done >= self.student_start:
            pos -= self.student_start
            if self.student_warmup is not None:
                warmup = self.student_warmup
        if warmup == 0:
            return 1.0
        return min(1.0, (pos + (0 if self.by_epoch else 1)) / warmup)

    def student_paused_at(self, iteration: int, epoch: int) -> bool:
        """Whether only the branch trains at a 0-based iteration / epoch."""
        return (epoch if self.by_epoch else iteration) < self.student_start

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
        """Refuse ``branch_stop`` and ``student_start`` before any work
        where they cannot work; set the model's ``student_paused`` and
        ``branch_frozen`` of the run's iteration (a resumed run's, before
        ``ExactResumeHook`` restores ``branch_cache``, which a change of
        ``branch_frozen`` empties)."""
        keys = (['branch_stop'] if self.branch_stop is not None else []) + \
            (['student_start'] if self.student_start else [])
        if not keys:
            return
        model = unwrapped_model(runner)
        if not hasattr(model, 'branch_frozen') or \
                getattr(model, 'learner', None) is None:
            raise ValueError(
                f'DistillScheduleHook: {" and ".join(keys)} needs a '
                'ProtoDistiller with a prototype branch (learner), got '
                f'{type(model).__name__}')
        if self.student_start:
            # refuses a branch without its own head, before any step
            model.student_paused = self.student_paused_at(
                runner.iter, runner.epoch)
        if self.branch_stop is not None:
            frozen = self.branch_frozen_at(runner.iter, runner.epoch)
            if model.branch_frozen != frozen:
                model.branch_frozen = frozen
        wrapped = model is not runner.model
        if wrapped and hasattr(runner.model, 'find_unused_parameters') and \
                not runner.model.find_unused_parameters:
            raise ValueError(
                f'DistillScheduleHook: {" and ".join(keys)} leaves the '
                'branch or the student without gradients for a while, which '
                'DDP refuses unless the model is wrapped with '
                "model_wrapper_cfg=dict(type='MMDistributedDataParallel', "
                'find_unused_parameters=True)')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """A run resumed in the student phase gets the student's schedulers
        before mmengine loads their saved states into them."""
        if self.student_schedule is None or \
                not getattr(runner, '_resume', False):
            return
        meta = checkpoint.get('meta', {})
        if not self.student_paused_at(
                meta.get('iter', 0), meta.get('epoch', 0)):
            self._build_student_schedulers(runner)

    def _build_student_schedulers(self, runner) -> None:
        """The student phase's schedulers, built by mmengine as a run's own
        (a fresh copy of the configs: building consumes them)."""
        runner.param_schedulers = runner.build_param_scheduler(
            [dict(c) for c in self.student_schedule])
        self._student_schedule_on = True

    def _start_student_schedule(self, runner) -> None:
        """The scheduled optimizer values back to their initial ones, and
        the student phase's schedulers in place of the config's."""
        optim = runner.optim_wrapper
        wrappers = optim.values() if hasattr(optim, 'values') else [optim]
        for wrapper in wrappers:
            for group in wrapper.optimizer.param_groups:
                for key in list(group):
                    if key.startswith('initial_') and \
                            key[len('initial_'):] in group:
                        group[key[len('initial_'):]] = group[key]
        self._build_student_schedulers(runner)
        # mmengine's RuntimeInfoHook logged this step's values before the
        # new schedulers set them
        for wrapper in wrappers:
            for name, values in wrapper.get_lr().items():
                runner.message_hub.update_scalar(f'train/{name}', values[0])
        runner.logger.info(
            'DistillScheduleHook: the student phase starts at iteration '
            f'{runner.iter}; its schedule replaces the branch phase\'s')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        model = unwrapped_model(runner)
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
        if self.student_start:
            paused = self.student_paused_at(runner.iter, runner.epoch)
            if model.student_paused != paused:
                model.student_paused = paused
            if not paused and self.student_schedule is not None and \
                    not self._student_schedule_on:
                self._start_student_schedule(runner)
        if self.branch_stop is not None:
            frozen = self.branch_frozen_at(runner.iter, runner.epoch)
            if model.branch_frozen != frozen:
                model.branch_frozen = frozen
