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
from types import SimpleNamespace

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


class _Handlers(torch.utils.data.Dataset):
    """What SIGTERM and SIGINT do in the process that loads the item, and
    whether the loader's own ``worker_init_fn`` ran there."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return torch.tensor([
            int(signal.getsignal(signal.SIGTERM) == signal.SIG_IGN),
            int(signal.getsignal(signal.SIGINT) == signal.SIG_IGN),
            int(os.environ.get('INNER_INIT_RAN') == '1')
        ])


def _inner_init(worker_id):
    os.environ['INNER_INIT_RAN'] = '1'


def test_the_workers_leave_the_signals_to_the_main_process():
    """A signal sent to the whole job (Ctrl-C, Slurm) must not kill a
    worker before the main process ends its step."""
    loader = torch.utils.data.DataLoader(
        _Handlers(),
        batch_size=2,
        num_workers=1,
        worker_init_fn=_inner_init,
        multiprocessing_context='fork')
    hook = PreemptionHook()
    runner = SimpleNamespace(train_loop=SimpleNamespace(dataloader=loader))
    # what the hook must put back (SIG_IGN where a shell started the tests
    # in the background)
    sigint = signal.getsignal(signal.SIGINT)
    hook.before_train(runner)
    try:
        assert signal.getsignal(signal.SIGTERM) == hook._handle
        batch = next(iter(loader))
    finally:
        hook.after_train(runner)
    assert batch.tolist() == [[1, 1, 1], [1, 1, 1]]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) == sigint
