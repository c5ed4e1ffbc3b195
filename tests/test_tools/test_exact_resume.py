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
import random
import signal
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from tool_runner import REPO, load_module, logged_losses, run_tool, toy

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
    full = logged_losses(runs[True, 'full'])
    resumed = logged_losses(runs[True, 'resumed'])
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
    full = logged_losses(runs[False, 'full'])
    resumed = logged_losses(runs[False, 'resumed'])
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
    steps = logged_losses(full)
    assert sorted(steps) == list(range(1, 2 * DEMO_ITERS + 1))
    assert 'distill.proto.loss_cls' in steps[DEMO_ITERS + 1]
    weights = torch.load(
        osp.join(full, 'epoch_2.pth'), map_location='cpu')['state_dict']
    for work_dir in (resumed, stopped):
        after = logged_losses(work_dir)
        for step in sorted(steps):
            assert after[step] == steps[step], (work_dir, step)  # exact
        again = torch.load(
            osp.join(work_dir, 'epoch_2.pth'),
            map_location='cpu')['state_dict']
        assert weights.keys() == again.keys()
        assert all(torch.equal(weights[k], again[k]) for k in weights)


# ------------------------------- the proxy's detection recipe, as shipped

KILL_SEED = 7  # draws the step of the student phase the run is killed at
BRANCH, STUDENT = 12, 12  # iterations of the two phases
CKPT_EVERY = 4


