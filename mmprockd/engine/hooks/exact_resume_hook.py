"""Make a resumed run continue exactly as the uninterrupted one would.

mmengine restores the weights, the optimizer, the schedulers and the
message hub at resume, but four things start over:

1. the global RNGs of the main process (torch, CUDA, numpy, ``random``):
   reseeded with ``randomness.seed`` at build, so after a resume they
   repeat the draws of the first epoch instead of continuing;
2. the dataloader workers: mmengine's ``worker_init_fn`` seeds each worker
   with ``num_workers * rank + worker_id + seed``, which ignores the epoch,
   so with non-persistent workers every epoch repeats the first epoch's
   augmentation (and a resumed run cannot tell);
3. state kept by the model, here :class:`DistillSampler`: its seed is drawn
   from the global RNG at the first step and it counts its draws, neither
   of which is in the state dict;
4. the model's output caches (:class:`TeacherFeatureCache`: the distiller's
   ``teacher_cache`` and ``branch_cache``, a ``CachedFrozenBackbone``'s
   ``cache``): a resumed run that starts with them empty computes again,
   on the whole batch, what the uninterrupted run took from them or
   computed on the images they lacked, which differs in the last bits; and
   on a full hit of ``branch_cache`` the branch does not run, so its
   losses are not logged at that step.

:class:`ExactResumeHook` saves (1), (3) and (4) in every checkpoint, under
the top-level key ``'exact_resume'`` (tensors, strings, numbers and tuples
only, so a ``weights_only`` load reads it), and puts them back when the run
resumes;
it gives the training dataloader an epoch-aware worker seed
(:class:`EpochWorkerSeed`) for (2). ``tools/train.py`` adds it to every run.
On the CPU a resumed run then logs the same losses, step by step, as the
uninterrupted one (``tests/test_tools/test_exact_resume.py``); what GPUs
can and cannot reproduce is in docs/method.md ("Exact resume").
"""
import logging
import random
import warnings
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmprockd.registry import HOOKS
from ..runner_model import unwrapped_model

KEY = 'exact_resume'
CACHES = 'feature_caches'


def _hash_seed(kind: int, *numbers: int) -> int:
    """A 64-bit seed hashed from non-negative ints by
    ``np.random.SeedSequence`` (``kind`` keeps the uses apart)."""
    entropy = [int(n) % 2**63 for n in numbers]
    words = np.random.SeedSequence(
        entropy, spawn_key=(kind, )).generate_state(2, np.uint32)
    return int(words[0]) | (int(words[1]) << 32)


def worker_seed(seed: int, rank: int, epoch: int, worker_id: int) -> int:
    """The seed of one dataloader worker in one epoch: a hash of the four
    numbers, so no two (rank, epoch, worker) share a stream; mmengine's
    ``num_workers * rank + worker_id + seed`` repeats every epoch."""
    return _hash_seed(0, seed, rank, epoch, worker_id)


class EpochWorkerSeed:
    """A dataloader ``worker_init_fn`` that seeds numpy, ``random`` and
    torch in each worker from (seed, rank, epoch, worker id).

    The epoch is the sampler's (``DefaultSampler.epoch``, set by
    ``DistSamplerSeedHook`` or by mmengine's iteration-based loop before each
    pass over the data, i.e. before the workers start): read in the worker
    when it is forked, taken along when it is pickled for ``spawn``.

    Args:
        seed (int): The run's seed (``runner.seed``).
        rank (int): This process's rank.
        sampler (optional): The object whose ``epoch`` attribute counts the
            passes over the data; None or without one: epoch 0.
        disable_subprocess_warning (bool): as mmengine's
            ``worker_init_fn``: silence warnings in workers other than 0.
    """

    def __init__(self,
                 seed: int,
                 rank: int,
                 sampler: Any = None,
                 disable_subprocess_warning: bool = False) -> None:
        self.seed = int(seed)
        self.rank = int(rank)
        self.sampler = sampler
        self.epoch = 0
        self.disable_subprocess_warning = disable_subprocess_warning

    def current_epoch(self) -> int:
        """The sampler's epoch now (the pickled one in a spawned worker)."""
        if self.sampler is None:
            return self.epoch
        return int(getattr(self.sampler, 'epoch', 0))

    def __getstate__(self) -> dict:
        # spawn pickles the function when the workers start: keep the epoch
        # of that moment, not the sampler (and its dataset)
        state = dict(self.__dict__, sampler=None)
        state['epoch'] = self.current_epoch()
        return state

    def __call__(self, worker_id: int) -> None:
        seed = worker_seed(self.seed, self.rank, self.current_epoch(),
                           worker_id)
        np.random.seed(seed % 2**32)  # numpy takes 32 bits
        random.seed(seed)
        torch.manual_seed(seed)
        if self.disable_subprocess_warning and worker_id != 0:
            warnings.simplefilter('ignore')


