"""``tools/train.py`` with ``AtomicCheckpointHook``: a run killed with
SIGKILL at 10 random moments (seeded), mid-write among them, resumes each
time from the newest complete checkpoint; and the config changes
``tools/train.py`` makes for it.

The toy run (``toy_cls.py``, 2 iterations an epoch) keeps one checkpoint
(``max_keep_ckpts=1``, as the demo configs). ``kill_switch.py`` kills it
at the drawn moment. Each relaunch uses ``--resume`` without a value, as a
cluster job that is restarted would.

Run: ``pytest tests/test_tools/test_train_kill_resume.py``
"""
import glob
import json
import os
import os.path as osp
import random
import re
import signal

import pytest
import torch
from mmengine.config import Config
from tool_runner import REPO, load_module, run_tool, toy

train_tool = load_module(osp.join(REPO, 'tools', 'train.py'), 'train_tool')

HERE = osp.dirname(osp.abspath(__file__))
KILLS = 10
MAX_EPOCHS = 3 * KILLS + 2  # each kill is at most 3 epochs on


def _config(tmp_path) -> str:
    path = tmp_path / 'toy_kill.py'
    path.write_text(f"""_base_ = [{toy.TOY_CLS!r}]
custom_imports = dict(
    imports=['mmprockd', 'kill_switch'], allow_failed_imports=False)
custom_hooks = [dict(type='KillSwitchHook')]
train_cfg = dict(max_epochs={MAX_EPOCHS}, val_interval={MAX_EPOCHS})
default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))
""")
    return str(path)


def _moments(seed: int = 11):
    """``(kill_at, newest complete epoch after the kill)``, in order.

    Each moment is 1 to 3 epochs after the checkpoint the run resumes
    from; at least one is a kill while a checkpoint is written and one
    between its rename and ``last_checkpoint``.
    """
    rng = random.Random(seed)
    kinds = ['iter', 'write', 'pointer', 'remove']
    drawn = [rng.choice(kinds) for _ in range(KILLS)]
    for kind in ('write', 'pointer'):
        if kind not in drawn:
            drawn[rng.randrange(KILLS)] = kind
    moments, done = [], 0
    for kind in drawn:
        epoch = done + rng.randint(1, 3)
        if kind == 'iter':
            moments.append((f'iter:{epoch}:{rng.randint(1, 2)}', epoch - 1))
        elif kind == 'write':
            moments.append((f'write:{epoch}', epoch - 1))
        else:  # the new file is complete
            epoch = max(epoch, 2) if kind == 'remove' else epoch
            moments.append((f'{kind}:{epoch}', epoch))
        done = moments[-1][1]
    return moments


def _checkpoints(work_dir):
    """``{epoch: path}`` of the ``epoch_N.pth`` files; each must load and
    be the epoch its name says."""
    found = {}
    for path in glob.glob(osp.join(work_dir, 'epoch_*.pth')):
        epoch = int(re.fullmatch(r'epoch_(\d+)\.pth', osp.basename(path))[1])
        meta = torch.load(path, map_location='cpu')['meta']
        assert (meta['epoch'], meta['iter']) == (epoch, 2 * epoch), path
        found[epoch] = path
    return found


def _pointer(work_dir):
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(path):
        return None
    with open(path) as f:
        return f.read()


def _train(config, work_dir, cwd, data_root, kill_at='none:0'):
    return run_tool(
        [
            'train.py', config, '--work-dir', work_dir, '--resume',
            '--cfg-options'
        ] + toy.data_root_options(data_root),
        cwd=cwd,
        KILL_AT=kill_at,
        PYTHONPATH=os.pathsep.join(
            [HERE, REPO, os.environ.get('PYTHONPATH', '')]))


def _check_start(proc, done, work_dir):
    """The run started after epoch ``done``, from its checkpoint."""
    epochs = re.findall(r'Epoch\(train\)\s*\[(\d+)\]', proc.output)
    assert epochs and int(epochs[0]) == done + 1, (done, epochs[:3])
    if done == 0:
        assert 'resumed epoch' not in proc.output
    else:
        ckpt = osp.join(work_dir, f'epoch_{done}.pth')
        assert f'Load checkpoint from {ckpt}' in proc.output
        assert f'resumed epoch: {done}, iter: {2 * done}' in proc.output


