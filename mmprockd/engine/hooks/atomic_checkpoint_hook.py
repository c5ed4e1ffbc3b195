"""Checkpoints that survive a kill at any moment, and a ``--resume`` that
finds the complete one of this run with the most iterations.

mmengine's ``CheckpointHook`` (0.10) deletes the oldest kept checkpoint
before it writes the new one, writes the new one in place and rewrites
``last_checkpoint`` in place: with ``max_keep_ckpts=1`` a kill during the
write leaves a truncated file, no complete one, and a pointer to the
deleted file. :class:`AtomicCheckpointHook` writes to ``<name>.tmp<pid>``
and renames, then rewrites ``last_checkpoint`` the same way, then deletes.
:func:`find_resumable_checkpoint` does not trust ``last_checkpoint`` alone.
Every checkpoint carries the run's id in ``meta['run_id']``.
"""
import errno
import logging
import os
import os.path as osp
import re
import shutil
import uuid
import zipfile
from typing import Iterable, List, NamedTuple, Optional, Tuple

import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, get_file_backend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmprockd.registry import HOOKS

ATOMIC_BACKEND = 'mmprockd_atomic_local'
POINTER = 'last_checkpoint'  # the file mmengine's auto-resume reads
DEFAULT_TMPLS = ('epoch_{}.pth', 'iter_{}.pth')
# the checkpoint a run writes when it is stopped by a signal (PreemptionHook)
PREEMPT_TMPL = 'preempt_iter_{}.pth'
RUN_ID = 'run_id'  # message hub info and checkpoint meta: the run's lineage
_TMP = re.compile(r'^(?P<name>.+)\.tmp(?P<pid>\d+)$')


