"""``tools/train.py``: a real toy run, resuming it, and the input checks
that must stop a run before any work.

Run: ``pytest tests/test_tools/test_train_tool.py``
"""
import glob
import json
import os.path as osp
import re

import pytest
import torch
from tool_runner import REPO, load_module, run_tool, toy

from mmprockd.utils.checkpoint_io import InputCheckError

train_tool = load_module(osp.join(REPO, 'tools', 'train.py'), 'train_tool')


def _val_accuracies(work_dir: str) -> list:
    """accuracy/top1 of each validation, from the run's scalars.json."""
    found = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(found) == 1, found
    with open(found[0]) as f:
        rows = [json.loads(line) for line in f]
    return [r['accuracy/top1'] for r in rows if 'accuracy/top1' in r]


def test_train_writes_full_checkpoints(toy_run):
    for epoch in (1, 2):
        path = osp.join(toy_run.work_dir, f'epoch_{epoch}.pth')
        # default weights_only=True: loads thanks to `import mmprockd`
        ckpt = torch.load(path, map_location='cpu')
        assert {'state_dict', 'meta', 'message_hub'} <= set(ckpt)
        assert ckpt['meta']['epoch'] == epoch
        assert 'backbone.features.0.weight' in ckpt['state_dict']
    # the toy classes are separable: the model learns them
    accuracies = _val_accuracies(toy_run.work_dir)
    assert len(accuracies) == 2
    assert accuracies[-1] >= 87.5


def test_resume_continues_from_checkpoint(toy_run, tmp_path):
    work_dir = str(tmp_path / 'resumed')
    ckpt = osp.join(toy_run.work_dir, 'epoch_1.pth')
    proc = run_tool(
        [
            'train.py', toy.TOY_CLS, '--work-dir', work_dir, '--resume', ckpt,
            '--cfg-options'
        ] + toy.data_root_options(toy_run.data_root),
        cwd=str(tmp_path))
    assert proc.returncode == 0, proc.output[-3000:]
    assert 'resumed epoch: 1' in proc.output
    epochs = re.findall(r'Epoch\(train\)\s*\[(\d+)\]', proc.output)
    assert epochs and set(epochs) == {'2'}, epochs
    assert not osp.exists(osp.join(work_dir, 'epoch_1.pth'))
    ckpt2 = torch.load(osp.join(work_dir, 'epoch_2.pth'), map_location='cpu')
    assert ckpt2['meta']['epoch'] == 2
    assert ckpt2['meta']['iter'] == 4  # 2 iterations an epoch, 2 epochs


@pytest.fixture
def text_file(tmp_path) -> str:
    path = tmp_path / 'notes.pth'
    path.write_text('hello, I am not a checkpoint\n')
    return str(path)


def test_bad_input_exit_status_and_stderr(toy_data_root, text_file, tmp_path):
    """A bad input through the command line: non-zero exit, the message on
    stderr, nothing trained or written (the messages of every bad input:
    ``test_bad_inputs.py``)."""
    work_dir = str(tmp_path / 'work')
    proc = run_tool(
        [
            'train.py', toy.TOY_CLS, '--work-dir', work_dir, '--resume',
            text_file, '--cfg-options'
        ] + toy.data_root_options(toy_data_root),
        cwd=str(tmp_path))
    assert proc.returncode == 1
    assert (f'train.py: error: --resume: {text_file} is not a '
            'PyTorch/mmengine checkpoint') in proc.stderr
    assert 'Epoch(train)' not in proc.output
    assert not osp.exists(work_dir)
    written = glob.glob(str(tmp_path / '**' / '*.pth'), recursive=True)
    assert written == [text_file]


def test_missing_config_suggests_shipped_configs(monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_info:
        train_tool.main(['configs/prockd_retinanet_cocoo.py'])
    message = str(exit_info.value.code)
    assert "'configs/prockd_retinanet_cocoo.py' does not exist" in message
    assert 'closest shipped configs' in message


def _build(args, monkeypatch, tmp_path, root, options=()):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    return train_tool.build_config(
        train_tool.parse_args([toy.TOY_CLS, *args, '--cfg-options'] +
                              toy.data_root_options(root) + list(options)))


def test_flags_set_the_config(monkeypatch, tmp_path, toy_data_root):
    cfg = _build([], monkeypatch, tmp_path, toy_data_root)
    assert cfg.work_dir == osp.join('./work_dirs', 'toy_cls')
    assert cfg.launcher == 'none' and not cfg.resume

    cfg = _build(['--amp', '--resume'], monkeypatch, tmp_path, toy_data_root)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    # nothing to resume in the new work dir: trains from scratch
    assert cfg.resume is False and cfg.load_from is None
    assert cfg.default_hooks.checkpoint == dict(
        type='mmprockd.AtomicCheckpointHook', interval=1)

    # auto_scale_lr is a Runner argument: a valid option key though absent
    cfg = _build(
        ['--auto-scale-lr'], monkeypatch, tmp_path, toy_data_root,
        ['auto_scale_lr.base_batch_size=8', 'auto_scale_lr.enable=False'])
    assert cfg.auto_scale_lr.enable is True
    assert cfg.auto_scale_lr.base_batch_size == 8


def test_auto_scale_lr_needs_base_batch_size(monkeypatch, tmp_path,
                                             toy_data_root):
    with pytest.raises(InputCheckError, match='base_batch_size'):
        _build(['--auto-scale-lr'], monkeypatch, tmp_path, toy_data_root)


def test_finite_checkpoint_hook_is_added_once(monkeypatch, tmp_path,
                                              toy_data_root):
    cfg = _build([], monkeypatch, tmp_path, toy_data_root)
    assert cfg.custom_hooks == [
        dict(type='mmprockd.FiniteCheckpointHook'),
        dict(type='mmprockd.ConfigFingerprintHook'),
        dict(type='mmprockd.ExactResumeHook'),
        dict(type='mmprockd.PreemptionHook')
    ]
    train_tool.add_finite_checkpoint_hook(cfg)
    train_tool.add_fingerprint_hook(cfg)
    train_tool.add_exact_resume_hook(cfg)
    train_tool.add_preemption_hook(cfg)
    assert len(cfg.custom_hooks) == 4
    cfg.custom_hooks = [dict(type='FiniteCheckpointHook')]
    train_tool.add_finite_checkpoint_hook(cfg)
    assert cfg.custom_hooks == [dict(type='FiniteCheckpointHook')]


def test_a_diverged_run_writes_no_checkpoint(toy_data_root, tmp_path):
    """An infinite learning rate makes the weights NaN at the first step:
    the run stops at the first save, and no checkpoint is written."""
    work_dir = tmp_path / 'work'
    proc = run_tool(
        [
            'train.py', toy.TOY_CLS, '--work-dir',
            str(work_dir), '--cfg-options', 'optim_wrapper.optimizer.lr=inf'
        ] + toy.data_root_options(toy_data_root),
        cwd=str(tmp_path))
    assert proc.returncode != 0, proc.output[-3000:]
    assert ('RuntimeError: refusing to save the checkpoint of epoch 1, '
            f'iteration 2 in {work_dir}') in proc.stderr, proc.output[-3000:]
    assert 'are not finite (NaN or inf)' in proc.stderr
    assert not glob.glob(str(work_dir / '**' / '*.pth'), recursive=True)
    assert not osp.exists(work_dir / 'last_checkpoint')
