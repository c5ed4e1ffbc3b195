"""Which checkpoint ``--resume`` continues from.

mmengine's ``find_latest_checkpoint`` trusts ``last_checkpoint``, which a
kill can leave naming a deleted, truncated or older file, or a file of the
work dir this one was copied from. :func:`find_resumable_checkpoint` picks
the complete checkpoint of this run with the most iterations instead,
reading only each file's index and ``meta`` (:func:`read_candidate`).
Every checkpoint of an :class:`~mmprockd.engine.AtomicCheckpointHook` run
carries the run's id in ``meta['run_id']``.
"""
import logging
import os
import os.path as osp
import re
import zipfile
from typing import Iterable, List, NamedTuple, Optional

import torch
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import print_log

from mmprockd.utils.atomic_write import POINTER
from mmprockd.utils.checkpoint_io import InputCheckError, load_checkpoint_file

DEFAULT_TMPLS = ('epoch_{}.pth', 'iter_{}.pth')
# the checkpoint a run writes when it is stopped by a signal (PreemptionHook)
PREEMPT_TMPL = 'preempt_iter_{}.pth'
RUN_ID = 'run_id'  # message hub info and checkpoint meta: the run's lineage


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
