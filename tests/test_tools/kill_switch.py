"""SIGKILL a training run at a chosen moment, for the kill test
(``test_train_kill_resume.py``); a config imports it with
``custom_imports`` and adds ``custom_hooks=[dict(type='KillSwitchHook')]``.

The moment is ``$KILL_AT``, ``KIND:EPOCH[:BATCH]`` (epochs from 1):

- ``iter:E:B``: after batch B of epoch E (the epoch's checkpoint not yet
  written);
- ``write:E``: while ``epoch_E.pth`` is written, half of its bytes on disk;
- ``pointer:E``: after ``epoch_E.pth`` is complete, before
  ``last_checkpoint`` names it;
- ``remove:E``: before ``epoch_{E-1}.pth`` is deleted for ``epoch_E.pth``;
- ``term:E:B`` / ``int:E:B``: SIGTERM / SIGINT (not a kill: the run
  handles them) when batch B of epoch E starts, so that the signal comes
  while that step is in flight; sent to the whole process group (the
  dataloader workers too), as Ctrl-C in a terminal and Slurm do;
- ``termval:E:B``: SIGTERM to the process group when batch B of the
  validation after epoch E starts;
- ``export:E``: while ``student_epoch_E.pth`` (the student export that
  follows ``epoch_E.pth``) is written, half of its bytes in its temporary
  file.

The three last ones hook mmengine's ``LocalBackend``, through which both
mmengine's ``CheckpointHook`` and mmprockd's ``AtomicCheckpointHook`` write.
The process kills itself with SIGKILL, so nothing after the moment runs: no
``finally``, no flush, no atexit, as under ``kill -9``.
"""
import io
import os
import os.path as osp
import signal

import torch
from mmengine.fileio import LocalBackend
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mmprockd.engine import student_export
from mmprockd.utils.atomic_write import tmp_path

KIND, _, WHERE = os.environ.get('KILL_AT', 'none:0').partition(':')
EPOCH, _, BATCH = WHERE.partition(':')
EPOCH = int(EPOCH)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


_put, _put_text, _remove = (LocalBackend.put, LocalBackend.put_text,
                            LocalBackend.remove)


def put(self, obj, filepath):
    if KIND == 'write' and osp.basename(
            str(filepath)).startswith(f'epoch_{EPOCH}.pth'):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
            f.flush()
            os.fsync(f.fileno())
        _die()
    _put(self, obj, filepath)


def put_text(self, obj, filepath, *args, **kwargs):
    if (KIND == 'pointer'
            and osp.basename(str(filepath)).startswith('last_checkpoint')
            and osp.basename(obj) == f'epoch_{EPOCH}.pth'):
        _die()
    _put_text(self, obj, filepath, *args, **kwargs)


def remove(self, filepath):
    if KIND == 'remove' and osp.basename(
            str(filepath)) == f'epoch_{EPOCH - 1}.pth':
        _die()
    _remove(self, filepath)


LocalBackend.put, LocalBackend.put_text, LocalBackend.remove = (put, put_text,
                                                                remove)

_atomic_save = student_export.atomic_save


def atomic_save(obj, path):
    if KIND == 'export' and osp.basename(path) == f'student_epoch_{EPOCH}.pth':
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        data = buffer.getvalue()
        with open(tmp_path(osp.abspath(path)), 'wb') as f:
            f.write(data[:len(data) // 2])
        _die()
    _atomic_save(obj, path)


student_export.atomic_save = atomic_save


@HOOKS.register_module()
class KillSwitchHook(Hook):
    """Kills in ``after_train_iter`` for ``iter:E:B``; signals in
    ``before_train_iter`` for ``term:E:B`` and ``int:E:B``, in
    ``before_val_iter`` for ``termval:E:B``."""

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if (KIND == 'termval' and runner.epoch == EPOCH
                and batch_idx + 1 == int(BATCH)):
            os.killpg(os.getpgid(0), signal.SIGTERM)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if (KIND in ('term', 'int') and runner.epoch + 1 == EPOCH
                and batch_idx + 1 == int(BATCH)):
            signum = signal.SIGTERM if KIND == 'term' else signal.SIGINT
            os.killpg(os.getpgid(0), signum)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if (KIND == 'iter' and runner.epoch + 1 == EPOCH
                and batch_idx + 1 == int(BATCH)):
            _die()