def test_killed_ten_times_resumes_from_the_newest_complete_checkpoint(
        toy_data_root, tmp_path):
    config = _config(tmp_path)
    work_dir = str(tmp_path / 'work')
    moments = _moments()
    assert {m.split(':')[0] for m, _ in moments} >= {'write', 'pointer'}
    done = 0
    for kill_at, expected in moments:
        proc = _train(config, work_dir, str(tmp_path), toy_data_root, kill_at)
        assert proc.returncode == -signal.SIGKILL, (kill_at,
                                                    proc.output[-3000:])
        _check_start(proc, done, work_dir)
        kind, epoch = kill_at.split(':')[:2]
        found = _checkpoints(work_dir)
        assert max(found, default=0) == expected, (kill_at, sorted(found))
        assert len(found) <= 2  # max_keep_ckpts=1, and the new one
        tmp = glob.glob(osp.join(work_dir, '*.tmp*'))
        if kind == 'write':  # killed mid-write: half a file, not the name
            assert [osp.basename(p).split('.tmp')[0]
                    for p in tmp] == [f'epoch_{epoch}.pth']
        else:
            assert tmp == [], kill_at
        if kind == 'pointer':  # stale or absent: resume must not trust it
            assert _pointer(work_dir) == found.get(expected - 1)
        done = expected
    proc = _train(config, work_dir, str(tmp_path), toy_data_root)
    assert proc.returncode == 0, proc.output[-3000:]
    _check_start(proc, done, work_dir)
    last = osp.join(work_dir, f'epoch_{MAX_EPOCHS}.pth')
    assert _checkpoints(work_dir) == {MAX_EPOCHS: last}
    assert _pointer(work_dir) == last
    assert glob.glob(osp.join(work_dir, '*.tmp*')) == []


def _cfg(**default_hooks):
    return Config(dict(default_hooks=default_hooks))


def test_train_swaps_in_the_atomic_hook_keeping_its_settings():
    settings = dict(
        interval=2,
        by_epoch=False,
        max_keep_ckpts=3,
        save_best='auto',
        out_dir='/ckpts',
        filename_tmpl='snap_{}.pth')
    for name in ('CheckpointHook', 'mmengine.CheckpointHook'):
        cfg = _cfg(checkpoint=dict(type=name, **settings))
        train_tool.use_atomic_checkpoint_hook(cfg)
        assert cfg.default_hooks.checkpoint == dict(
            type='mmprockd.AtomicCheckpointHook', **settings)
    cfg = Config(dict(default_hooks=dict(logger=dict(type='LoggerHook'))))
    train_tool.use_atomic_checkpoint_hook(cfg)  # mmengine's default
    assert cfg.default_hooks.checkpoint == dict(
        type='mmprockd.AtomicCheckpointHook', interval=1)
    assert cfg.default_hooks.logger == dict(type='LoggerHook')
    for kept in (None, dict(type='MyCheckpointHook', interval=1)):
        cfg = _cfg(checkpoint=kept)
        train_tool.use_atomic_checkpoint_hook(cfg)
        assert cfg.default_hooks.checkpoint == kept


def _build(work_dir, data_root, *extra):
    args = train_tool.parse_args([
        toy.TOY_CLS, '--work-dir', work_dir, *extra, '--cfg-options',
        *toy.data_root_options(data_root)
    ])
    return train_tool.build_config(args)


def test_resume_auto_skips_a_stale_last_checkpoint(toy_data_root, tmp_path):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    # what a training checkpoint holds (tools/train.py checks it)
    torch.save(
        dict(meta=dict(epoch=1), state_dict={}, optimizer={}, message_hub={}),
        work_dir / 'epoch_1.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_2.pth'))
    cfg = _build(str(work_dir), toy_data_root, '--resume')
    assert cfg.resume is True
    assert cfg.load_from == str(work_dir / 'epoch_1.pth')
    assert cfg.default_hooks.checkpoint.type == 'mmprockd.AtomicCheckpointHook'


def test_resume_auto_in_a_fresh_work_dir_starts_from_scratch(
        toy_data_root, tmp_path):
    work_dir = tmp_path / 'work'
    cfg = _build(str(work_dir), toy_data_root, '--resume')
    assert (cfg.resume, cfg.load_from) == (False, None)
    work_dir.mkdir()
    (work_dir / 'epoch_1.pth.tmp99999999').write_bytes(b'half')
    cfg = _build(str(work_dir), toy_data_root, '--resume')
    assert (cfg.resume, cfg.load_from) == (False, None)


