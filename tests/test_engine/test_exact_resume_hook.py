"""``ExactResumeHook``'s parts: the RNG state round trip through a
``weights_only`` load, the DistillSampler's state, and dataloader workers
seeded by epoch (fresh augmentation each epoch with non-persistent
workers, where mmengine's ``worker_init_fn`` repeats the first epoch's).

The end-to-end check (a resumed training run logs the same losses) is
``tests/test_tools/test_exact_resume.py``.
"""
import pickle
import random
from functools import partial

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
from torch.utils.data import DataLoader, Dataset

from mmprockd.engine import (EpochWorkerSeed, get_rng_state, set_rng_state,
                             worker_seed)
from mmprockd.models.distillers.distill_sampler import DistillSampler


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