def _proxy_config(tmp_path, caches: bool = True) -> str:
    """What ``--table det_n100_mini`` trains for the row ``two_stage``
    (``two_stage@ITERS``), built by the proxy's own ``build_cfg`` at seed 0
    on 16 canvases composed from the embedded items, its two phases
    shortened to ``BRANCH`` and ``STUDENT`` iterations as ``tools/demo.py``
    shortens them; then a log line and the losses of every step, a
    checkpoint every ``CKPT_EVERY`` iterations and the kill switch
    (``kill_switch.py``: nothing unless ``$KILL_AT`` says so). ``caches``
    False: without the row's teacher and branch output caches."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        from analysis_tools.proxy.run import build_cfg
        from analysis_tools.proxy.tables import TABLES
        from dataset_converters.build_fmnist_canvas import build
    finally:
        sys.path.remove(osp.join(REPO, 'tools'))
    table = TABLES['det_n100_mini']
    assert 'two_stage@800' in table['rows']
    data = str(tmp_path / 'canvas') + '/'
    build(
        osp.join(REPO, table['src']), data,
        **dict(table['build'], num_train=16, num_val=4, num_test=4))
    cfg = build_cfg(
        'two_stage',
        0,
        str(tmp_path / 'unused'),
        data,
        STUDENT,
        8,
        table['build']['canvas'],
        None,
        task='det',
        overrides={
            'custom_hooks.0.student_start': BRANCH,
            'custom_hooks.0.branch_stop': BRANCH
        })
    cfg.pop('experiment_name')
    assert cfg.model.teacher_cache and cfg.model.branch_cache
    if not caches:
        cfg.model.teacher_cache = cfg.model.branch_cache = None
    cfg.merge_from_dict({
        'default_hooks.logger.interval':
        1,
        'log_processor.window_size':
        1,
        'default_hooks.checkpoint':
        dict(type='CheckpointHook', interval=CKPT_EVERY, by_epoch=False)
    })
    cfg.custom_imports.imports.append('kill_switch')
    cfg.custom_hooks.append(dict(type='KillSwitchHook'))
    path = str(tmp_path / 'two_stage.py')
    cfg.dump(path)
    return path


def _train_proxy(config, work_dir, cwd, kill_at='none:0', resume=False):
    return run_tool(
        ['train.py', config, '--work-dir', work_dir] +
        (['--resume'] if resume else []),
        cwd=cwd,
        KILL_AT=kill_at,
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join([
            osp.dirname(osp.abspath(__file__)), REPO,
            os.environ.get('PYTHONPATH', '')
        ]))


# As shipped, the row caches the frozen teacher's and the frozen branch's
# outputs in memory; ExactResumeHook keeps them in the checkpoints. A
# resumed run that started with them empty would compute again, on the
# whole batch, the outputs a hit would have returned or the uninterrupted
# run computed on the images the cache lacked, which differs in the last
# bits on the CPU; and on a full hit the branch does not run, so the
# logged distill.proto.* repeat the previous step's.
@pytest.mark.parametrize(
    'caches', [True, False], ids=['as_shipped', 'without_output_caches'])
def test_the_proxys_detection_recipe_resumes_exactly_after_a_kill(
        tmp_path, caches):
    """Killed (SIGKILL) after a random step of the student phase, resumed
    from the newest checkpoint: every step either run logged has the
    uninterrupted run's losses, and the final weights are the same."""
    config = _proxy_config(tmp_path, caches)
    cfg = Config.fromfile(config)
    total = BRANCH + STUDENT
    assert cfg.train_cfg.max_iters == total
    hook = cfg.custom_hooks[0]
    assert hook.type == 'mmprockd.DistillScheduleHook'
    assert (hook.student_start, hook.branch_stop) == (BRANCH, BRANCH)
    # the shipped loader: no workers, shuffled, a random flip
    loader = cfg.train_dataloader
    assert loader.num_workers == 0 and loader.sampler.shuffle
    assert dict(type='RandomFlip', prob=0.5) in loader.dataset.pipeline
    kill = random.Random(KILL_SEED).randint(BRANCH + 1, total - 1)
    resumed_from = kill - kill % CKPT_EVERY
    assert resumed_from >= BRANCH and resumed_from < kill

    full, stopped = str(tmp_path / 'full'), str(tmp_path / 'stopped')
    proc = _train_proxy(config, full, str(tmp_path))
    assert proc.returncode == 0, proc.output[-3000:]
    proc = _train_proxy(config, stopped, str(tmp_path), f'iter:1:{kill}')
    assert proc.returncode == -signal.SIGKILL, proc.output[-3000:]
    # killed after step ``kill``, before the logger hook wrote it
    assert sorted(logged_losses(stopped)) == list(range(1, kill))
    proc = _train_proxy(config, stopped, str(tmp_path), resume=True)
    assert proc.returncode == 0, proc.output[-3000:]
    ckpt = osp.join(stopped, f'iter_{resumed_from}.pth')
    assert f'Load checkpoint from {ckpt}' in proc.output
    assert f'random state restored (iter {resumed_from})' in proc.output
    # the caches as the uninterrupted run had them at that step, restored
    saved, expected = (
        torch.load(osp.join(d, f'iter_{resumed_from}.pth'),
                   weights_only=True)['exact_resume']['feature_caches']
        for d in (stopped, full))
    assert sorted(saved) == (['branch_cache', 'teacher_cache']
                             if caches else [])
    for name, cache in saved.items():
        assert cache['keys'] and cache['keys'] == expected[name]['keys']
        assert torch.equal(cache['data'], expected[name]['data'])
        assert f'{name} restored ({len(cache["keys"])} samples)' in \
            proc.output
    assert caches or 'cache restored' not in proc.output

    steps = logged_losses(full)
    assert sorted(steps) == list(range(1, total + 1))
    assert 'distill.loss_kl' not in steps[BRANCH]
    assert {'distill.loss_kl',
            'distill.loss_branch_feat'} <= set(steps[BRANCH + 1])
    runs = sorted(
        glob.glob(osp.join(stopped, '*', 'vis_data', 'scalars.json')))
    assert len(runs) == 2
    seen = set()
    for path in runs:
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'loss' in row:
                    step = row['step']
                    seen.add(step)
                    assert {
                        k: v
                        for k, v in row.items() if 'loss' in k
                    } == steps[step], (path, step)
    assert seen == set(steps)
    weights, again = (
        torch.load(osp.join(d, f'iter_{total}.pth'),
                   map_location='cpu')['state_dict'] for d in (full, stopped))
    assert weights.keys() == again.keys()
    assert all(torch.equal(weights[k], again[k]) for k in weights)
