"""``PreemptionHook`` on a tiny real runner (a linear model, 2 iterations
an epoch): a signal that comes while an epoch ends stops the run after the
epoch's checkpoint, or with a checkpoint of its own when the epoch writes
none; the resumed run starts the next epoch. The signal in the middle of
an epoch, and the exact resume from it, are tested with real training
runs in ``tests/test_tools/test_train_kill_resume.py`` and
``test_exact_resume.py``.

Run: ``pytest tests/test_engine/test_preemption_hook.py``
"""
import os
import signal

import pytest
import torch
from mmengine.hooks import Hook
from test_atomic_checkpoint_hook import _ckpt_files, _pointer, _runner

from mmprockd.engine import PREEMPTED_EXIT, PreemptionHook


class _SignalAtEpochEnd(Hook):
    """SIGTERM while epoch ``epoch`` (from 1) ends, before the
    ``PreemptionHook`` looks."""
    priority = 'NORMAL'

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            os.kill(os.getpid(), signal.SIGTERM)


def _stopped(runner):
    runner.register_hook(_SignalAtEpochEnd(1))
    runner.register_hook(PreemptionHook())
    with pytest.raises(SystemExit) as info:
        runner.train()
    assert info.value.code == PREEMPTED_EXIT
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_signal_at_an_epoch_end_keeps_the_epochs_checkpoint(tmp_path):
    _stopped(_runner(tmp_path, epochs=3))
    assert _ckpt_files(tmp_path) == ['epoch_1.pth']  # no second file
    assert _pointer(tmp_path) == str(tmp_path / 'epoch_1.pth')


def test_a_signal_at_an_epoch_end_without_a_checkpoint_saves_one(tmp_path):
    _stopped(_runner(tmp_path, epochs=3, interval=2))
    path = tmp_path / 'preempt_iter_2.pth'
    assert _ckpt_files(tmp_path) == ['preempt_iter_2.pth']
    meta = torch.load(path)['meta']
    assert (meta['epoch'], meta['iter']) == (1, 2)
    assert _pointer(tmp_path) == str(path)
    # resumed: epochs 2 and 3; epoch_2.pth supersedes the preemption file
    runner = _runner(tmp_path, epochs=3, interval=2, resume=True)
    runner.register_hook(PreemptionHook())
    runner.train()
    assert runner.iter == 6
    assert _ckpt_files(tmp_path) == ['epoch_3.pth']  # the last is kept
    assert torch.load(tmp_path / 'epoch_3.pth')['meta']['iter'] == 6
