"""Save student-only checkpoints while a ProtoDistiller trains."""
import os
import os.path as osp
import re
from typing import List, Optional

from mmengine.hooks import CheckpointHook, Hook

from mmprockd.registry import HOOKS
from mmprockd.utils.atomic_write import DiskFullError, remove_stale_tmp_files
from mmprockd.version import __version__
from ..runner_model import unwrapped_model
from ..student_export import export_student
from .finite_checkpoint_hook import check_finite_state_dict

DATA_BATCH = Optional[dict]
LATEST = 'student_latest.pth'


def _iter_of(path: str) -> Optional[int]:
    """``meta['iter']`` of a student export, None if it cannot be read."""
    import torch
    try:
        return torch.load(
            path, map_location='cpu', weights_only=True)['meta']['iter']
    except Exception:  # missing, truncated, or not an export
        return None


@HOOKS.register_module()
class StudentCheckpointHook(Hook):
    """Write ``student_epoch_{N}.pth`` / ``student_iter_{N}.pth`` with only
    the student's weights, plus ``student_config.py`` beside them: plain
    mmdet/mmseg/mmpretrain ``tools/test.py`` loads the pair directly.

    With an ``EMAHook`` the files hold the averaged weights, the ones
    validation evaluates and ``epoch_N.pth`` holds. Files are written
    atomically; ``student_latest.pth`` always points at
    the newest one (a copy, so it survives ``max_keep_ckpts``). Weights that
    are not finite are never written: the run stops with an error instead.
    On a resumed run, the numbered files already in ``out_dir`` up to the
    resumed epoch or iteration count towards ``max_keep_ckpts``, and the
    export of the step resumed from is written if it is missing (a kill
    between the full checkpoint and its export). The temporary files of
    killed writes are removed when the run starts.

    Args:
        interval (int): save every ``interval`` epochs or iterations.
        by_epoch (bool, optional): count epochs (True) or iterations
            (False). None (default) follows the train loop: epochs for an
            ``EpochBasedTrainLoop``, iterations otherwise.
        max_keep_ckpts (int): keep at most this many numbered files; -1
            keeps all.
        out_dir (str, optional): defaults to the work dir.
    """
    priority = 'VERY_LOW'

    def __init__(self,
                 interval: int = 1,
                 by_epoch: Optional[bool] = None,
                 max_keep_ckpts: int = -1,
                 out_dir: Optional[str] = None) -> None:
        if interval <= 0:
            raise ValueError('StudentCheckpointHook: interval must be > 0, '
                             f'got {interval}')
        self.interval = interval
        self.by_epoch = by_epoch
        self.max_keep_ckpts = max_keep_ckpts
        self.out_dir = out_dir
        self.saved: List[str] = []

    def before_train(self, runner) -> None:
        self.out_dir = self.out_dir or runner.work_dir
        if self.by_epoch is None:
            from mmengine.runner import EpochBasedTrainLoop
            self.by_epoch = isinstance(runner.train_loop, EpochBasedTrainLoop)
        if self._is_main() and self.out_dir != runner.work_dir:
            remove_stale_tmp_files(self.out_dir, logger=runner.logger)
        if runner.iter > 0:  # resumed (load_from alone leaves iter at 0)
            self.saved = self._saved_before(
                runner.epoch if self.by_epoch else runner.iter)
            self._export_missing(runner)

    def _export_missing(self, runner) -> None:
        """Write the export of the step the run resumed from when it is
        missing: a kill between the full checkpoint and its export, or the
        export of the last epoch of a run resumed to finish.

        Written when that step is one this hook exports (an epoch end, for
        ``by_epoch``) and its numbered file, ``student_config.py`` or a
        ``student_latest.pth`` of that step is missing. The weights are
        the checkpoint's, just loaded.
        """
        done = runner.epoch if self.by_epoch else runner.iter
        if done % self.interval:
            return
        if self.by_epoch and runner.iter != runner.epoch * len(
                runner.train_dataloader):
            return  # resumed in the middle of an epoch
        name = self._name(done)
        path = osp.join(self.out_dir, name)
        if osp.isfile(path) and osp.isfile(
                osp.join(self.out_dir, 'student_config.py')) and _iter_of(
                    osp.join(self.out_dir, LATEST)) == runner.iter:
            return
        runner.logger.warning(
            f'StudentCheckpointHook: the export of the checkpoint resumed '
            f'from ({name}, {LATEST} or student_config.py) is missing: '
            'writing it')
        self._save(runner, name, epoch=runner.epoch, iters=runner.iter)

    def _name(self, step: int) -> str:
        unit = 'epoch' if self.by_epoch else 'iter'
        return f'student_{unit}_{step}.pth'

    def _saved_before(self, done: int) -> List[str]:
        """The numbered files in ``out_dir`` of the steps a resumed run has
        done, oldest first.

        Files numbered after ``done`` (from a longer run in the same
        folder) are left out: this run writes them again.

        Args:
            done (int): Epochs (``by_epoch``) or iterations done.

        Returns:
            list[str]: their paths, by number.
        """
        unit = 'epoch' if self.by_epoch else 'iter'
        pattern = re.compile(rf'^student_{unit}_(\d+)\.pth$')
        if not osp.isdir(self.out_dir):
            return []
        found = []
        for name in os.listdir(self.out_dir):
            match = pattern.match(name)
            if match and int(match.group(1)) <= done:
                found.append((int(match.group(1)), name))
        return [osp.join(self.out_dir, name) for _, name in sorted(found)]

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch and self.every_n_epochs(runner, self.interval):
            self._save(
                runner,
                self._name(runner.epoch + 1),
                epoch=runner.epoch + 1,
                iters=runner.iter)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs=None) -> None:
        if not self.by_epoch and self.every_n_train_iters(
                runner, self.interval):
            self._save(
                runner,
                self._name(runner.iter + 1),
                epoch=runner.epoch,
                iters=runner.iter + 1)

    def _save(self, runner, name: str, epoch: int, iters: int) -> None:
        """Write ``name`` and ``student_latest.pth`` (and the config) with
        the student's weights now, ``epoch`` epochs and ``iters``
        iterations done."""
        model = unwrapped_model(runner)
        if not hasattr(model, 'student'):
            raise TypeError('StudentCheckpointHook needs a model with a '
                            f'`student`, got {type(model).__name__}')
        state = {
            'student.' + k: v
            for k, v in self._evaluated_student(runner, model).items()
        }
        path = osp.join(self.out_dir, name)
        # on every rank (the weights are the same), so that all stop
        check_finite_state_dict(state, path)
        if not self._is_main():
            return
        meta = dict(
            epoch=epoch,
            iter=iters,
            mmprockd_version=__version__,
            dataset_meta=getattr(runner.train_dataloader.dataset, 'metainfo',
                                 None),
            source='mmprockd.StudentCheckpointHook')
        try:
            export_student(state, path, meta=meta, cfg=runner.cfg)
            export_student(state, osp.join(self.out_dir, LATEST), meta=meta)
        except DiskFullError as err:
            ckpt = next((h for h in getattr(runner, 'hooks', [])
                         if isinstance(h, CheckpointHook)), None)
            last = getattr(ckpt, 'last_ckpt', None) or 'none yet'
            raise err.with_last(str(last)) from err
        runner.logger.info(f'StudentCheckpointHook: saved {path}')
        if path in self.saved:
            self.saved.remove(path)
        self.saved.append(path)
        if self.max_keep_ckpts > 0:
            while len(self.saved) > self.max_keep_ckpts:
                old = self.saved.pop(0)
                if osp.exists(old):
                    os.remove(old)

    @staticmethod
    def _evaluated_student(runner, model) -> dict:
        """The student's weights as validation evaluates them.

        With an ``EMAHook`` (mmengine's, which mmdet's and mmpretrain's
        recipes use), validation and ``epoch_N.pth`` hold the averaged
        parameters, and the averaged buffers too when the EMA updates
        buffers; the rest stays the raw model's. Export exactly that.
        """
        state = dict(model.student.state_dict())
        from mmengine.hooks import EMAHook
        emas = [h for h in runner.hooks if isinstance(h, EMAHook)] \
            if hasattr(runner, 'hooks') else []
        if not emas or not hasattr(emas[0], 'ema_model'):
            return state
        ema = emas[0].ema_model
        ema_student = ema.module.student
        avg = dict(ema_student.state_dict()) if ema.update_buffers else \
            dict(ema_student.named_parameters())
        for key, value in avg.items():
            state[key] = value.detach()
        return state

    @staticmethod
    def _is_main() -> bool:
        from mmengine.dist import is_main_process
        return is_main_process()
