"""Stop on SIGTERM or SIGINT at the end of the step in flight, with a
checkpoint of that step, and resume from it in the middle of an epoch.

A cluster stops a job with SIGTERM (Slurm's time limit, with ``--signal``
some time before it, and preemption); a user with Ctrl-C (SIGINT). By
default either kills the run where it stands and the epoch in progress is
lost. :class:`PreemptionHook` turns both into a clean stop:

1. the signal only sets a flag; the step in flight runs to its end (its
   loss is logged, periodic checkpoints and exports are written as usual;
   a signal at an epoch's end lets the epoch's checkpoint and student
   export be written; a validation in progress stops after its batch);
2. after that step (or epoch end) the atomic checkpoint
   ``preempt_iter_<N>.pth`` of iteration N is written into the checkpoint
   folder, unless the periodic checkpoint of that moment was just written,
   and ``last_checkpoint`` names it;
3. the run logs what it did and exits with status :data:`PREEMPTED_EXIT`
   (75, ``EX_TEMPFAIL``: "try again"), which ``tools/slurm_train.sh``
   takes as "resume".

``--resume`` picks that checkpoint up (it has the most iterations). An
epoch-based run resumed from it continues the epoch at the next batch
(:class:`ResumableEpochBasedTrainLoop`), with the random state the
checkpoint holds (``ExactResumeHook``): it logs the same losses as a run
that was never stopped, on the CPU. The preemption checkpoint is deleted
once the run has written a newer periodic one.

A second signal while the first is handled kills the run at once (the
default action of the signal): the checkpoints on disk stay complete.
"""
import logging
import os
import os.path as osp
import signal
from typing import Optional

import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop

from mmprockd.registry import HOOKS
from mmprockd.utils.atomic_write import (ATOMIC_BACKEND, POINTER,
                                         AtomicLocalBackend)
from ..resume_scan import PREEMPT_TMPL
from .exact_resume_hook import get_rng_state, set_rng_state

PREEMPTED_EXIT = 75  # EX_TEMPFAIL of sysexits.h: stopped, to be resumed
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignalsToMain:
    """A dataloader ``worker_init_fn`` that makes the worker ignore SIGTERM
    and SIGINT, then calls the loader's own ``worker_init_fn``.

    Ctrl-C and Slurm signal every process of the job, the workers too: a
    worker killed by one would fail the batch the main process waits for
    (or raise in it through SIGCHLD) before the step could end. The main
    process decides when to stop and ends its workers itself.

    Args:
        inner (callable, optional): The loader's ``worker_init_fn``.
    """

    def __init__(self, inner=None) -> None:
        self.inner = inner

    def __call__(self, worker_id: int) -> None:
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        if self.inner is not None:
            self.inner(worker_id)