def test_resume_auto_with_no_complete_checkpoint_exits_listing_them(
        toy_data_root, tmp_path, monkeypatch):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'epoch_1.pth').write_bytes(b'truncated')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_2.pth'))
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    with pytest.raises(SystemExit) as info:
        train_tool.main([
            toy.TOY_CLS, '--work-dir',
            str(work_dir), '--resume', '--cfg-options',
            *toy.data_root_options(toy_data_root)
        ])
    message = str(info.value.code)
    assert message.startswith('train.py: error: --resume: no complete '
                              f'checkpoint of this run in [{str(work_dir)!r}]')
    assert f'{work_dir / "epoch_1.pth"}: not a complete checkpoint' in message
    assert (f'{work_dir / "epoch_2.pth"}: named by '
            f'{work_dir / "last_checkpoint"}, does not exist') in message
    assert sorted(os.listdir(work_dir)) == ['epoch_1.pth', 'last_checkpoint']


def test_killed_during_the_student_export_a_resume_writes_it(
        toy_data_root, tmp_path):
    """The last epoch's ``epoch_2.pth`` is complete, its student export
    half written when the kill comes: the resumed run, with nothing left
    to train, writes the export from that checkpoint and removes the
    half-written file."""
    config = tmp_path / 'toy_export.py'
    config.write_text(
        f"""_base_ = [{osp.join(toy.TOY_DIR, 'toy_distill.py')!r}]
custom_imports = dict(
    imports=['mmprockd', 'kill_switch'], allow_failed_imports=False)
custom_hooks = [
    dict(type='KillSwitchHook'),
    dict(type='mmprockd.StudentCheckpointHook', interval=1, by_epoch=True)
]
train_cfg = dict(max_epochs=2, val_interval=2)
""")
    work_dir = tmp_path / 'work'
    proc = _train(
        str(config), str(work_dir), str(tmp_path), toy_data_root, 'export:2')
    assert proc.returncode == -signal.SIGKILL, proc.output[-3000:]
    names = os.listdir(work_dir)
    assert 'epoch_2.pth' in names and 'student_epoch_2.pth' not in names
    assert [n.split('.tmp')[0] for n in names
            if '.tmp' in n] == ['student_epoch_2.pth']
    latest = work_dir / 'student_latest.pth'
    assert torch.load(latest)['meta']['iter'] == 2  # epoch 1's

    proc = _train(str(config), str(work_dir), str(tmp_path), toy_data_root)
    assert proc.returncode == 0, proc.output[-3000:]
    assert 'the export of the checkpoint resumed from' in proc.output
    assert not [n for n in os.listdir(work_dir) if '.tmp' in n]
    full = torch.load(work_dir / 'epoch_2.pth')['state_dict']
    for path in (work_dir / 'student_epoch_2.pth', latest):
        export = torch.load(path)
        assert (export['meta']['epoch'], export['meta']['iter']) == (2, 4)
        assert export['state_dict'].keys() == {
            k[len('student.'):]
            for k in full if k.startswith('student.')
        }
        assert all(
            torch.equal(v, full['student.' + k])
            for k, v in export['state_dict'].items())
    assert (work_dir / 'student_config.py').is_file()


def _losses(work_dir):
    """``{step: loss}`` logged by all the runs in ``work_dir``."""
    steps = {}
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'loss' in row:
                    assert row['step'] not in steps, (path, row['step'])
                    steps[row['step']] = row['loss']
    return steps


def _signal_config(tmp_path, epochs: int, options: str = '') -> str:
    """``toy_distill.py`` for ``epochs`` epochs, a validation after each,
    with the kill switch (nothing unless ``$KILL_AT`` says so)."""
    config = tmp_path / 'toy_signal.py'
    config.write_text(
        f"""_base_ = [{osp.join(toy.TOY_DIR, 'toy_distill.py')!r}]
custom_imports = dict(
    imports=['mmprockd', 'kill_switch'], allow_failed_imports=False)
custom_hooks = [dict(type='KillSwitchHook')]
train_cfg = dict(max_epochs={epochs}, val_interval=1)
{options}""")
    return str(config)


@pytest.fixture(scope='module')
def straight_run(toy_data_root, tmp_path_factory):
    """The signal tests' run without a stop: 3 epochs, a checkpoint each.
    The toy's learning rate is constant and nothing reads ``max_epochs``,
    so its first 2 epochs are those of a 2-epoch run. Returns its work
    dir."""
    tmp = tmp_path_factory.mktemp('straight')
    full = tmp / 'full'
    proc = _train(_signal_config(tmp, 3), str(full), str(tmp), toy_data_root)
    assert proc.returncode == 0, proc.output[-3000:]
    return full