def epoch_sampler(loader) -> Any:
    """The sampler whose ``set_epoch`` mmengine calls, as
    ``DistSamplerSeedHook`` finds it (the loader's, else the batch
    sampler's); None if neither has ``set_epoch``."""
    sampler = getattr(loader, 'sampler', None)
    if hasattr(sampler, 'set_epoch'):
        return sampler
    sampler = getattr(getattr(loader, 'batch_sampler', None), 'sampler', None)
    return sampler if hasattr(sampler, 'set_epoch') else None


def get_rng_state() -> Dict[str, Any]:
    """The global RNG states of this process: torch (CPU and every CUDA
    device), numpy and ``random``, as tensors, ints and tuples.

    numpy's key array is stored as an int64 tensor: a ``weights_only``
    ``torch.load`` refuses numpy arrays.
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=(kind, torch.from_numpy(keys.astype(np.int64)), int(pos),
               int(has_gauss), float(gauss)),
        python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state['torch'].cpu())
    kind, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state(
        (kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, gauss))
    python = state['python']
    random.setstate((python[0], tuple(python[1]), python[2]))
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            print_log(
                f'ExactResumeHook: the checkpoint has the CUDA RNG states of '
                f'{len(cuda)} devices, this process sees '
                f'{torch.cuda.device_count()}; CUDA RNGs not restored',
                logger='current',
                level=logging.WARNING)


def _distill_samplers(runner) -> Dict[str, Any]:
    """``{module name: DistillSampler}`` of the model's modules (the
    sampler is a plain attribute, not a submodule)."""
    from mmprockd.models.distillers.distill_sampler import DistillSampler
    model = unwrapped_model(runner)
    found = {}
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, DistillSampler):
                found[f'{name}.{attr}' if name else attr] = value
    return found


def _feature_caches(runner) -> Dict[str, Any]:
    """``{attribute path: TeacherFeatureCache}`` of the model's modules
    (``teacher_cache``, ``branch_cache``, ``backbone.cache``: plain
    attributes, not submodules), each cache once."""
    from mmprockd.models.distillers.teacher_cache import TeacherFeatureCache
    model = unwrapped_model(runner)
    found, seen = {}, set()
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, TeacherFeatureCache) and \
                    id(value) not in seen:
                seen.add(id(value))
                found[f'{name}.{attr}' if name else attr] = value
    return found


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Save the random state in each checkpoint and restore it on resume,
    and seed the training dataloader's workers by epoch.

    What it does, and at which moment (priority ``HIGHEST``, so it acts
    before any other hook draws a random number):

    - ``before_train``: gives the training dataloader an
      :class:`EpochWorkerSeed` (when it has workers and uses mmengine's
      default ``worker_init_fn``; a ``worker_init_fn`` of the config is kept)
      and its own ``torch.Generator``, so that starting its workers no
      longer draws from the global torch RNG (the iteration-based loop's
      skip over the trained batches then draws nothing either).
    - ``before_save_checkpoint``: writes ``checkpoint['exact_resume']`` =
      the global RNG states, every ``DistillSampler``'s state and, with
      ``save_caches``, the contents of every output cache of the model
      (:meth:`TeacherFeatureCache.state_dict`: keys, LRU order, counters,
      the stored maps as one flat tensor of their fp16/fp32). A run with
      ``teacher_cache`` or ``branch_cache`` therefore carries them in its
      full checkpoints, never in the model's ``state_dict`` (the student
      export and ``branch_ckpt`` do not see them). On the detection proxy
      (``det_n100_mini``, row ``two_stage``, both caches fp32, 16
      canvases) a student-phase ``iter_N.pth`` is 17.3 MB instead of
      12.9 MB: about 44 KB per cached image and flip for ``teacher_cache``
      and 95 KB for ``branch_cache``.
    - ``after_load_checkpoint``: keeps them; ``before_train`` keeps them
      only for a resume (the checkpoint's iteration is the runner's), so a
      fine-tuning run (``load_from`` without ``resume``) starts fresh.
    - ``before_train_epoch``: restores them (the caches' contents
      replace what they hold; a checkpoint without them, saved before
      they were kept or with ``save_caches=False``, leaves them empty and
      says so in the log). This is where an
      epoch-based run resumes, after the model is built and the checkpoint
      loaded, before the next epoch's dataloader starts. The
      iteration-based loop calls it once, before it skips the trained
      batches: there they are restored after the skip, which loads those
      batches again (in this process, drawing their augmentation, when
      the dataloader has no workers).
    - ``before_val`` / ``after_val``: validation during training gets the
      RNG back as it found it, so the training draws do not depend on
      whether (or how often) the run validated: a resumed run does not
      repeat the validation its checkpoint was followed by.

    Not exact (see docs/method.md, "Exact resume"): ``persistent_workers``
    (the workers' streams start over) and most GPU runs.

    Args:
        save_caches (bool): keep the output caches' contents in the
            checkpoints. False: checkpoints the size of the model's state,
            and a resumed run starts with empty caches (it then departs
            from the uninterrupted one in the last bits). Defaults to True.
    """
    priority = 'HIGHEST'

    def __init__(self, save_caches: bool = True) -> None:
        self.save_caches = bool(save_caches)
        self._loaded: Optional[Dict[str, Any]] = None
        self._loaded_iter: Optional[int] = None
        self._pending: Optional[Dict[str, Any]] = None
        self._before_val: Optional[Dict[str, Any]] = None

    # --------------------------------------------------------- dataloader
    def before_train(self, runner) -> None:
        """Seed the workers by epoch; keep a loaded state only on resume."""
        if self._loaded_iter == runner.iter and runner.iter > 0:
            self._pending = self._loaded
            if self._loaded is None:
                print_log(
                    'ExactResumeHook: the checkpoint resumed from has no '
                    'random state (saved without this hook): the run goes '
                    'on, but not exactly as it would have',
                    logger='current',
                    level=logging.WARNING)
        self._loaded = self._loaded_iter = None
        loop = runner.train_loop
        loader = getattr(loop, 'dataloader', None)
        if not isinstance(loader, torch.utils.data.DataLoader):
            return
        if loader.generator is None:
            # the base seed each iterator draws: from the global torch RNG
            # otherwise, which would shift with every pass over the data
            loader.generator = torch.Generator().manual_seed(
                _hash_seed(1, runner.seed, get_rank()))
        if loader.num_workers == 0:
            return
        if loader.persistent_workers:
            print_log(
                'ExactResumeHook: persistent_workers=True: a resumed run '
                'cannot reproduce the workers\' random streams (they start '
                'over); set persistent_workers=False for an exact resume',
                logger='current',
                level=logging.WARNING)
        init_fn = loader.worker_init_fn
        keywords = getattr(init_fn, 'keywords', {})
        if init_fn is not None and not _is_mmengine_default(init_fn):
            print_log(
                'ExactResumeHook: the train dataloader has its own '
                'worker_init_fn, kept; the workers are seeded by epoch only '
                'if it does so',
                logger='current',
                level=logging.WARNING)
            return
        loader.worker_init_fn = EpochWorkerSeed(
            runner.seed,
            get_rank(),
            epoch_sampler(loader),
            disable_subprocess_warning=keywords.get(
                'disable_subprocess_warning', False))
        # the iteration-based loop started its first iterator when it was
        # built, before any hook: start it again with the new seeds (same
        # epoch, nothing drawn from it yet)
        it = getattr(loop, 'dataloader_iterator', None)
        if it is not None and getattr(it, '_dataloader', None) is loader \
                and not loader.persistent_workers:
            it._iterator = iter(loader)

    # ------------------------------------------------------------ RNG state
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Write ``checkpoint['exact_resume']``: during a validation, the
        random state training left it with (training goes on from it)."""
        rng = self._before_val if self._before_val is not None else \
            get_rng_state()
        checkpoint[KEY] = dict(
            rng=rng,
            distill_samplers={
                name: s.state_dict()
                for name, s in _distill_samplers(runner).items()
            })
        if self.save_caches:
            checkpoint[KEY][CACHES] = {
                name: cache.state_dict()
                for name, cache in _feature_caches(runner).items()
            }

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the saved state until the run starts training."""
        self._loaded = checkpoint.get(KEY)
        self._loaded_iter = (checkpoint.get('meta') or {}).get('iter')

    def before_train_epoch(self, runner) -> None:
        """Restore the state saved with the checkpoint resumed from; in an
        iteration-based loop, once it has skipped the trained batches."""
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        loop = runner.train_loop
        iterator = getattr(loop, 'dataloader_iterator', None)
        if iterator is not None and runner.iter > 0:
            # the skip loads those batches again; without workers their
            # augmentation draws from this process's RNGs
            loop.dataloader_iterator = _RestoreAfterSkip(
                loop, iterator, runner.iter,
                lambda: self._restore(runner, state))
        else:
            self._restore(runner, state)

    @staticmethod
    def _restore(runner, state: Dict[str, Any]) -> None:
        set_rng_state(state['rng'])
        samplers = _distill_samplers(runner)
        for name, saved in state.get('distill_samplers', {}).items():
            if name in samplers:
                samplers[name].load_state_dict(saved)
        _restore_caches(_feature_caches(runner), state.get(CACHES))
        print_log(
            f'ExactResumeHook: random state restored (iter {runner.iter})',
            logger='current')

    def before_val(self, runner) -> None:
        """Remember the RNG when validation starts (during training)."""
        self._before_val = get_rng_state()

    def after_val(self, runner) -> None:
        """Give training the RNG back as validation found it."""
        if self._before_val is not None:
            set_rng_state(self._before_val)
            self._before_val = None


