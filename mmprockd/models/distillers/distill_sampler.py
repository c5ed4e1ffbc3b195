"""Which images of a batch the distillation terms use (``distill_fraction``).

The teacher, the prototype branch, the KL and the feature mimic may run on a
part of each batch while the student's own loss keeps all of it: the cost
lever measured in docs/benchmark.md. The draw is a function of a seed that
all ranks share and of the step count only, so DDP ranks distil (or skip) on
the same steps and no rank waits for the others. The seed is drawn at the
first draw and the step count lives in the sampler, so a resumed run draws
the same images only if both are restored: ``ExactResumeHook`` saves them
(:meth:`DistillSampler.state_dict`) in every checkpoint.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor


class DistillSampler:
    """Draws the images of each step's distillation terms.

    Each step uses ``floor(f * B)`` images at random, plus one more with
    probability ``frac(f * B)`` (B = images per GPU). Below 2 expected images
    it uses 2 images or none, with the same expectation, because BN in heads
    with global pooling (PSPNet's PPM, DeepLabV3's image pool) cannot train
    on a single image.

    Args:
        fraction (float): expected fraction ``f`` of the images, in (0, 1].
    """

    def __init__(self, fraction: float = 1.0) -> None:
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError('ProtoDistiller: distill_fraction must be in '
                             f'(0, 1], got {fraction!r}')
        self.fraction = float(fraction)
        self.seed: Optional[int] = None  # shared by all ranks, set lazily
        self.draws = 0
        # images drawn / images offered since construction (for benchmarks)
        self.used = self.seen = 0

    def state_dict(self) -> dict:
        """The draw position: ``seed`` (None before the first draw) and the
        number of ``draws`` so far, plus the ``used``/``seen`` counts.

        The draws are a function of these alone; ``ExactResumeHook`` saves
        them in a checkpoint, because a resumed run would otherwise draw a
        new seed (from the global RNG, at its first step) and count from 0.
        """
        return dict(
            seed=self.seed, draws=self.draws, used=self.used, seen=self.seen)

    def load_state_dict(self, state: dict) -> None:
        """Continue the draws where :meth:`state_dict` left them."""
        seed = state.get('seed')
        self.seed = None if seed is None else int(seed)
        self.draws = int(state.get('draws', 0))
        self.used = int(state.get('used', 0))
        self.seen = int(state.get('seen', 0))

    def indices(self, batch_size: int) -> Optional[Tensor]:
        """The images used this step (sorted; may be empty), or None for
        all of them."""
        idx = self._draw(batch_size)
        self.seen += batch_size
        self.used += batch_size if idx is None else int(idx.numel())
        return idx

    def _draw(self, batch_size: int) -> Optional[Tensor]:
        if self.fraction >= 1.0:
            return None
        if self.seed is None:
            from mmengine.dist import sync_random_seed
            self.seed = int(sync_random_seed())
        g = torch.Generator().manual_seed(self.seed + self.draws)
        self.draws += 1
        expected = batch_size * self.fraction
        draw = float(torch.rand((), generator=g))
        if expected < 2 <= batch_size:
            num = 2 if draw < expected / 2 else 0
        else:
            num = int(expected) + int(draw < expected - int(expected))
        if num >= batch_size:
            return None
        return torch.randperm(batch_size, generator=g)[:num].sort().values


def take_images(idx: Optional[Tensor], inputs: Tensor, feats: Sequence[Tensor],
                data_samples: list, logits: List[Tensor]) -> Tuple:
    """Restrict a step's inputs, features, samples and head logits to the
    images ``idx`` (all of them when ``idx`` is None)."""
    if idx is None:
        return inputs, tuple(feats), data_samples, logits
    pick = idx.to(inputs.device)
    samples = [data_samples[i] for i in idx.tolist()]
    logits = [lg[pick.to(lg.device)] for lg in logits]
    return inputs[pick], tuple(f[pick] for f in feats), samples, logits
