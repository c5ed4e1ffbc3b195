"""Checkpoint hooks: no checkpoint with non-finite weights is written
(``FiniteCheckpointHook``, ``StudentCheckpointHook``), and
``StudentCheckpointHook(max_keep_ckpts)`` after a resume.

Run: ``pytest tests/test_engine/test_checkpoint_hooks.py``
"""
import os
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from torch import nn

from mmprockd.engine.hooks import (FiniteCheckpointHook, StudentCheckpointHook,
                                   check_finite_state_dict)


def _state(**extra):
    state = {
        'backbone.weight': torch.ones(3, 2),
        'bn.running_mean': torch.zeros(3),
        'bn.num_batches_tracked': torch.tensor(7),  # an integer buffer
    }
    state.update(extra)
    return state


def test_a_finite_state_dict_passes():
    check_finite_state_dict(_state(), 'x.pth')
    check_finite_state_dict({}, 'x.pth')


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_one_non_finite_value_is_refused_with_its_key(bad):
    weight = torch.ones(3, 2)
    weight[1, 0] = bad
    with pytest.raises(RuntimeError) as info:
        check_finite_state_dict(_state(**{'head.weight': weight}), 'x.pth')
    message = str(info.value)
    assert message.startswith('refusing to save x.pth: 1 of its 4 tensors')
    assert "['head.weight']" in message


def test_finite_checkpoint_hook_checks_the_checkpoints_state_dict():
    hook = FiniteCheckpointHook()
    assert hook.priority == 'LOWEST'  # after hooks that change the weights
    runner = SimpleNamespace(work_dir='/work')
    hook.before_save_checkpoint(
        runner, dict(meta=dict(epoch=3, iter=30), state_dict=_state()))
    nan = _state(**{'head.bias': torch.tensor([0.0, float('nan')])})
    with pytest.raises(
            RuntimeError,
            match=r'the checkpoint of epoch 3, iteration 30 in '
            r"/work: 1 of its 4 tensors .*\['head.bias'\]"):
        hook.before_save_checkpoint(
            runner, dict(meta=dict(epoch=3, iter=30), state_dict=nan))


class _Distiller(nn.Module):
    """Has a ``student``, like a ProtoDistiller."""

    def __init__(self):
        super().__init__()
        self.student = nn.Linear(2, 3)


class _Loader:
    """10 batches an epoch."""
    dataset = None

    def __len__(self):
        return 10


def _runner(tmp_path, epoch, it=None):
    logged = []
    return SimpleNamespace(
        model=_Distiller(),
        epoch=epoch,
        iter=epoch * 10 if it is None else it,
        work_dir=str(tmp_path),
        cfg=Config(
            dict(
                model=dict(
                    type='mmprockd.ProtoDistiller',
                    student=dict(type='Linear')))),
        logged=logged,
        logger=SimpleNamespace(info=logged.append, warning=logged.append),
        train_dataloader=_Loader())


def _numbered(tmp_path):
    return sorted(
        n for n in os.listdir(tmp_path) if n.startswith('student_epoch_'))


def test_student_hook_refuses_non_finite_weights(tmp_path):
    runner = _runner(tmp_path, epoch=0)
    with torch.no_grad():
        runner.model.student.bias[1] = float('nan')
    hook = StudentCheckpointHook(by_epoch=True)
    hook.before_train(runner)
    path = tmp_path / 'student_epoch_1.pth'
    with pytest.raises(
            RuntimeError,
            match=rf"refusing to save {path}: .*\['student.bias'\]"):
        hook.after_train_epoch(runner)
    assert os.listdir(tmp_path) == []  # nothing written, not even latest


def _touch(tmp_path, *epochs):
    for epoch in epochs:
        (tmp_path / f'student_epoch_{epoch}.pth').write_bytes(b'old')


def test_max_keep_ckpts_counts_the_files_of_a_resumed_run(tmp_path):
    _touch(tmp_path, 1, 2, 3)
    hook = StudentCheckpointHook(by_epoch=True, max_keep_ckpts=2)
    runner = _runner(tmp_path, epoch=3)  # resumed after epoch 3
    hook.before_train(runner)
    hook.after_train_epoch(runner)  # saves epoch 4
    assert _numbered(tmp_path) == [
        'student_epoch_3.pth', 'student_epoch_4.pth'
    ]
    runner.epoch = 4
    hook.after_train_epoch(runner)
    assert _numbered(tmp_path) == [
        'student_epoch_4.pth', 'student_epoch_5.pth'
    ]


def test_a_resume_leaves_files_of_later_epochs_to_be_rewritten(tmp_path):
    # a longer earlier run in the same folder, resumed from epoch 2
    _touch(tmp_path, 1, 2, 3, 4)
    hook = StudentCheckpointHook(by_epoch=True, max_keep_ckpts=2)
    runner = _runner(tmp_path, epoch=2)
    hook.before_train(runner)
    hook.after_train_epoch(runner)  # writes epoch 3 again
    assert _numbered(tmp_path) == [
        'student_epoch_2.pth', 'student_epoch_3.pth', 'student_epoch_4.pth'
    ]
    assert (tmp_path / 'student_epoch_3.pth').read_bytes() != b'old'
    runner.epoch = 3
    hook.after_train_epoch(runner)  # writes epoch 4 again, drops 2
    assert _numbered(tmp_path) == [
        'student_epoch_3.pth', 'student_epoch_4.pth'
    ]


