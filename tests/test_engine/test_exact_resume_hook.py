"""``ExactResumeHook``'s parts: the RNG state round trip through a
``weights_only`` load, the DistillSampler's state, the output caches'
contents, and dataloader workers seeded by epoch (fresh augmentation each
epoch with non-persistent workers, where mmengine's ``worker_init_fn``
repeats the first epoch's).

The end-to-end check (a resumed training run logs the same losses) is
``tests/test_tools/test_exact_resume.py``.
"""
import pickle
import random
from functools import partial
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
from mmengine.logging import MMLogger
from torch.utils.data import DataLoader, Dataset

from mmprockd.engine import (EpochWorkerSeed, ExactResumeHook, get_rng_state,
                             set_rng_state, worker_seed)
from mmprockd.models.distillers.distill_sampler import DistillSampler
from mmprockd.models.distillers.teacher_cache import TeacherFeatureCache


def _draws():
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(),
            [random.random() for _ in range(3)])


def test_rng_state_round_trip_survives_a_weights_only_load(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    _draws()
    np.random.randn()  # numpy's cached Gaussian is part of its state
    state = get_rng_state()
    expected = _draws()
    path = tmp_path / 'state.pth'
    torch.save(dict(exact_resume=dict(rng=state)), path)
    loaded = torch.load(path, weights_only=True)['exact_resume']['rng']
    torch.manual_seed(2)
    np.random.seed(2)
    random.seed(2)
    set_rng_state(loaded)
    assert _draws() == expected


def test_distill_sampler_continues_after_load_state_dict():
    np.random.seed(0)
    sampler = DistillSampler(0.5)
    for _ in range(3):
        sampler.indices(8)
    state = sampler.state_dict()
    expected = [sampler.indices(8).tolist() for _ in range(4)]
    np.random.seed(123)  # a resumed run would draw another seed
    again = DistillSampler(0.5)
    again.load_state_dict(state)
    assert [again.indices(8).tolist() for _ in range(4)] == expected
    assert (again.used, again.seen) == (sampler.used, sampler.seen)


class _Cached(torch.nn.Module):
    """A model with a distiller's two output caches (plain attributes)."""

    def __init__(self, dtype='fp16'):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        self.teacher_cache = TeacherFeatureCache(max_items=3, dtype=dtype)
        self.branch_cache = TeacherFeatureCache(max_items=4, dtype='fp32')


def _resume(hook, model, checkpoint, iteration=8):
    """What a resumed run does with ``hook`` up to its first step."""
    runner = SimpleNamespace(
        model=model, iter=iteration, seed=0, train_loop=SimpleNamespace())
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train(runner)
    hook.before_train_epoch(runner)


def test_output_caches_resume_with_their_contents_order_and_counters(
        tmp_path, capsys):
    MMLogger.get_instance('exact_resume_caches_test')  # logs to capsys
    model = _Cached()
    # two images of a batch of three (views of it), two levels each
    batch = [torch.arange(24.).view(3, 2, 2, 2), torch.ones(3, 1, 4)]
    model.teacher_cache.put([('a.jpg', True), ('b.jpg', False)], batch)
    model.teacher_cache.put(
        ['c'], [torch.full((1, 2, 2, 2), 1 / 3),
                torch.zeros(1, 1, 4)])
    model.teacher_cache.get_each([('a.jpg', True), 'x'], 'cpu')
    # LRU order now: b.jpg, c, a.jpg; 1 hit, 1 miss
    model.branch_cache.put(['p'], [torch.tensor([[0.5, -0.5]])])
    checkpoint = dict(meta=dict(iter=8))
    ExactResumeHook().before_save_checkpoint(
        SimpleNamespace(model=model), checkpoint)
    saved = checkpoint['exact_resume']['feature_caches']['teacher_cache']
    # one flat fp16 tensor of the stored maps: 3 x (8 + 4) values, not the
    # batch each map is a view of
    assert saved['data'].shape == (36, ) and saved['data'].dtype == \
        torch.float16
    assert saved['shapes'] == [((2, 2, 2), (1, 4))] * 3
    path = tmp_path / 'iter_8.pth'
    torch.save(checkpoint, path)
    loaded = torch.load(path, weights_only=True)

    again = _Cached()
    again.teacher_cache.put(['stale'], [torch.zeros(1, 1), torch.zeros(1, 1)])
    _resume(ExactResumeHook(), again, loaded)
    out = capsys.readouterr().out
    assert 'teacher_cache restored (3 samples)' in out
    assert 'branch_cache restored (1 samples)' in out
    cache = again.teacher_cache
    assert list(cache._store) == [('b.jpg', False), 'c', ('a.jpg', True)]
    for key, maps in model.teacher_cache._store.items():
        assert all(
            torch.equal(m, n) and n.dtype == torch.float16
            for m, n in zip(maps, cache._store[key]))
    assert cache._store['c'][0][0, 0, 0].item() == \
        torch.tensor(1 / 3).half().item()
    assert cache._store[('b.jpg', False)][0].flatten().tolist() == \
        [float(v) for v in range(8, 16)]
    assert (cache.hits, cache.misses) == (1, 1)
    assert again.branch_cache.get(['p'], 'cpu')[0].tolist() == [[0.5, -0.5]]
    # the LRU order goes on: the next sample evicts b.jpg, as it would have
    cache.put(['d'], [torch.zeros(1, 1), torch.zeros(1, 1)])
    assert list(cache._store) == ['c', ('a.jpg', True), 'd']


def test_a_checkpoint_without_the_caches_resumes_with_empty_ones(capsys):
    MMLogger.get_instance('exact_resume_no_caches_test')
    checkpoint = dict(meta=dict(iter=8))
    ExactResumeHook(save_caches=False).before_save_checkpoint(
        SimpleNamespace(model=_Cached()), checkpoint)
    # what a run saved before the caches were kept looks the same
    assert 'feature_caches' not in checkpoint['exact_resume']
    model = _Cached()
    model.teacher_cache.put(['stale'], [torch.zeros(1, 1)])
    _resume(ExactResumeHook(), model, checkpoint)
    out = capsys.readouterr().out
    assert len(model.teacher_cache) == 0 and len(model.branch_cache) == 0
    for name in ('teacher_cache', 'branch_cache'):
        assert f'the checkpoint has no contents of {name} (saved without ' \
            'them): it starts empty' in out
    assert 'random state restored (iter 8)' in out


def test_caches_saved_in_another_dtype_are_not_restored(capsys):
    MMLogger.get_instance('exact_resume_caches_dtype_test')
    model = _Cached(dtype='fp32')
    model.teacher_cache.put(['a'], [torch.ones(1, 2)])
    checkpoint = dict(meta=dict(iter=4))
    ExactResumeHook().before_save_checkpoint(
        SimpleNamespace(model=model), checkpoint)
    again = _Cached(dtype='fp16')
    _resume(ExactResumeHook(), again, checkpoint, iteration=4)
    assert len(again.teacher_cache) == 0
    assert ('teacher_cache not restored, it starts empty: '
            'TeacherFeatureCache: the saved contents are fp32, this cache '
            "stores fp16; set its dtype='fp32' to take them") in \
        capsys.readouterr().out


class _Draws(Dataset):
    """Each item is a numpy draw, as a random augmentation would make."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return float(np.random.rand()) + float(torch.rand(()))


def _epochs(init_fn, sampler, epochs=(0, 1, 0)):
    loader = DataLoader(
        _Draws(),
        batch_size=2,
        sampler=sampler,
        num_workers=1,
        persistent_workers=False,
        worker_init_fn=init_fn)
    out = []
    for epoch in epochs:
        sampler.set_epoch(epoch)
        out.append([x for batch in loader for x in batch.tolist()])
    return out


def test_workers_draw_fresh_augmentation_each_epoch():
    sampler = DefaultSampler(_Draws(), shuffle=False)
    first, second, first_again = _epochs(
        EpochWorkerSeed(0, 0, sampler), sampler)
    assert first != second  # fresh each epoch
    assert first == first_again  # a function of the epoch: resumable
    # mmengine's worker_init_fn: the same draws every epoch
    plain = partial(mmengine_worker_init_fn, num_workers=1, rank=0, seed=0)
    first, second, _ = _epochs(plain, sampler)
    assert first == second


def test_worker_seeds_differ_by_epoch_rank_and_worker():
    seeds = {
        worker_seed(0, rank, epoch, worker)
        for rank in range(4)
        for epoch in range(4)
        for worker in range(4)
    }
    assert len(seeds) == 64
    assert all(0 <= s < 2**64 for s in seeds)


def test_worker_seed_keeps_the_epoch_when_pickled_for_spawn():
    sampler = DefaultSampler(_Draws(), shuffle=False)
    sampler.set_epoch(3)
    fn = pickle.loads(pickle.dumps(EpochWorkerSeed(5, 1, sampler)))
    assert fn.sampler is None and fn.current_epoch() == 3
    fn(0)
    drawn = np.random.rand()
    np.random.seed(worker_seed(5, 1, 3, 0) % 2**32)
    assert np.random.rand() == drawn
