"""A resumed run logs the same losses as the uninterrupted one.

``toy_distill.py``: a real ProtoDistiller (prototype branch, KL, half of
each batch distilled: the DistillSampler's draws), random flip and crop in
one non-persistent dataloader worker, validation after every epoch. Built
by ``tools/train.py`` (which adds ``ExactResumeHook``) and trained in this
process: 4 epochs straight, and 2 epochs then ``--resume`` to 4. The losses
of ``vis_data/scalars.json`` (``window_size=1``: each step's own) must be
equal step by step, and the final weights equal. Without the hook the same
pair of runs departs after the resume: the check is not vacuous. The demo
config, as shipped (no seed: each run draws one), on 4 of its photos: the
resumed run takes the seed of the run it continues and repeats it exactly,
resumed from the end of an epoch or from the middle of one, where SIGTERM
stopped it.

Run: ``pytest tests/test_tools/test_exact_resume.py``
"""
import glob
import json
import os
import os.path as osp
import signal

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from tool_runner import REPO, load_module, toy

from mmprockd.engine import EpochWorkerSeed
from mmprockd.engine.hooks.preemption_hook import StopSignalsToMain

train_tool = load_module(osp.join(REPO, 'tools', 'train.py'), 'train_tool')

CONFIG = osp.join(toy.TOY_DIR, 'toy_distill.py')
EPOCHS, STOP = 4, 2
ITERS = 2  # per epoch: 8 images, batch 4


def _train(work_dir, data_root, epochs, resume=False, hook=True):
    args = train_tool.parse_args(
        [CONFIG, '--work-dir', work_dir] + (['--resume'] if resume else []) +
        ['--cfg-options', f'train_cfg.max_epochs={epochs}'] +
        toy.data_root_options(data_root))
    cfg = train_tool.build_config(args)
    if not hook:  # mmengine's behaviour, for the control
        cfg.custom_hooks = [
            h for h in cfg.custom_hooks
            if h['type'] != 'mmprockd.ExactResumeHook'
        ]
    # unique names: runners built in the same second share them otherwise
    cfg.experiment_name = f'{osp.basename(work_dir)}_{epochs}_{resume}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _losses(work_dir):
    """``{step: {loss key: value}}`` of all the runs in ``work_dir``."""
    steps = {}
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'loss' in row:
                    assert row['step'] not in steps, (path, row['step'])
                    steps[row['step']] = {
                        k: v
                        for k, v in row.items() if 'loss' in k
                    }
    return steps


def _weights(work_dir):
    path = osp.join(work_dir, f'epoch_{EPOCHS}.pth')
    return torch.load(path, map_location='cpu')['state_dict']


@pytest.fixture(scope='module')
def runs(toy_data_root, tmp_path_factory):
    """Work dirs: ``{(hook, 'full' | 'resumed'): dir}``, and the train
    dataloader's ``worker_init_fn`` at ``(hook, 'init_fn')``."""
    dirs = {}
    for hook in (True, False):
        full = str(tmp_path_factory.mktemp(f'full_{hook}'))
        runner = _train(full, toy_data_root, EPOCHS, hook=hook)
        dirs[hook, 'init_fn'] = runner.train_dataloader.worker_init_fn
        resumed = str(tmp_path_factory.mktemp(f'resumed_{hook}'))
        _train(resumed, toy_data_root, STOP, hook=hook)
        _train(resumed, toy_data_root, EPOCHS, resume=True, hook=hook)
        dirs[hook, 'full'], dirs[hook, 'resumed'] = full, resumed
    return dirs


def test_resumed_run_logs_the_same_losses_step_by_step(runs):
    full, resumed = _losses(runs[True, 'full']), _losses(runs[True, 'resumed'])
    assert sorted(full) == list(range(1, EPOCHS * ITERS + 1))
    assert {'student.loss', 'distill.proto.loss',
            'distill.loss_kl'} <= set(full[1])
    for step in sorted(full):
        assert resumed[step] == full[step], step  # exact, not approx
    weights, again = _weights(runs[True, 'full']), _weights(runs[True,
                                                                 'resumed'])
    assert weights.keys() == again.keys()
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    # PreemptionHook wraps it: the workers leave the signals to the main
    init_fn = runs[True, 'init_fn']
    assert isinstance(init_fn, StopSignalsToMain)
    assert isinstance(init_fn.inner, EpochWorkerSeed)