def test_a_fresh_run_never_deletes_files_it_did_not_write(tmp_path):
    _touch(tmp_path, 1, 2, 3)
    hook = StudentCheckpointHook(by_epoch=True, max_keep_ckpts=1)
    runner = _runner(tmp_path, epoch=0, it=0)  # not resumed
    hook.before_train(runner)
    hook.after_train_epoch(runner)  # overwrites epoch 1
    assert _numbered(tmp_path) == [
        'student_epoch_1.pth', 'student_epoch_2.pth', 'student_epoch_3.pth'
    ]


def test_max_keep_ckpts_counts_the_iteration_files_of_a_resumed_run(tmp_path):
    for it in (100, 200, 300):
        (tmp_path / f'student_iter_{it}.pth').write_bytes(b'old')
    _touch(tmp_path, 1)  # epoch files are not counted by iteration
    hook = StudentCheckpointHook(
        interval=100, by_epoch=False, max_keep_ckpts=2)
    runner = _runner(tmp_path, epoch=0, it=399)
    hook.before_train(runner)
    hook.after_train_iter(runner, batch_idx=0)  # saves iteration 400
    names = sorted(n for n in os.listdir(tmp_path) if '_iter_' in n)
    assert names == ['student_iter_300.pth', 'student_iter_400.pth']
    assert _numbered(tmp_path) == ['student_epoch_1.pth']


def _export_meta(path):
    return torch.load(path, weights_only=True)['meta']


def test_a_resume_writes_the_missing_export_of_its_checkpoint(tmp_path):
    """Killed after epoch_3.pth, before its export: the resumed run (or
    one that only finishes, with nothing left to train) writes it."""
    _touch(tmp_path, 1, 2)
    runner = _runner(tmp_path, epoch=3)
    StudentCheckpointHook(by_epoch=True).before_train(runner)
    path = tmp_path / 'student_epoch_3.pth'
    weights = torch.load(path, weights_only=True)['state_dict']
    assert torch.equal(weights['weight'], runner.model.student.weight)
    assert (_export_meta(path)['epoch'], _export_meta(path)['iter']) == (3, 30)
    assert _export_meta(tmp_path / 'student_latest.pth')['iter'] == 30
    assert (tmp_path / 'student_config.py').is_file()
    assert 'student_epoch_3.pth' in runner.logged[0]
    assert not [n for n in os.listdir(tmp_path) if '.tmp' in n]
    # all there now: a second resume rewrites nothing
    (tmp_path / 'student_epoch_3.pth').write_bytes(b'kept')
    runner = _runner(tmp_path, epoch=3)
    StudentCheckpointHook(by_epoch=True).before_train(runner)
    assert (tmp_path / 'student_epoch_3.pth').read_bytes() == b'kept'
    assert runner.logged == []


def test_a_resume_rewrites_a_student_latest_of_an_older_step(tmp_path):
    runner = _runner(tmp_path, epoch=2)
    hook = StudentCheckpointHook(by_epoch=True)
    hook.before_train(_runner(tmp_path, epoch=0, it=0))
    runner.epoch, runner.iter = 1, 20
    hook.after_train_epoch(runner)  # epoch 2, latest too
    assert _export_meta(tmp_path / 'student_latest.pth')['iter'] == 20
    _touch(tmp_path, 3)  # killed between student_epoch_3 and latest
    StudentCheckpointHook(
        by_epoch=True).before_train(_runner(tmp_path, epoch=3))
    assert _export_meta(tmp_path / 'student_latest.pth')['iter'] == 30
    assert _export_meta(tmp_path / 'student_epoch_3.pth')['epoch'] == 3


def test_no_export_at_a_resume_mid_epoch_or_off_the_interval(tmp_path):
    StudentCheckpointHook(
        by_epoch=True).before_train(_runner(tmp_path, epoch=3,
                                            it=35))  # a preemption checkpoint
    StudentCheckpointHook(
        interval=2, by_epoch=True).before_train(_runner(tmp_path, epoch=3))
    assert os.listdir(tmp_path) == []
    StudentCheckpointHook(
        interval=5,
        by_epoch=False).before_train(_runner(tmp_path, epoch=3, it=35))
    assert _export_meta(tmp_path / 'student_iter_35.pth')['iter'] == 35


def test_a_full_disk_at_the_student_export_names_the_file(
        tmp_path, monkeypatch):
    from mmengine.hooks import CheckpointHook

    from mmprockd.engine import DiskFullError, student_export

    def full(path, data):
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(student_export, 'write_bytes', full)
    runner = _runner(tmp_path, epoch=0, it=0)
    checkpoint = CheckpointHook()
    checkpoint.last_ckpt = str(tmp_path / 'epoch_3.pth')
    runner.hooks = [checkpoint]
    hook = StudentCheckpointHook(by_epoch=True)
    hook.before_train(runner)
    with pytest.raises(DiskFullError) as info:
        hook.after_train_epoch(runner)
    path = tmp_path / 'student_epoch_1.pth'
    assert str(info.value).startswith(
        f'no space left on the device to write {path}: ')
    assert int(str(info.value).split(': ')[1].split()[0]) > 0  # bytes
    assert (f'the last complete checkpoint is {tmp_path / "epoch_3.pth"}'
            in str(info.value))
    assert os.listdir(tmp_path) == []  # the half-written file removed
