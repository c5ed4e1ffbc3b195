"""``ProtoDistiller.parse_losses`` under DDP logs the mean over ranks
(:class:`RankMeanLogVars`), in a real 2-process gloo group on the CPU, with
values set by hand; the backpropagated loss stays the rank's own.

Run: ``pytest tests/test_models/test_distillers/test_rank_mean_logging.py``
"""
import datetime
import inspect
import os
import socket

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from mmengine.model import BaseModel

from mmprockd.models.distillers import rank_mean
from mmprockd.models.distillers.proto_distiller import ProtoDistiller
from mmprockd.models.distillers.rank_mean import RankMeanLogVars


class _Bare(ProtoDistiller):
    """ProtoDistiller's own ``parse_losses`` without a student or teacher."""

    def __init__(self, log_rank_mean: bool = True) -> None:
        BaseModel.__init__(self)
        self.log_rank_mean = log_rank_mean
        self._rank_mean = RankMeanLogVars()
        self._branch_frozen = False  # parse_losses reads it


def _count_collectives(calls: list) -> None:
    """Count the collectives RankMeanLogVars makes, by name."""
    for name in ('all_reduce', 'all_gather_object'):
        real = getattr(rank_mean, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        setattr(rank_mean, name, counted)


def _step(model, rank, values: dict, calls: list):
    """parse_losses of ``values`` (rank 0's, rank 1's); returns the
    backpropagated loss, the grad of the loss weight, the logged dict and
    the collectives made."""
    w = torch.ones((), requires_grad=True)
    losses = {k: w * v[rank] for k, v in values.items() if v[rank] is not None}
    del calls[:]
    loss, log_vars = model.parse_losses(losses)
    loss.backward()
    return loss.item(), w.grad.item(), {
        k: v.item()
        for k, v in log_vars.items()
    }, list(calls)


def _worker(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    # a deadlock (ranks with different buffers) fails instead of hanging
    torch_dist.init_process_group(
        'gloo',
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=60))
    calls = []
    _count_collectives(calls)
    model = _Bare()
    nan = float('nan')

    # 1: the same keys, 1.0 and 3.0 -> 2.0; first step: the keys are agreed
    loss, grad, logged, made = _step(model, rank, {
        'student.loss_cls': (1.0, 3.0),
        'student.accuracy': (50.0, 100.0)
    }, calls)
    assert loss == [1.0, 3.0][rank] and grad == [1.0, 3.0][rank]  # local
    assert logged == {
        'loss': 2.0,
        'student.loss_cls': 2.0,
        'student.accuracy': 75.0
    }
    assert made == ['all_reduce', 'all_gather_object']
    assert model._rank_mean.keys == [
        'loss', 'student.accuracy', 'student.loss_cls'
    ]

    # 2: known keys only: one collective
    loss, grad, logged, made = _step(model, rank, {
        'student.loss_cls': (2.0, 4.0),
        'student.accuracy': (0.0, 50.0)
    }, calls)
    assert loss == [2.0, 4.0][rank]
    assert logged == {
        'loss': 3.0,
        'student.loss_cls': 3.0,
        'student.accuracy': 25.0
    }
    assert made == ['all_reduce']

    # 3: nan_guard dropped rank 1's distillation loss (distill.loss_zero
    # instead): a new key on each rank, each averaged over the rank that
    # had it; ``loss`` over both ranks' totals
    loss, grad, logged, made = _step(
        model, rank, {
            'student.loss_cls': (1.0, 3.0),
            'distill.loss_kl': (0.5, None),
            'distill.loss_zero': (None, 0.0)
        }, calls)
    assert loss == [1.5, 3.0][rank] and grad == [1.5, 3.0][rank]
    assert logged == {
        'loss': 2.25,
        'student.loss_cls': 2.0,
        'distill.loss_kl': 0.5,
        'distill.loss_zero': 0.0
    }
    assert list(logged)[:3] == [
        'loss', 'student.loss_cls', ['distill.loss_kl',
                                     'distill.loss_zero'][rank]
    ]  # this rank's order, then the keys only other ranks had
    assert made == ['all_reduce', 'all_gather_object']
    assert model._rank_mean.keys == sorted([
        'loss', 'student.accuracy', 'student.loss_cls', 'distill.loss_kl',
        'distill.loss_zero'
    ])

    # 4: known keys on one rank only, a non-finite value: one collective,
    # the counts make the means; student.accuracy (no rank) is not logged
    loss, grad, logged, made = _step(
        model, rank, {
            'student.loss_cls': (1.0, 3.0),
            'distill.loss_kl': (None, 7.0),
            'distill.loss_zero': (0.0, None),
        }, calls)
    assert loss == [1.0, 10.0][rank]
    assert logged == {
        'loss': 5.5,
        'student.loss_cls': 2.0,
        'distill.loss_kl': 7.0,
        'distill.loss_zero': 0.0
    }
    assert made == ['all_reduce']
    loss, grad, logged, made = _step(model, rank,
                                     {'student.loss_cls': (1.0, nan)}, calls)
    assert logged['student.loss_cls'] != logged['student.loss_cls']  # nan
    assert made == ['all_reduce']

    # log_rank_mean=False: rank 0's own values, no collective
    loss, grad, logged, made = _step(
        _Bare(log_rank_mean=False), rank, {'student.loss_cls': (1.0, 3.0)},
        calls)
    assert logged == {'loss': [1.0, 3.0][rank], 'student.loss_cls': loss}
    assert made == []
    torch_dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_gloo_ranks_log_the_mean_and_backpropagate_their_own():
    # fork: the children do not import mmprockd again (seconds each)
    mp.start_processes(
        _worker,
        args=(_free_port(), ),
        nprocs=2,
        join=True,
        start_method='fork')


@pytest.mark.parametrize('log_rank_mean', [True, False])
def test_one_process_logs_as_mmengine_does(log_rank_mean):
    assert not torch_dist.is_initialized()
    model = _Bare(log_rank_mean)
    w = torch.ones((), requires_grad=True)
    loss, log_vars = model.parse_losses({
        'student.loss_cls': w * 1.0,
        'student.accuracy': w * 50.0
    })
    assert loss.item() == 1.0
    assert {
        k: v.item()
        for k, v in log_vars.items()
    } == {
        'loss': 1.0,
        'student.loss_cls': 1.0,
        'student.accuracy': 50.0
    }
    assert model._rank_mean.keys == []  # no collective, nothing agreed


def test_the_distiller_has_the_switch():
    sig = inspect.signature(ProtoDistiller.__init__)
    assert sig.parameters['log_rank_mean'].default is True
