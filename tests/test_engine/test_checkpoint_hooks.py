"""Checkpoint hooks: no checkpoint with non-finite weights is written
(``FiniteCheckpointHook``, ``StudentCheckpointHook``).

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


def _runner(tmp_path, epoch, it=None):
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
        logger=SimpleNamespace(info=lambda msg: None),
        train_dataloader=SimpleNamespace(dataset=None))


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