def test_stopped_by_sigterm_and_sigint_mid_epoch_resumes_exactly(
        toy_data_root, tmp_path, straight_run):
    """``toy_distill.py`` (random augmentation in a worker, the
    DistillSampler's draws), 3 epochs of 2 steps: once straight, once
    stopped by SIGTERM while step 3 (epoch 2, batch 1) runs, resumed, and
    stopped again by SIGINT in step 6 (the last one), resumed. Each stop
    finishes its step, saves it and exits with 75; the run logs the same
    losses step by step as the straight one, and ends with the same
    weights."""
    from mmprockd.engine import PREEMPTED_EXIT
    config = _signal_config(tmp_path, 3)
    full, work = straight_run, tmp_path / 'work'
    proc = _train(config, str(work), str(tmp_path), toy_data_root, 'term:2:1')
    assert proc.returncode == PREEMPTED_EXIT == 75, proc.output[-3000:]
    assert 'Traceback' not in proc.output
    saved = work / 'preempt_iter_3.pth'
    assert (f'stopped by SIGTERM after iteration 3 (epoch 2, batch 1); '
            f'saved {saved}. Exiting with status 75') in proc.output
    meta = torch.load(saved)['meta']
    assert (meta['epoch'], meta['iter']) == (1, 3)
    assert _pointer(work) == str(saved)
    assert sorted(_checkpoints(work)) == [1]

    proc = _train(config, str(work), str(tmp_path), toy_data_root, 'int:3:2')
    assert proc.returncode == 75, proc.output[-3000:]
    assert 'Traceback' not in proc.output
    assert f'Load checkpoint from {saved}' in proc.output
    assert 'resumed in the middle of epoch 2' in proc.output
    assert 'stopped by SIGINT after iteration 6 (epoch 3, batch 2)' in \
        proc.output
    assert not saved.exists()  # epoch_2.pth superseded it
    assert (work / 'preempt_iter_6.pth').is_file()

    proc = _train(config, str(work), str(tmp_path), toy_data_root)
    assert proc.returncode == 0, proc.output[-3000:]
    assert not list(work.glob('preempt_iter_*.pth'))
    straight, resumed = _losses(str(full)), _losses(str(work))
    assert sorted(straight) == list(range(1, 7))
    assert resumed == straight  # exact, step by step
    weights = torch.load(full / 'epoch_3.pth')['state_dict']
    again = torch.load(work / 'epoch_3.pth')['state_dict']
    assert weights.keys() == again.keys()
    assert all(torch.equal(weights[k], again[k]) for k in weights)


def test_stopped_by_sigterm_during_validation_resumes_exactly(
        toy_data_root, tmp_path, straight_run):
    """2 epochs, a checkpoint every 2, validation after each: SIGTERM
    during the validation after epoch 1 stops it there with a checkpoint
    of the 2 steps trained, and the resumed run repeats the straight one's
    first 2 epochs."""
    config = _signal_config(
        tmp_path, 2, 'default_hooks = dict(checkpoint=dict(interval=2))\n')
    work = tmp_path / 'work'
    proc = _train(config, str(work), str(tmp_path), toy_data_root,
                  'termval:1:1')
    assert proc.returncode == 75, proc.output[-3000:]
    saved = work / 'preempt_iter_2.pth'
    assert (f'stopped by SIGTERM after batch 1 of the validation after '
            f'iteration 2 (left unfinished); saved {saved}') in proc.output
    meta = torch.load(saved)['meta']
    assert (meta['epoch'], meta['iter']) == (1, 2)
    assert _checkpoints(work) == {}

    proc = _train(config, str(work), str(tmp_path), toy_data_root)
    assert proc.returncode == 0, proc.output[-3000:]
    assert f'Load checkpoint from {saved}' in proc.output
    assert not saved.exists()  # epoch_2.pth superseded it
    resumed = _losses(str(work))
    assert sorted(resumed) == [1, 2, 3, 4]
    assert resumed == {
        s: v
        for s, v in _losses(str(straight_run)).items() if s <= 4
    }
    weights = torch.load(straight_run / 'epoch_2.pth')['state_dict']
    again = torch.load(work / 'epoch_2.pth')['state_dict']
    assert all(torch.equal(weights[k], again[k]) for k in weights)