def tmp_path(filepath: str) -> str:
    """Where :class:`AtomicLocalBackend` writes ``filepath`` first."""
    return f'{filepath}.tmp{os.getpid()}'


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` and ``put_text`` never
    leave a partly written file under the target name.

    The bytes go to ``<filepath>.tmp<pid>`` through ``LocalBackend`` itself,
    are flushed to disk, and the file is renamed over ``filepath``
    (``os.replace``: atomic on POSIX and Windows within one file system).
    On any error the temporary file is removed and the target is untouched.
    Registered as mmengine file backend ``'mmprockd_atomic_local'``, with no
    URI prefix: it is used only where asked for by name.
    """

    def put(self, obj: bytes, filepath) -> None:
        self._atomic(super().put, obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self._atomic(super().put_text, obj, str(filepath), encoding)

    @staticmethod
    def _atomic(write, obj, filepath: str, *args) -> None:
        tmp = tmp_path(filepath)
        try:
            write(obj, tmp, *args)
            _fsync(tmp)  # the rename must not reach the disk before the data
            os.replace(tmp, filepath)
        except BaseException as err:
            if osp.lexists(tmp):
                os.remove(tmp)
            if is_disk_full(err):
                raise DiskFullError(filepath, len(obj)) from err
            raise


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or the user's quota) is full."""
    return isinstance(err,
                      OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """A write that did not fit on the disk, naming the file, the bytes it
    needed, the bytes free and, once known (:meth:`with_last`), the last
    complete checkpoint of the run. The file under that name is untouched
    (the write went to a temporary file, removed)."""

    def __init__(self,
                 path: str,
                 nbytes: Optional[int],
                 last: Optional[str] = None) -> None:
        self.path, self.nbytes, self.last = path, nbytes, last
        try:
            free = f'{shutil.disk_usage(osp.dirname(path) or ".").free} bytes'
        except OSError:
            free = 'unknown'
        need = 'an unknown number of' if nbytes is None else str(nbytes)
        message = (f'no space left on the device to write {path}: {need} '
                   f'bytes needed, {free} free')
        if last:
            message += f'; the last complete checkpoint is {last}'
        message += ('. Free some space (or move the work dir), then run '
                    'again with --resume')
        super().__init__(errno.ENOSPC, message, path)

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):
        return type(self), (self.path, self.nbytes, self.last)

    def with_last(self, last: Optional[str]) -> 'DiskFullError':
        """The same error, naming ``last`` as the last good checkpoint."""
        return DiskFullError(self.path, self.nbytes, last)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# what mmprockd's writers write through ``<name>.tmp<pid>``: checkpoints and
# student exports, last_checkpoint, the student's config
_OURS = re.compile(r'.+\.pth|' + POINTER + r'|student_config\.py')
# the ``tempfile.mkstemp(suffix='.tmp')`` files of a student export writer
_MKSTEMP = re.compile(r'tmp[a-z0-9_]{8}\.tmp')


def remove_stale_tmp_files(folder: str, logger='current') -> List[str]:
    """Delete the temporary files that a killed process left in
    ``folder``: ``<name>.tmp<pid>`` of checkpoints and student exports
    (``*.pth``), of ``last_checkpoint`` and of ``student_config.py``, and
    the ``tmpXXXXXXXX.tmp`` files of a ``mkstemp`` student export writer.

    A ``<name>.tmp<pid>`` file whose process is still alive (another run
    writing into the same folder) is kept.

    Returns:
        list[str]: the paths removed.
    """
    removed = []
    if not osp.isdir(folder):
        return removed
    for entry in sorted(os.listdir(folder)):
        match = _TMP.match(entry)
        if match:
            if not _OURS.fullmatch(match['name']) or _pid_alive(
                    int(match['pid'])):
                continue
        elif not _MKSTEMP.fullmatch(entry):
            continue
        path = osp.join(folder, entry)
        if osp.isfile(path):
            os.remove(path)
            removed.append(path)
            print_log(
                f'removed {path}: a write that was killed before it ended',
                logger=logger)
    return removed


def remove_preemption_checkpoints(folder: str,
                                  done: int,
                                  logger='current') -> List[str]:
    """Delete the ``preempt_iter_<N>.pth`` files (``PreemptionHook``) of
    ``folder`` with N at most ``done``: a checkpoint of ``done``
    iterations holds the run's state.

    Returns:
        list[str]: the paths removed.
    """
    removed = []
    if not osp.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        step = _step_of(name, (PREEMPT_TMPL, ))
        if step is not None and step <= done:
            path = osp.join(folder, name)
            os.remove(path)
            removed.append(path)
            print_log(
                f'removed {path}: a checkpoint of iteration {done} was '
                'written',
                logger=logger)
    return removed


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


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole ``torch.save`` file.

    ``torch.save`` writes a zip archive whose central directory comes last,
    so a truncated file has none: reading the directory is enough, the
    weights are not loaded. A file in torch's legacy (non-zip) format is
    loaded fully.
    """
    if not osp.isfile(path):
        return False
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                return bool(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    try:
        torch.load(path, map_location='cpu', weights_only=True)
    except Exception:
        return False
    return True


def _step_of(name: str, tmpls: Iterable[str]) -> Optional[int]:
    for tmpl in tmpls:
        head, _, tail = tmpl.partition('{}')
        pattern = re.escape(head) + r'(\d+)' + re.escape(tail)
        match = re.fullmatch(pattern, name)
        if match:
            return int(match.group(1))
    return None


class Candidate(NamedTuple):
    """A file ``--resume`` may continue from, as read from its ``meta``.

    ``problem`` says why it cannot be resumed from (None if it can).
    """
    path: str
    iter: int = -1
    epoch: int = -1
    run_id: Optional[str] = None
    problem: Optional[str] = None


def read_candidate(path: str) -> Candidate:
    """The progress (``meta['iter']``, ``meta['epoch']``) and run id of a
    checkpoint file, or why it cannot be resumed from.

    Only the archive's index and ``meta`` are read: the tensors are mapped
    (``mmap``), not loaded, and the load is ``weights_only``.
    """
    from mmprockd.utils.checks import InputCheckError, load_checkpoint_file
    if not is_complete_checkpoint(path):
        return Candidate(
            path,
            problem='not a complete checkpoint '
            '(truncated, or not a checkpoint)')
    try:
        checkpoint = load_checkpoint_file(path, 'checkpoint', mmap=True)
    except InputCheckError as err:
        return Candidate(path, problem=str(err).split(': ', 2)[-1])
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict):
        return Candidate(path, problem='no meta: not a training checkpoint')
    return Candidate(
        path,
        iter=int(meta.get('iter') or 0),
        epoch=int(meta.get('epoch') or 0),
        run_id=meta.get(RUN_ID))


def checkpoint_folders(work_dir: str,
                       out_dir: Optional[str] = None) -> List[str]:
    """The folders a run's checkpoint hook writes into: the work dir and,
    with a local ``out_dir``, ``out_dir/<work dir name>`` (as
    ``CheckpointHook.before_train`` makes it)."""
    work_dir = osp.abspath(work_dir)
    folders = [work_dir]
    if out_dir and '://' not in str(out_dir):
        folder = osp.abspath(out_dir)
        if folder != work_dir:
            folder = osp.join(folder, osp.basename(work_dir))
        if folder not in folders:
            folders.append(folder)
    return folders


def find_resumable_checkpoint(work_dir: str,
                              out_dir: Optional[str] = None,
                              filename_tmpl: Optional[str] = None,
                              logger='current') -> Optional[str]:
    """The checkpoint ``--resume`` without a value continues from: the
    complete one with the most iterations among this run's own files.

    mmengine's ``find_latest_checkpoint`` returns what ``last_checkpoint``
    names, which may be missing, truncated, older than a checkpoint
    written just before a kill, or a file of another work dir (one this
    work dir was copied from). Here the candidates are the files named
    like a checkpoint (``filename_tmpl``, else ``epoch_N.pth`` and
    ``iter_N.pth``; and the preemption checkpoints ``preempt_iter_N.pth``)
    in the run's own folders (:func:`checkpoint_folders`), read by
    :func:`read_candidate`:

    - a ``last_checkpoint`` that names a file outside these folders is
      not used (resume from it with ``--resume PATH``);
    - when ``last_checkpoint`` names a usable file, files written by
      another run (another run id in their ``meta``: an earlier run in the
      same work dir) are passed over;
    - of the rest, the one with the most iterations wins (then the
      pointer's file, then the higher number). Modification times play no
      part: a copy may have reset them.

    Every file passed over, and a choice other than the pointer's file, is
    logged at WARNING with the reason.

    Args:
        work_dir (str): The run's work dir (where ``last_checkpoint`` is).
        out_dir (str, optional): ``out_dir`` of the checkpoint hook, as in
            the config.
        filename_tmpl (str, optional): ``filename_tmpl`` of the hook.
        logger: Where the messages go.

    Returns:
        str | None: the path; None when the folders hold nothing named
        like a checkpoint and no ``last_checkpoint`` (a fresh work dir). A
        ``last_checkpoint`` that names an object store URI is returned as
        it is, as mmengine does.

    Raises:
        InputCheckError: files were found but none can be resumed from;
            the message lists each with the reason.
    """
    from mmprockd.utils.checks import InputCheckError
    folders = checkpoint_folders(work_dir, out_dir)
    pointer = osp.join(folders[0], POINTER)
    named = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
    if named and not isinstance(get_file_backend(named), LocalBackend):
        return named
    tmpls = ((filename_tmpl, )
             if filename_tmpl else DEFAULT_TMPLS) + (PREEMPT_TMPL, )
    paths = {
        osp.join(folder, name)
        for folder in folders if osp.isdir(folder)
        for name in os.listdir(folder) if _step_of(name, tmpls) is not None
        and osp.isfile(osp.join(folder, name))
    }
    if named and osp.dirname(osp.abspath(named)) in folders and osp.isfile(
            named):  # a checkpoint of this run under another name
        paths.add(osp.abspath(named))
    found = {path: read_candidate(path) for path in sorted(paths)}
    notes = []  # (path, why it is not used)

    def warn(message: str) -> None:
        print_log(message, logger=logger, level=logging.WARNING)

    if named:
        named = osp.abspath(named)
        if osp.dirname(named) not in folders:
            notes.append((named, f'named by {pointer}, but outside this '
                          f'run\'s folders {folders} (a copied work '
                          'dir?); to continue from it, pass --resume '
                          f'{named}'))
            named = None
        elif named not in found:
            notes.append((named, f'named by {pointer}, does not exist'))
            named = None
    lineage = found[named] if named else None
    if lineage is not None and lineage.problem is None and lineage.run_id:
        for path, cand in found.items():
            if cand.problem is None and cand.run_id not in (None,
                                                            lineage.run_id):
                found[path] = cand._replace(
                    problem=f'written by another run (run id {cand.run_id}'
                    f', {named} by {lineage.run_id})')
    usable = [c for c in found.values() if c.problem is None]
    notes += [(c.path, c.problem) for c in found.values() if c.problem]
    for path, why in notes:
        warn(f'--resume: passing over {path}: {why}')
    if not usable:
        if not notes:
            return None
        listed = '; '.join(f'{path}: {why}' for path, why in notes)
        raise InputCheckError(
            f'--resume: no complete checkpoint of this run in {folders} '
            f'(found: {listed}). Pass --resume PATH to continue from a '
            'checkpoint, or run without --resume to start from scratch')
    best = max(
        usable,
        key=lambda c: (c.iter, c.epoch, c.path == named,
                       _step_of(osp.basename(c.path), tmpls)))
    if best.path != named:
        pointed = f'names {named}' if named else 'names no usable file'
        warn(f'--resume: resuming from {best.path} (iteration {best.iter}, '
             f'the most of this run\'s complete checkpoints); {pointer} '
             f'{pointed}')
    return best.path