def test_without_the_hook_the_resumed_run_departs(runs):
    full, resumed = _losses(runs[False, 'full']), _losses(runs[False,
                                                               'resumed'])
    first = STOP * ITERS
    for step in range(1, first + 1):  # the same until the stop
        assert resumed[step] == full[step], step
    assert any(resumed[s] != full[s] for s in range(first + 1, 2 * first))


def test_train_adds_the_hook_once():
    from mmengine.config import Config
    cfg = Config(dict(custom_hooks=[dict(type='FooHook')]))
    train_tool.add_exact_resume_hook(cfg)
    train_tool.add_exact_resume_hook(cfg)
    assert cfg.custom_hooks == [
        dict(type='FooHook'),
        dict(type='mmprockd.ExactResumeHook')
    ]
    cfg = Config(dict(custom_hooks=[dict(type='ExactResumeHook')]))
    train_tool.add_exact_resume_hook(cfg)
    assert cfg.custom_hooks == [dict(type='ExactResumeHook')]


# ------------------------------------------- a shipped config, as shipped

DEMO = osp.join(REPO, 'configs', 'demo',
                'prockd_mobilenetv2_retinanet_demo.py')
DEMO_ITERS = 2  # per epoch: 4 of the photos, batch 2
# a subset of the data and per-step logs; the config's randomness (no
# seed) and everything else as shipped
DEMO_OPTIONS = [
    'train_dataloader.dataset.indices=4', 'default_hooks.logger.interval=1',
    'log_processor.window_size=1'
]


class _SignalAt(Hook):
    """Sends this process ``signum`` when step ``step`` (from 1) starts."""

    def __init__(self, step, signum):
        self.step, self.signum = step, signum

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.step:
            os.kill(os.getpid(), self.signum)


def _train_demo(work_dir, epochs, resume=False, draw=0, hooks=()):
    """Train the demo config; the runner draws its seed (no seed in the
    config) from numpy's global RNG, seeded with ``draw`` here."""
    args = train_tool.parse_args(
        [DEMO, '--work-dir', work_dir] + (['--resume'] if resume else []) +
        ['--cfg-options', f'train_cfg.max_epochs='
         f'{epochs}'] + DEMO_OPTIONS)
    cfg = train_tool.build_config(args)
    name = f'{osp.basename(work_dir)}_{epochs}_{resume}'
    # the config names its visualizer: a second runner in this process
    # would otherwise write into the first one's scalars.json
    cfg.experiment_name = cfg.visualizer.name = name
    np.random.seed(draw)
    runner = Runner.from_cfg(cfg)
    for hook in hooks:
        runner.register_hook(hook)
    runner.train()
    return runner


def test_the_demo_config_as_shipped_resumes_exactly(tmp_path, monkeypatch):
    """The demo config sets no seed: each run draws one (the same one for
    the uninterrupted run and the first half here, another one when the
    second half is built). The resumed run takes the one its checkpoint
    was trained with."""
    from mmengine.config import Config
    assert (Config.fromfile(DEMO).get('randomness') or {}).get('seed') is None
    monkeypatch.chdir(REPO)  # the config's data_root is relative
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    full, resumed = str(tmp_path / 'full'), str(tmp_path / 'resumed')
    seed = _train_demo(full, 2, draw=1).seed
    assert _train_demo(resumed, 1, draw=1).seed == seed
    assert _train_demo(resumed, 2, resume=True, draw=2).seed == seed
    # stopped by SIGTERM in the middle of epoch 2, resumed there
    stopped = str(tmp_path / 'stopped')
    with pytest.raises(SystemExit) as info:
        _train_demo(stopped, 2, draw=1, hooks=[_SignalAt(3, signal.SIGTERM)])
    assert info.value.code == 75
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # put back
    assert torch.load(osp.join(stopped,
                               'preempt_iter_3.pth'))['meta']['iter'] == 3
    assert _train_demo(stopped, 2, resume=True, draw=3).seed == seed
    steps = _losses(full)
    assert sorted(steps) == list(range(1, 2 * DEMO_ITERS + 1))
    assert 'distill.proto.loss_cls' in steps[DEMO_ITERS + 1]
    weights = torch.load(
        osp.join(full, 'epoch_2.pth'), map_location='cpu')['state_dict']
    for work_dir in (resumed, stopped):
        after = _losses(work_dir)
        for step in sorted(steps):
            assert after[step] == steps[step], (work_dir, step)  # exact
        again = torch.load(
            osp.join(work_dir, 'epoch_2.pth'),
            map_location='cpu')['state_dict']
        assert weights.keys() == again.keys()
        assert all(torch.equal(weights[k], again[k]) for k in weights)