def _restore_caches(caches: Dict[str, Any],
                    saved: Optional[Dict[str, Any]]) -> None:
    """Load every cache of ``caches`` (``{name: TeacherFeatureCache}``)
    from ``saved`` (``checkpoint['exact_resume']['feature_caches']``);
    those it lacks (None: a checkpoint saved before caches were kept, or
    with ``save_caches=False``) or holds in another dtype are emptied, and
    the log says which."""
    saved = saved or {}
    for name, cache in caches.items():
        cache.clear()
        if name not in saved:
            print_log(
                f'ExactResumeHook: the checkpoint has no contents of '
                f'{name} (saved without them): it starts empty, and the run '
                'departs from the uninterrupted one in the last bits',
                logger='current',
                level=logging.WARNING)
            continue
        try:
            cache.load_state_dict(saved[name])
        except ValueError as err:
            print_log(
                f'ExactResumeHook: {name} not restored, it starts empty: '
                f'{err}',
                logger='current',
                level=logging.WARNING)
            cache.clear()
            continue
        print_log(
            f'ExactResumeHook: {name} restored ({len(cache)} samples)',
            logger='current')


class _RestoreAfterSkip:
    """Stands in for an iteration-based loop's ``dataloader_iterator``
    while the loop skips the ``skip`` batches a resumed run trained before:
    after the last of them it puts the iterator back and calls
    ``restore``, so the next batch is drawn from the restored state."""

    def __init__(self, loop, iterator, skip: int, restore) -> None:
        self.loop, self.iterator = loop, iterator
        self.left, self.restore = skip, restore

    def __iter__(self):
        return self

    def __next__(self):
        data = next(self.iterator)
        self.left -= 1
        if self.left == 0:
            self.loop.dataloader_iterator = self.iterator
            self.restore()
        return data


def _is_mmengine_default(fn) -> bool:
    from mmengine.dataset import worker_init_fn
    return getattr(fn, 'func', None) is worker_init_fn or fn is worker_init_fn
