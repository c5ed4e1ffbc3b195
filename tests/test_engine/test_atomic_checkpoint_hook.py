"""``AtomicCheckpointHook``: what a save leaves on disk, a save that fails
half-way, and ``find_resumable_checkpoint`` with a stale or missing
``last_checkpoint``. Tiny real runners (a linear model, 8 samples, 2
iterations an epoch). The kill test is in
``tests/test_tools/test_train_kill_resume.py``.

Run: ``pytest tests/test_engine/test_atomic_checkpoint_hook.py``
"""
import hashlib
import os
import os.path as osp
import uuid
from collections import deque

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from mmprockd.engine import (AtomicCheckpointHook, AtomicLocalBackend,
                             DiskFullError, find_resumable_checkpoint,
                             is_complete_checkpoint, remove_stale_tmp_files,
                             student_config)
from mmprockd.utils.checkpoint_io import InputCheckError


class _Model(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((out - labels)**2).mean())
        return out


class _Data(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((2, ), float(i)), labels=torch.ones(1))


def _runner(work_dir,
            hook='mmprockd.AtomicCheckpointHook',
            epochs=1,
            resume=False,
            **hook_args):
    hook_args.setdefault('max_keep_ckpts', 1)
    hook_args.setdefault('interval', 1)
    return Runner(
        model=_Model(),
        work_dir=str(work_dir),
        experiment_name=f'atomic_{uuid.uuid4().hex}',
        train_dataloader=dict(
            dataset=_Data(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(checkpoint=dict(type=hook, **hook_args)),
        resume=resume,  # auto: from what last_checkpoint names
        log_level='WARNING')


def _hook(runner):
    return next(h for h in runner.hooks if isinstance(h, CheckpointHook))


def _ckpt_files(folder):
    """Checkpoints and temporary files, by name."""
    return sorted(
        n for n in os.listdir(folder) if n.endswith('.pth') or '.tmp' in n)


def _pointer(folder):
    with open(osp.join(folder, 'last_checkpoint')) as f:
        return f.read()


def _sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_max_keep_one_leaves_exactly_the_new_checkpoint(tmp_path):
    runner = _runner(tmp_path, epochs=3)
    runner.train()
    assert type(_hook(runner)) is AtomicCheckpointHook
    assert _ckpt_files(tmp_path) == ['epoch_3.pth']
    assert _pointer(tmp_path) == str(tmp_path / 'epoch_3.pth')
    ckpt = torch.load(tmp_path / 'epoch_3.pth', map_location='cpu')
    assert (ckpt['meta']['epoch'], ckpt['meta']['iter']) == (3, 6)
    # the files on disk when epoch_3.pth was complete: a run resumed from
    # it deletes epoch_2.pth, should a kill have come before the deletion
    assert ckpt['message_hub']['runtime_info']['keep_ckpt_ids'] == [2, 3]
    assert {'optimizer', 'state_dict'} <= set(ckpt)


def test_max_keep_two_and_no_limit(tmp_path):
    _runner(tmp_path / 'two', epochs=3, max_keep_ckpts=2).train()
    assert _ckpt_files(tmp_path / 'two') == ['epoch_2.pth', 'epoch_3.pth']
    _runner(tmp_path / 'all', epochs=3, max_keep_ckpts=-1).train()
    assert _ckpt_files(tmp_path /
                       'all') == ['epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth']


def test_a_resume_deletes_the_checkpoint_a_kill_left_behind(
        tmp_path, monkeypatch):
    with monkeypatch.context() as patch:  # as if killed before deleting
        patch.setattr(LocalBackend, 'remove', lambda self, path: None)
        _runner(tmp_path, epochs=2).train()
    assert _ckpt_files(tmp_path) == ['epoch_1.pth', 'epoch_2.pth']
    assert _pointer(tmp_path) == str(tmp_path / 'epoch_2.pth')
    _runner(tmp_path, epochs=3, resume=True).train()
    assert _ckpt_files(tmp_path) == ['epoch_3.pth']
    ckpt = torch.load(tmp_path / 'epoch_3.pth', map_location='cpu')
    assert ckpt['message_hub']['runtime_info']['keep_ckpt_ids'] == [2, 3]


def _half_then_fail(calls, sizes=None):
    """A ``LocalBackend.put`` that writes half the bytes, then fails like a
    full disk; the sizes it was asked to write go to ``sizes``."""

    def put(self, obj, filepath):
        calls.append(str(filepath))
        if sizes is not None:
            sizes.append(len(obj))
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise OSError(28, 'No space left on device')

    return put


def test_a_save_failing_mid_write_keeps_the_previous_checkpoint(
        tmp_path, monkeypatch):
    runner = _runner(tmp_path)
    runner.train()  # epoch_1.pth
    hook = _hook(runner)
    before = _sha(tmp_path / 'epoch_1.pth')
    calls, sizes = [], []
    monkeypatch.setattr(LocalBackend, 'put', _half_then_fail(calls, sizes))
    with pytest.raises(DiskFullError) as info:
        hook.after_train_epoch(runner)  # saves epoch 2
    # the file, the bytes and the checkpoint to resume from
    assert str(info.value).startswith(
        f'no space left on the device to write {tmp_path / "epoch_2.pth"}: '
        f'{sizes[0]} bytes needed, ')
    assert (f'; the last complete checkpoint is {tmp_path / "epoch_1.pth"}. '
            'Free some space') in str(info.value)
    assert info.value.errno == 28
    # the half-written bytes went to a temporary file, removed since
    assert calls == [f'{tmp_path / "epoch_2.pth"}.tmp{os.getpid()}']
    assert _ckpt_files(tmp_path) == ['epoch_1.pth']
    assert _sha(tmp_path / 'epoch_1.pth') == before
    assert _pointer(tmp_path) == str(tmp_path / 'epoch_1.pth')
    # the bookkeeping is as before the save
    assert hook.keep_ckpt_ids == deque([1])
    assert hook.last_ckpt == str(tmp_path / 'epoch_1.pth')
    assert runner.message_hub.get_info('keep_ckpt_ids') == [1]
    assert runner.message_hub.get_info('last_ckpt') == str(tmp_path /
                                                           'epoch_1.pth')
    monkeypatch.undo()
    hook.after_train_epoch(runner)  # the disk has room again
    assert _ckpt_files(tmp_path) == ['epoch_2.pth']
    assert _pointer(tmp_path) == str(tmp_path / 'epoch_2.pth')


def test_mmengines_hook_loses_everything_in_the_same_failure(
        tmp_path, monkeypatch):
    """The failure above with mmengine's own hook."""
    runner = _runner(tmp_path, hook='CheckpointHook')
    runner.train()
    monkeypatch.setattr(LocalBackend, 'put', _half_then_fail([]))
    with pytest.raises(OSError):
        _hook(runner).after_train_epoch(runner)
    assert _ckpt_files(tmp_path) == ['epoch_2.pth']
    assert not is_complete_checkpoint(str(tmp_path / 'epoch_2.pth'))
    assert _pointer(tmp_path) == str(tmp_path / 'epoch_1.pth')  # deleted


def test_the_previous_best_is_deleted_only_after_the_new_best(
        tmp_path, monkeypatch):
    runner = _runner(tmp_path, save_best='acc')
    runner.train()
    hook = _hook(runner)
    hook.after_val_epoch(runner, dict(acc=0.5))
    assert 'best_acc_epoch_1.pth' in _ckpt_files(tmp_path)
    runner.train_loop._epoch = 2
    with monkeypatch.context() as patch:
        patch.setattr(LocalBackend, 'put', _half_then_fail([]))
        with pytest.raises(OSError):
            hook.after_val_epoch(runner, dict(acc=0.7))
    assert _ckpt_files(tmp_path) == ['best_acc_epoch_1.pth', 'epoch_1.pth']
    hook.after_val_epoch(runner, dict(acc=0.8))
    # the best of epoch 2, and epoch_2.pth saved again with its score
    assert _ckpt_files(tmp_path) == ['best_acc_epoch_2.pth', 'epoch_2.pth']
    ckpt = torch.load(tmp_path / 'best_acc_epoch_2.pth', map_location='cpu')
    assert ckpt['meta']['epoch'] == 2


def test_atomic_backend_put_text_and_failure(tmp_path, monkeypatch):
    path = str(tmp_path / 'last_checkpoint')
    AtomicLocalBackend().put_text('a', path)
    AtomicLocalBackend().put_text('b', path)
    assert os.listdir(tmp_path) == ['last_checkpoint']

    def fail(src, dst):
        raise OSError('rename failed')

    monkeypatch.setattr(os, 'replace', fail)
    with pytest.raises(OSError, match='rename failed'):
        AtomicLocalBackend().put_text('c', path)
    assert os.listdir(tmp_path) == ['last_checkpoint']
    assert _pointer(tmp_path) == 'b'


def test_stale_tmp_files_of_dead_processes_are_removed(tmp_path):
    dead = 2**22 + 1  # above Linux's largest pid: no such process
    # the student export's files and the mkstemp files of its earlier
    # writer are removed too
    stale = [
        f'epoch_3.pth.tmp{dead}', f'last_checkpoint.tmp{dead}',
        f'student_config.py.tmp{dead}', f'student_epoch_3.pth.tmp{dead}',
        'tmpk2_9xq0a.tmp'
    ]
    kept = [
        f'epoch_4.pth.tmp{os.getpid()}', f'notes.txt.tmp{dead}',
        'tmp_notes.tmp'
    ]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b'half')
    assert remove_stale_tmp_files(str(tmp_path)) == sorted(
        str(tmp_path / name) for name in stale)
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


def _save(path, epoch, mtime, run_id=None):
    """A checkpoint of ``epoch`` (2 iterations an epoch) of run ``run_id``,
    modified at ``mtime`` ns."""
    meta = dict(epoch=epoch, iter=2 * epoch)
    if run_id is not None:
        meta['run_id'] = run_id
    torch.save(dict(meta=meta), path)
    os.utime(path, ns=(mtime, mtime))


def _point(folder, path):
    (folder / 'last_checkpoint').write_text(str(path))


def _found(folder, capsys=None, **kwargs):
    """``find_resumable_checkpoint`` and the WARNING lines it logged."""
    found = find_resumable_checkpoint(str(folder), logger=None, **kwargs)
    out = capsys.readouterr().out if capsys else ''
    return found, out


def test_resume_takes_the_pointer_when_it_is_the_newest(tmp_path, capsys):
    _save(tmp_path / 'epoch_1.pth', 1, 10**9)
    _save(tmp_path / 'epoch_2.pth', 2, 2 * 10**9)
    _point(tmp_path, tmp_path / 'epoch_2.pth')
    found, out = _found(tmp_path, capsys)
    assert found == str(tmp_path / 'epoch_2.pth')
    assert out == ''  # the pointer's file: nothing to warn about


def test_resume_when_the_pointer_names_a_missing_file(tmp_path, capsys):
    _save(tmp_path / 'epoch_1.pth', 1, 10**9)
    _point(tmp_path, tmp_path / 'epoch_2.pth')  # deleted by mmengine
    found, out = _found(tmp_path, capsys)
    assert found == str(tmp_path / 'epoch_1.pth')
    assert f'{tmp_path / "epoch_2.pth"}: named by' in out
    assert 'does not exist' in out
    assert f'resuming from {found} (iteration 2' in out


def test_resume_when_a_newer_file_was_renamed_before_the_pointer(
        tmp_path, capsys):
    _save(tmp_path / 'epoch_1.pth', 1, 10**9)
    _save(tmp_path / 'epoch_2.pth', 2, 2 * 10**9)
    _point(tmp_path, tmp_path / 'epoch_1.pth')  # killed before the update
    found, out = _found(tmp_path, capsys)
    assert found == str(tmp_path / 'epoch_2.pth')
    assert (f'resuming from {found} (iteration 4, the most of this run\'s '
            'complete checkpoints)') in out
    assert f'names {tmp_path / "epoch_1.pth"}' in out


def test_resume_chooses_by_iterations_not_by_modification_time(
        tmp_path, capsys):
    """A copy that reset the mtimes: epoch_1 looks newer than epoch_2."""
    _save(tmp_path / 'epoch_2.pth', 2, 10**9)
    _save(tmp_path / 'epoch_1.pth', 1, 5 * 10**9)
    _point(tmp_path, tmp_path / 'epoch_2.pth')
    assert _found(tmp_path)[0] == str(tmp_path / 'epoch_2.pth')
    _point(tmp_path, tmp_path / 'epoch_1.pth')
    found, out = _found(tmp_path, capsys)
    assert found == str(tmp_path / 'epoch_2.pth')
    assert f'resuming from {found}' in out


def test_resume_takes_the_pointers_file_under_another_name(tmp_path):
    _save(tmp_path / 'epoch_1.pth', 1, 10**9)
    _save(tmp_path / 'snapshot.pth', 2, 10**9)
    _point(tmp_path, tmp_path / 'snapshot.pth')
    assert _found(tmp_path)[0] == str(tmp_path / 'snapshot.pth')


def test_resume_refuses_a_pointer_into_another_work_dir(tmp_path, capsys):
    """A copy of a work dir whose original run went on: its pointer names
    the original's newer checkpoint."""
    original, copy = tmp_path / 'original', tmp_path / 'copy'
    original.mkdir()
    copy.mkdir()
    for folder in (original, copy):
        _save(folder / 'epoch_2.pth', 2, 2 * 10**9, run_id='a')
    _save(original / 'epoch_3.pth', 3, 3 * 10**9, run_id='a')
    _point(copy, original / 'epoch_3.pth')
    found, out = _found(copy, capsys)
    assert found == str(copy / 'epoch_2.pth')
    assert (f'passing over {original / "epoch_3.pth"}: named by '
            f'{copy / "last_checkpoint"}, but outside this run') in out
    assert f'pass --resume {original / "epoch_3.pth"}' in out


def test_resume_skips_a_truncated_checkpoint(tmp_path, capsys):
    _save(tmp_path / 'iter_100.pth', 1, 10**9)
    _save(tmp_path / 'iter_200.pth', 2, 2 * 10**9)
    data = (tmp_path / 'iter_200.pth').read_bytes()
    (tmp_path / 'iter_200.pth').write_bytes(data[:len(data) // 2])
    assert not is_complete_checkpoint(str(tmp_path / 'iter_200.pth'))
    _point(tmp_path, tmp_path / 'iter_200.pth')
    found, out = _found(tmp_path, capsys)
    assert found == str(tmp_path / 'iter_100.pth')
    assert (f'passing over {tmp_path / "iter_200.pth"}: not a complete '
            'checkpoint') in out


def test_resume_ignores_the_files_of_an_earlier_longer_run(tmp_path, capsys):
    for epoch in (5, 6):  # an earlier run of 6 epochs
        _save(tmp_path / f'epoch_{epoch}.pth', epoch, 10**9, run_id='old')
    _save(tmp_path / 'epoch_1.pth', 1, 10**9, run_id='new')  # this run
    _save(tmp_path / 'epoch_2.pth', 2, 10**9, run_id='new')
    _point(tmp_path, tmp_path / 'epoch_1.pth')  # killed before the update
    found, out = _found(tmp_path, capsys)
    assert found == str(tmp_path / 'epoch_2.pth')
    assert (f'passing over {tmp_path / "epoch_6.pth"}: written by another '
            f'run (run id old, {tmp_path / "epoch_1.pth"} by new)') in out


def test_resume_looks_in_out_dir_with_the_hooks_template(tmp_path):
    work_dir = tmp_path / 'work' / 'exp'
    ckpt_dir = tmp_path / 'ckpts' / 'exp'  # out_dir/<work dir name>
    ckpt_dir.mkdir(parents=True)
    work_dir.mkdir(parents=True)
    _save(ckpt_dir / 'snap_3.pth', 3, 3 * 10**9)
    _save(ckpt_dir / 'epoch_9.pth', 9, 9 * 10**9)  # not this template
    found = find_resumable_checkpoint(
        str(work_dir),
        out_dir=str(tmp_path / 'ckpts'),
        filename_tmpl='snap_{}.pth')
    assert found == str(ckpt_dir / 'snap_3.pth')


def test_no_checkpoint_or_only_a_tmp_file_is_nothing_to_resume(tmp_path):
    assert find_resumable_checkpoint(str(tmp_path)) is None
    (tmp_path / 'epoch_1.pth.tmp12').write_bytes(b'half')
    assert find_resumable_checkpoint(str(tmp_path)) is None


def test_only_truncated_checkpoints_is_an_error_listing_them(tmp_path):
    _save(tmp_path / 'epoch_1.pth', 1, 10**9)
    (tmp_path / 'epoch_2.pth').write_bytes(b'trunc')
    data = (tmp_path / 'epoch_1.pth').read_bytes()
    (tmp_path / 'epoch_1.pth').write_bytes(data[:-20])
    _point(tmp_path, tmp_path / 'epoch_3.pth')
    with pytest.raises(InputCheckError) as info:
        find_resumable_checkpoint(str(tmp_path), logger=None)
    message = str(info.value)
    assert message.startswith('--resume: no complete checkpoint of this run')
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        assert (f'{tmp_path / name}: not a complete checkpoint') in message
    assert f'{tmp_path / "epoch_3.pth"}: named by' in message
    assert 'run without --resume to start from scratch' in message


def test_checkpoints_hold_the_run_id_across_a_resume(tmp_path):
    runner = _runner(tmp_path, epochs=1)
    runner.train()
    first = torch.load(tmp_path / 'epoch_1.pth')['meta']['run_id']
    assert len(first) == 32
    _runner(tmp_path, epochs=2, resume=True).train()
    assert torch.load(tmp_path / 'epoch_2.pth')['meta']['run_id'] == first
    _runner(tmp_path / 'other', epochs=1).train()
    other = torch.load(tmp_path / 'other' / 'epoch_1.pth')['meta']['run_id']
    assert other != first


def test_the_student_config_has_mmengines_hook_again():
    """A plain library's tools/test.py builds the exported student config
    without mmprockd."""
    cfg = Config(
        dict(
            model=dict(
                type='mmprockd.ProtoDistiller', student=dict(type='Linear')),
            default_hooks=dict(
                checkpoint=dict(
                    type='mmprockd.AtomicCheckpointHook', interval=2))))
    assert student_config(cfg).default_hooks.checkpoint == dict(
        type='CheckpointHook', interval=2)


def test_a_full_disk_at_the_first_checkpoint_says_there_is_none(
        tmp_path, monkeypatch):
    monkeypatch.setattr(LocalBackend, 'put', _half_then_fail([]))
    with pytest.raises(DiskFullError) as info:
        _runner(tmp_path).train()
    assert f'to write {tmp_path / "epoch_1.pth"}: ' in str(info.value)
    assert 'the last complete checkpoint is none yet' in str(info.value)
    assert _ckpt_files(tmp_path) == []
