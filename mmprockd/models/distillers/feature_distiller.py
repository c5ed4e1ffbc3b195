"""What the distillers from a :class:`FrozenTeacher`'s feature maps share
(:class:`FeatureDistiller`): the teacher, its feature cache, the student's
checkpoint and checked feature levels, the images each step distils, the
feature-mimic loss and the NaN guard."""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.logging import MMLogger
from torch import Tensor

from mmprockd.registry import MODELS
from .base_distiller import BaseDistiller, LossDict
from .distill_sampler import DistillSampler, take_images
from .frozen_teacher import FrozenTeacher
from .nan_guard import NanGuard
from .teacher_cache import TeacherFeatureCache, sample_key


class FeatureDistiller(BaseDistiller):
    """A student distilled from the feature maps of a frozen teacher.

    Args:
        student (dict): see :class:`BaseDistiller`.
        teacher (dict): :class:`FrozenTeacher` config.
        student_channels (Sequence[int]): channels of every student feature
            level (``extract_feat`` outputs; backbone outputs for
            classifiers), e.g. ``[256] * 5`` for RetinaNet's FPN.
        student_ckpt (str, optional): start the student from these weights
            (a plain student checkpoint or a distiller's).
        nan_guard (bool): drop the distillation losses of a step whose value
            is not finite (:class:`NanGuard`).
        max_nan_steps (int, optional): stop after this many consecutive
            steps with a non-finite distillation loss (:class:`NanGuard`).
        distill_fraction (float): expected fraction of each batch's images
            that the teacher and the distillation terms use; the student's
            own loss uses them all (:class:`DistillSampler`).
        teacher_cache (dict, optional): arguments of
            :class:`TeacherFeatureCache` (``max_items``, ``dtype``) to reuse
            teacher features across epochs. Only valid for deterministic
            pipelines: read the caveat in ``teacher_cache.py``.
        caches (dict): every feature cache of the subclass by its argument
            name, refused with batch augments as ``teacher_cache`` is.
        log_rank_mean, data_preprocessor, init_cfg: see
            :class:`BaseDistiller`.
    """

    shared_on_copy = ('_teacher', 'teacher_cache')
    #: the distillation modules a step without distillation touches (DDP)
    distill_modules: Tuple[str, ...] = ('feat_loss', )

    def __init__(self,
                 student: dict,
                 teacher: dict,
                 student_channels: Sequence[int],
                 student_ckpt: Optional[str] = None,
                 nan_guard: bool = True,
                 max_nan_steps: Optional[int] = 50,
                 distill_fraction: float = 1.0,
                 teacher_cache: Optional[dict] = None,
                 log_rank_mean: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 caches: Optional[dict] = None) -> None:
        name = type(self).__name__
        if student_ckpt is not None and '://' not in student_ckpt and \
                not osp.isfile(student_ckpt):
            raise FileNotFoundError(
                f'{name}: student_ckpt {student_ckpt!r} does not exist')
        super().__init__(student, data_preprocessor, log_rank_mean, init_cfg)
        self._hold_teacher(MODELS.build(teacher))
        if not isinstance(self._teacher, FrozenTeacher):
            raise TypeError(f'{name}: teacher must build a '
                            'mmprockd.FrozenTeacher')
        # the map from the student's input to the teacher's own convention:
        # an unknown preprocessor fails here, before any data is loaded
        self._teacher.bind_student(self.student.data_preprocessor)
        self.student_channels = list(student_channels)
        self.student_ckpt = student_ckpt
        self.nan_check = NanGuard(nan_guard, max_nan_steps, name)
        self.sampler = DistillSampler(distill_fraction)
        caches = dict(teacher_cache=teacher_cache, **(caches or {}))
        augments = getattr(self.data_preprocessor, 'batch_augments', None)
        if augments and any(c is not None for c in caches.values()):
            # Mixup, CutMix...: the batch the teacher sees is not the
            # image the cache key names
            names = ' and '.join(caches)
            raise ValueError(
                f'{name}: {names} key{"s" * (len(caches) == 1)} a sample by '
                'its image path and flip, '
                'but the data preprocessor has batch_augments '
                f'({type(augments).__name__}) that change the image after '
                f'that; set {"=None and ".join(caches)}=None')
        self.teacher_cache = None if teacher_cache is None else \
            TeacherFeatureCache(**teacher_cache)
        self.teacher_channels = self._probe_teacher_channels()
        self.feat_loss = None

    # ------------------------------------------------------------- building
    def _probe_teacher_channels(self) -> List[int]:
        """Run the teacher once on a small input to learn its channels, so
        that mismatches fail here and not after the data is loaded."""
        with torch.no_grad():
            feats = self._teacher(torch.zeros(1, 3, 224, 224))
        pooled = [
            f'{name} ({f.shape[1]} x 1 x 1)'
            for name, f in zip(self._teacher.layers, feats)
            if f.shape[-2:] == (1, 1)
        ]
        if pooled:
            raise ValueError(
                f'{type(self).__name__}: teacher layers {pooled} give 1 x 1 '
                'maps on a 224 x 224 input: they come after a global '
                'pooling, so they hold no parts for the prototypes. Name '
                'layers before the pooling (ConvNeXt: '
                'gap_before_final_norm=False for norm1..3; ResNet: '
                'layer2..4, not the neck)')
        return [f.shape[1] for f in feats]

    def _build_feat_loss(self, feat_loss: Optional[dict]) -> None:
        """The feature-mimic loss between every student level and the
        teacher's layers (:class:`FeatureMimicLoss`), channels filled in."""
        if feat_loss is not None:
            feat_loss = dict(feat_loss)
            feat_loss.setdefault('student_channels', self.student_channels)
            feat_loss.setdefault('teacher_channels',
                                 sum(self.teacher_channels))
            self.feat_loss = MODELS.build(feat_loss)

    def init_weights(self) -> None:
        super().init_weights()
        if self.student_ckpt is not None:
            from mmengine.runner import load_checkpoint
            load_checkpoint(
                self.student,
                self.student_ckpt,
                map_location='cpu',
                strict=False,
                revise_keys=[(r'^module\.', ''), (r'^student\.', '')],
                logger=MMLogger.get_current_instance())

    # ------------------------------------------------------------ NaN guard
    @property
    def nan_guard(self) -> bool:
        """Whether a step's non-finite distillation losses are dropped."""
        return self.nan_check.drop

    @property
    def max_nan_steps(self) -> Optional[int]:
        """Consecutive non-finite steps that stop the run (or None)."""
        return self.nan_check.max_steps

    @property
    def nan_skips(self) -> int:
        """Steps whose distillation losses were dropped."""
        return self.nan_check.skips

    @property
    def nan_streak(self) -> int:
        """Consecutive steps with a non-finite distillation loss."""
        return self.nan_check.streak

    # ------------------------------------------------------------ the steps
    @property
    def distill_fraction(self) -> float:
        """Expected fraction of the images the distillation terms use."""
        return self.sampler.fraction

    @distill_fraction.setter
    def distill_fraction(self, value: float) -> None:
        self.sampler.fraction = float(value)

    def distill_indices(self, batch_size: int) -> Optional[Tensor]:
        """The images the distillation terms use this step (sorted; may be
        empty), or None for all of them (:class:`DistillSampler`)."""
        return self.sampler.indices(batch_size)

    def _student_step(self, inputs: Tensor, data_samples: list
                      ) -> Tuple[LossDict, Tuple[Tensor, ...], List[Tensor]]:
        """The student's losses (``student.*``), its checked feature levels
        and its head's logits."""
        feats = self.iface.extract(inputs)
        if len(feats) != len(self.student_channels) or any(
                f.shape[1] != c for f, c in zip(feats, self.student_channels)):
            raise ValueError(
                f'{type(self).__name__}: student_channels='
                f'{self.student_channels} but the student features have '
                f'{[f.shape[1] for f in feats]} channels')
        if any(f.dim() != 4 for f in feats):
            raise ValueError(
                f'{type(self).__name__}: the student features must be maps '
                f'(N, C, H, W), got shapes {[tuple(f.shape) for f in feats]}'
                "; for a ViT classifier set the backbone out_type='featmap' "
                'and pool in the neck (GlobalAveragePooling)')
        losses, logits = self.iface.loss(inputs, feats, data_samples)
        return {f'student.{k}': v for k, v in losses.items()}, feats, logits

    def _distill_batch(self, scale: float, inputs: Tensor,
                       feats: Sequence[Tensor], data_samples: list,
                       logits: List[Tensor]) -> Optional[Tuple]:
        """The inputs, features, samples and logits of the images this step
        distils (:meth:`distill_indices`), or None when it distils none (or
        the schedule's ``scale`` is 0)."""
        idx = self.distill_indices(inputs.shape[0]) if scale > 0 else None
        if scale > 0 and (idx is None or idx.numel() > 0):
            return take_images(idx, inputs, feats, data_samples, logits)
        return None

    def _teacher_features(self,
                          inputs: Tensor,
                          data_samples: Optional[list] = None) -> List[Tensor]:
        """The teacher's maps of the student's batch; with
        ``teacher_cache``, the teacher runs only on the images the cache
        does not hold."""
        if self.teacher_cache is None or not data_samples:
            return self._teacher.from_student_input(
                inputs, self.student.data_preprocessor)
        keys = [sample_key(s, inputs.shape[-2:]) for s in data_samples]
        cached = self.teacher_cache.get_each(keys, inputs.device)
        missing = [i for i, c in enumerate(cached) if c is None]
        if missing:
            idx = torch.tensor(missing, device=inputs.device)
            fresh = self._teacher.from_student_input(
                inputs.index_select(0, idx), self.student.data_preprocessor)
            self.teacher_cache.put([keys[i] for i in missing], fresh)
            for j, i in enumerate(missing):
                cached[i] = [f[j].float() for f in fresh]
        # per sample, per level -> per level (N, C, H, W)
        return [torch.stack(level) for level in zip(*cached)]

    def _finish_distill(self, distill: LossDict) -> LossDict:
        """The step's distillation losses past the NaN guard, and a zero
        that touches every distillation parameter when no loss that counts
        is left (for DDP)."""
        distill = self.nan_check(distill)
        if not any('loss' in k for k in distill if not self._log_only_key(k)):
            zero = self._touch_distill_params()
            if zero is not None:
                distill['distill.loss_zero'] = zero
        return distill

    def _touch_distill_params(self) -> Optional[Tensor]:
        """Zero that depends on every parameter of
        :attr:`distill_modules`, so DDP sees a gradient for each of them on
        steps that skip distillation."""
        mods = [getattr(self, name) for name in self.distill_modules]
        params = [p for m in mods if m is not None for p in m.parameters()]
        if not params:
            return None
        return sum(p.view(-1)[0] for p in params) * 0.0

    def extra_repr(self) -> str:
        return (f'teacher={type(self._teacher.model).__name__} '
                f'layers={self._teacher.layers}')