class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` that, resumed from a checkpoint
    written in the middle of an epoch, goes on at the next batch of that
    epoch instead of training the epoch again from its first batch.

    The batches already trained are drawn from the dataloader and dropped
    (their worker processes draw the same augmentation as before) and the
    global random state is put back as the checkpoint had it after them,
    so the next batch is the one the run would have trained. The batch
    index the hooks see goes on from there. :class:`PreemptionHook` makes
    a run's loop this class when it is mmengine's.
    """

    def batches_done(self) -> int:
        """How many batches of the epoch in progress were trained before
        the run resumed: 0 at an epoch's start, all of them when the run
        stopped after the last batch, before the epoch's end (its
        checkpoint, validation and scheduler step) was reached."""
        per_epoch = len(self.dataloader)
        done = self.runner.iter - self.runner.epoch * per_epoch
        return done if 0 < done <= per_epoch else 0

    def run_epoch(self) -> None:
        """Iterate one epoch, from the batch a resume left off at."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        skip = self.batches_done()
        batches = iter(self.dataloader)
        if skip:
            state = get_rng_state()
            for _ in range(skip):
                next(batches)
            set_rng_state(state)
            print_log(
                f'resumed in the middle of epoch {self.runner.epoch + 1}: '
                f'its first {skip} batches were trained before',
                logger='current')
        for idx, data_batch in enumerate(batches, start=skip):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@HOOKS.register_module()
class PreemptionHook(Hook):
    """On SIGTERM or SIGINT: finish the step, write
    ``preempt_iter_<N>.pth``, log, and exit with :data:`PREEMPTED_EXIT`.

    ``tools/train.py`` adds it to every run. The handlers are installed in
    ``before_train`` (in the main thread) and the previous ones put back in
    ``after_train``. In a distributed run the ranks agree after each step
    whether any of them was signalled (one ``all_reduce`` of one number),
    so that all stop after the same step.

    Priority ``LOWEST``: the step's logging, periodic checkpoint and
    student export come first.
    """
    priority = 'LOWEST'

    def __init__(self) -> None:
        self._received: Optional[int] = None
        self._previous = {}

    # ------------------------------------------------------------ signals
    def _handle(self, signum, frame) -> None:
        if self._received is not None:  # a second signal: stop now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self._received = signum
        print_log(
            f'PreemptionHook: received {signal.Signals(signum).name}: the '
            'run stops after the step in flight, with a checkpoint of it '
            '(a second signal stops it at once)',
            logger='current',
            level=logging.WARNING)

    def before_train(self, runner) -> None:
        """Install the handlers; make mmengine's epoch loop resumable in
        the middle of an epoch; have the training dataloader's workers
        ignore the signals (:class:`StopSignalsToMain`)."""
        loop = runner.train_loop
        if type(loop) is EpochBasedTrainLoop:
            loop.__class__ = ResumableEpochBasedTrainLoop
        loader = getattr(loop, 'dataloader', None)
        if isinstance(loader, torch.utils.data.DataLoader) and \
                loader.num_workers > 0 and \
                not isinstance(loader.worker_init_fn, StopSignalsToMain):
            loader.worker_init_fn = StopSignalsToMain(loader.worker_init_fn)
        try:
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread: signals stay as they are
            self._previous = {}

    def after_train(self, runner) -> None:
        """Put the previous handlers back (also done before the run stops
        on a signal)."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _signalled(self) -> int:
        """The signal received here or on any rank, 0 if none."""
        received = self._received or 0
        if get_world_size() > 1:
            flag = torch.tensor([received], dtype=torch.int64)
            all_reduce(flag, op='max')
            received = int(flag.item())
        return received

    # ---------------------------------------------------------------- stop
    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Stop after this step if a signal came."""
        signum = self._signalled()
        if signum:
            path = self._save(runner, runner.epoch, runner.iter + 1, False,
                              runner.iter + 1)
            self._stop(
                signum, path, f'iteration {runner.iter + 1} (epoch '
                f'{runner.epoch + 1}, batch {batch_idx + 1})')

    def after_train_epoch(self, runner) -> None:
        """Stop at the end of this epoch (after its checkpoint and export,
        before its validation) if a signal came while it ended."""
        signum = self._signalled()
        if signum:
            path = self._save(runner, runner.epoch + 1, runner.iter, True,
                              runner.epoch + 1)
            self._stop(signum, path, f'epoch {runner.epoch + 1}')

    def after_val_iter(self,
                       runner,
                       batch_idx: int,
                       data_batch=None,
                       outputs=None) -> None:
        """Stop in the middle of a validation during training if a signal
        came: the checkpoint is of the training done (the one written
        before the validation, if any); the resumed run goes on training
        and does not repeat this validation."""
        if not self._previous:  # not training: the signals are not ours
            return
        signum = self._signalled()
        if signum:
            by_epoch = isinstance(runner.train_loop, EpochBasedTrainLoop)
            path = self._save(runner, runner.epoch, runner.iter, by_epoch,
                              runner.epoch if by_epoch else runner.iter)
            self._stop(
                signum, path, f'batch {batch_idx + 1} of the validation '
                f'after iteration {runner.iter} (left unfinished)')

    def _stop(self, signum: int, path: str, where: str) -> None:
        self.after_train(None)
        print_log(
            f'PreemptionHook: stopped by {signal.Signals(signum).name} after '
            f'{where}; saved {path}. Exiting with status {PREEMPTED_EXIT}: '
            'run again with --resume to go on from it',
            logger='current',
            level=logging.WARNING)
        raise SystemExit(PREEMPTED_EXIT)

    def _save(self, runner, epochs: int, iters: int, by_epoch: bool,
              step: int) -> str:
        """Write the checkpoint of ``epochs`` epochs and ``iters``
        iterations done, atomically, and point ``last_checkpoint`` at it;
        or return the periodic checkpoint of that moment (``step`` in the
        checkpoint hook's unit, ``by_epoch`` or not) if it was written."""
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)),
                    None)
        out_dir = getattr(hook, 'out_dir', None) or runner.work_dir
        if hook is not None and hook.last_ckpt and \
                bool(hook.by_epoch) == by_epoch:
            done = hook.file_backend.join_path(out_dir,
                                               hook.filename_tmpl.format(step))
            if str(hook.last_ckpt) == str(done):
                return str(done)
        name = PREEMPT_TMPL.format(iters)
        local = isinstance(get_file_backend(out_dir), LocalBackend)
        runner.save_checkpoint(
            out_dir,
            name,
            meta=dict(epoch=epochs, iter=iters),
            backend_args=dict(backend=ATOMIC_BACKEND) if local else None)
        path = osp.join(out_dir, name)
        if is_main_process():
            AtomicLocalBackend().put_text(path,
                                          osp.join(runner.work_dir, POINTER))
        return path
