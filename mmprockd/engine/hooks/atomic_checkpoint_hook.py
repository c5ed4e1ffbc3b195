"""Checkpoints that survive a kill at any moment.

mmengine's ``CheckpointHook`` (0.10) deletes the oldest kept checkpoint
before it writes the new one, writes the new one in place and rewrites
``last_checkpoint`` in place: with ``max_keep_ckpts=1`` a kill during the
write leaves a truncated file, no complete one, and a pointer to the
deleted file. :class:`AtomicCheckpointHook` writes to ``<name>.tmp<pid>``
and renames (:mod:`mmprockd.utils.atomic_write`), then rewrites
``last_checkpoint`` the same way, then deletes. Every checkpoint carries
the run's id in ``meta['run_id']``;
:func:`~mmprockd.engine.resume_scan.find_resumable_checkpoint` picks the
one ``--resume`` continues from.
"""
import os.path as osp
import uuid
from typing import List, Tuple

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook

from mmprockd.registry import HOOKS
from mmprockd.utils.atomic_write import (ATOMIC_BACKEND, POINTER,
                                         AtomicLocalBackend, DiskFullError,
                                         remove_stale_tmp_files)
from ..resume_scan import RUN_ID, remove_preemption_checkpoints


class _DeferredRemoval:
    """A file backend whose ``remove``/``rmtree`` are recorded, not done,
    so that mmengine's code that deletes before it writes can run
    unchanged; the caller deletes once the write succeeded."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.pending: List[Tuple[str, str]] = []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def remove(self, filepath) -> None:
        self.pending.append(('remove', str(filepath)))

    def rmtree(self, dir_path) -> None:
        self.pending.append(('rmtree', str(dir_path)))


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments, same files) whose
    checkpoints survive a kill at any moment.

    - every checkpoint (periodic, last, best) is written to
      ``<name>.tmp<pid>`` and renamed (:class:`AtomicLocalBackend`), so a
      file under a checkpoint's name is always complete;
    - ``last_checkpoint`` is rewritten the same way, after the rename;
    - old checkpoints (``max_keep_ckpts``, the previous best) are deleted
      only after the new file is complete, so with ``max_keep_ckpts=1``
      two checkpoints exist on disk for a moment;
    - a write that fails leaves the files, ``last_checkpoint`` and the
      hook's bookkeeping (``keep_ckpt_ids``, ``last_ckpt``, the best score
      and path) as they were;
    - ``before_train`` removes the temporary files of killed runs, and a
      new checkpoint the ``preempt_iter_<N>.pth`` files it supersedes;
    - every checkpoint holds the run's id (``meta['run_id']``, drawn when
      a run starts and kept in the message hub across resumes), so that
      ``--resume`` passes over the files of another run in the same folder.

    ``tools/train.py`` uses it in place of ``default_hooks.checkpoint`` of
    type ``CheckpointHook``. Object stores (``out_dir='s3://...'``,
    ``backend_args`` of another backend) are written as mmengine does: an
    object appears only once uploaded whole. The deprecated
    ``file_client_args`` keep mmengine's in-place writes (a warning says
    so), with the deletions still after the write.
    """

    def before_train(self, runner) -> None:
        out_dir = self.out_dir or runner.work_dir
        if self.file_client_args is not None:
            runner.logger.warning(
                'AtomicCheckpointHook: with the deprecated file_client_args '
                'checkpoints are written in place, not atomically; use '
                'backend_args')
        elif isinstance(
                get_file_backend(out_dir, backend_args=self.backend_args),
                LocalBackend):
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)
        hub = runner.message_hub
        if hub.get_info(RUN_ID) is None:  # a new run; a resumed one has it
            hub.update_info(RUN_ID, uuid.uuid4().hex)
        if is_main_process() and isinstance(self.file_backend, LocalBackend):
            for folder in {self.out_dir, runner.work_dir}:
                remove_stale_tmp_files(folder, logger=runner.logger)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Write the run id into ``meta``: ``--resume`` tells this run's
        checkpoints from those of another run in the same folder."""
        run_id = runner.message_hub.get_info(RUN_ID)
        if run_id is not None:
            checkpoint.setdefault('meta', {})[RUN_ID] = run_id

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        # mmengine's method with its steps reordered; written out because
        # the deletion, the write and the plain ``open()`` of
        # last_checkpoint all sit in this one method of mmengine's.
        hub = runner.message_hub
        saved_state = (list(getattr(self, 'keep_ckpt_ids', [])),
                       self.last_ckpt, hub.get_info('keep_ckpt_ids'),
                       hub.get_info('last_ckpt'))
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            # saved in the checkpoint: the files on disk when it is complete,
            # the outdated one included, so that a run resumed from it
            # deletes that one if a kill came before the deletion
            # (mmengine's before_train trims the list to max_keep_ckpts)
            on_disk = [outdated] if outdated is not None else []
            hub.update_info('keep_ckpt_ids',
                            on_disk + list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        hub.update_info('last_ckpt', self.last_ckpt)
        try:
            runner.save_checkpoint(
                self.out_dir,
                ckpt_filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        except DiskFullError as err:
            self._restore(hub, *saved_state)
            raise err.with_last(self.last_ckpt or 'none yet') from err
        except BaseException:
            self._restore(hub, *saved_state)
            raise

        if self.max_keep_ckpts > 0:
            hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        # sharded (model-parallel) states are pulled from all ranks above;
        # the files are rank 0's
        if not is_main_process():
            return
        AtomicLocalBackend().put_text(
            str(self.last_ckpt), osp.join(runner.work_dir, POINTER))
        if outdated is not None:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(outdated))
            if path != self.last_ckpt:
                self._remove(self.file_backend, 'auto', path)
        if isinstance(self.file_backend, LocalBackend):
            remove_preemption_checkpoints(
                self.out_dir,
                runner.iter if self.by_epoch else runner.iter + 1,
                logger=runner.logger)

    def _restore(self, hub, keep_ids, last_ckpt, hub_keep_ids,
                 hub_last_ckpt) -> None:
        """Undo the bookkeeping of a save that failed."""
        if self.max_keep_ckpts > 0:
            self.keep_ckpt_ids.clear()
            self.keep_ckpt_ids.extend(keep_ids)
        self.last_ckpt = last_ckpt
        saved = dict(keep_ckpt_ids=hub_keep_ids, last_ckpt=hub_last_ckpt)
        for key, value in saved.items():
            if value is None:
                hub.runtime_info.pop(key, None)
            else:
                hub.update_info(key, value)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # mmengine's method deletes the previous best before it writes the
        # new one; it runs unchanged with its deletions held back
        hub = runner.message_hub
        best_infos = {
            k: v
            for k, v in hub.runtime_info.items() if k.startswith('best_')
        }
        saved_best = (getattr(self, 'best_ckpt_path', None),
                      dict(getattr(self, 'best_ckpt_path_dict',
                                   {})), best_infos)
        backend = self.file_backend
        self.file_backend = _DeferredRemoval(backend)
        try:
            super()._save_best_checkpoint(runner, metrics)
            pending = self.file_backend.pending
        except BaseException:
            self._restore_best(hub, *saved_best)
            raise
        finally:
            self.file_backend = backend
        written = [self.last_ckpt, getattr(self, 'best_ckpt_path', None)]
        written += getattr(self, 'best_ckpt_path_dict', {}).values()
        written = {str(p) for p in written}
        for how, path in pending:
            if path not in written:  # never the file just written
                self._remove(backend, how, path)

    def _restore_best(self, hub, path, path_dict, infos) -> None:
        """Undo the best-score bookkeeping of a save that failed."""
        if hasattr(self, 'best_ckpt_path'):
            self.best_ckpt_path = path
        if hasattr(self, 'best_ckpt_path_dict'):
            self.best_ckpt_path_dict = path_dict
        for key in [k for k in hub.runtime_info if k.startswith('best_')]:
            hub.runtime_info.pop(key)
        for key, value in infos.items():
            hub.update_info(key, value)

    @staticmethod
    def _remove(backend, how: str, path: str) -> None:
        if how == 'rmtree' or (how == 'auto' and backend.isdir(path)):
            backend.rmtree(path)  # checkpoints saved by DeepSpeed are dirs
        elif backend.isfile(path):
            backend.remove(path)
