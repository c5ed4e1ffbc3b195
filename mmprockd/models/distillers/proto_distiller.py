"""ProtoDistiller: ProC-KD around any mmdet / mmseg / mmpretrain student.

Li, Li, Wu, Han, "Prototype-guided cross-task knowledge distillation",
FITEE 26(6), 2025 (arXiv 2212.13180). Our reading of the method is in
``docs/method.md``; this file wires it up:

1. the student computes its own task loss on its own features
   (``student.*`` losses);
2. the frozen teacher's layers are fused and summarised by the
   :class:`PrototypeLearner`, augmented by :class:`TaskAdaptiveAugment` with
   the same prototypes, aligned to each student level, and given to the
   student's own head, which must solve the student's task from them
   (``distill.proto.*`` losses);
3. a KL term makes the student's predictions consistent with the prototype
   branch's (``distill.loss_kl``); an optional feature-mimic term
   (``distill.loss_feat``) is there for baselines and ablations.

``predict`` and ``tensor`` run the student alone. The teacher is held
outside the module tree: it is never saved, never moved by DDP or seen by
the optimizer, and ``model.train()`` cannot switch it out of eval.
"""
import os.path as osp
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from torch import Tensor

from mmprockd.registry import MODELS
from ..plugins.task_adaptive_augment import TaskAdaptiveAugment
from .branch_io import (BranchOutputs, cached_branch_outputs,
                        load_branch_checkpoint)
from .build_checks import check_student_channels, check_sub_configs, kl_refusal
from .distill_sampler import DistillSampler, take_images
from .frozen_teacher import FrozenTeacher, deepcopy_sharing
from .rank_mean import RankMeanLogVars
from .student_interface import StudentInterface, keep_norm_stats
from .teacher_cache import TeacherFeatureCache, sample_key

LossDict = Dict[str, Union[Tensor, List[Tensor]]]


def _scale(value: Union[Tensor, List[Tensor]], factor: float):
    if isinstance(value, (list, tuple)):
        return [v * factor for v in value]
    return value * factor


def _finite(value: Union[Tensor, List[Tensor]]) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return all(bool(torch.isfinite(v).all()) for v in values)


@MODELS.register_module()
class ProtoDistiller(BaseModel):
    """Prototype-guided cross-task distillation of a frozen teacher.

    Args:
        student (dict): the student model config (mmdet detector, mmseg
            segmentor or mmpretrain classifier); its data preprocessor is
            the distiller's.
        teacher (dict): :class:`FrozenTeacher` config.
        student_channels (Sequence[int]): channels of every student feature
            level (``extract_feat`` outputs; backbone outputs for
            classifiers), e.g. ``[256] * 5`` for RetinaNet's FPN.
        learner (dict, optional): :class:`PrototypeLearner` config;
            ``num_levels`` is filled in. None disables the prototype branch
            (feature-mimic baselines).
        augment (dict, optional): :class:`TaskAdaptiveAugment` config used on
            the learner's output; ``in_channels`` and ``num_prototypes`` are
            filled in from the learner.
        proto_levels (Sequence[int], optional): the student levels the
            prototype branch produces; the others keep the student's own
            (detached) features. Defaults to all levels.
        proto_weight (float): weight of the prototype-branch task loss.
        level_adapter (dict, optional): extra arguments of the
            :class:`LevelAdapter` that ends the branch (e.g.
            ``out_kernel=3``, [ours]).
        branch_head (str): ``'shared'`` (the authors' recipe): the branch
            runs the student's own heads. ``'own'`` [ours]: the branch runs
            a copy of the student's heads with its own weights (and its own
            norm statistics), so the branch is a detector / segmenter /
            classifier on teacher features that never burdens the student's
            head; the student then learns from it through the KL only.
            Defaults to ``'shared'``.
        proto_head_grad (bool): whether the prototype-branch task loss also
            trains the student's head (the authors' shared head, default).
            False sends it only into the prototypes, learner, augment and
            adapters; the head then learns from the student's own loss
            alone (see docs/benchmark.md for why this is an ablation).
        kl_loss (dict, optional): :class:`ConsistencyKLLoss` config; its
            ``kind`` defaults to the student head's (sigmoid for RetinaNet).
        feat_loss (dict, optional): :class:`FeatureMimicLoss` config (the
            baseline); channels are filled in.
        branch_feat_loss (dict, optional): [ours] :class:`BranchMimicLoss`
            config: the student's prototype levels learn to correlate with
            the branch's features of the same levels (detached), a
            feature-level path from the branch to the student beside the
            KL (``distill.loss_branch_feat``). Needs the prototype branch.
        branch_pseudo_loss (dict, optional): [ours] :class:`PseudoLabelLoss`
            config: while the branch learns, its confident predictions on
            the unlabelled images of a classification transfer set (label
            -1) are labels too (``distill.proto.loss_pseudo``, scaled like
            the branch's task loss; ``distill.proto.pseudo_ratio`` logs the
            share labelled). Needs the prototype branch and a classifier.
        assign_loss (dict, optional): [ours] :class:`PrototypeAssignLoss`
            config: the student's prototype levels, projected to the
            learner's D channels, learn to be assigned over the prototypes
            as the branch's tokens are (``distill.loss_assign``),
            "prototype-assignment distillation" [ours]; ``student_channels``
            and ``channels`` are filled in. Needs the prototype branch.
        student_ckpt (str, optional): start the student from these weights
            (a plain student checkpoint or a ProtoDistiller one).
        branch_ckpt (str, optional): [ours] start the prototype branch (the
            learner, augment, level adapter and the own head copy) from
            the branch of this ProtoDistiller checkpoint, loaded strictly
            after ``init_weights``; the student starts as it would without
            it. With ``DistillScheduleHook(branch_stop=0)`` the loaded
            branch is a fixed teacher from the first step: ProC-KD in two
            stages, the branch trained in a first run, its predictions
            distilled into a fresh student in a second (docs/method.md).
            Needs ``branch_head='own'`` (a shared head would be the new
            student's, untrained).
        sync_student_prototypes (bool): copy the learned prototypes into
            every :class:`TaskAdaptiveAugment` inside the student before each
            step, so a deployed student carries them. Defaults to True.
        nan_guard (bool): drop the distillation losses of a step whose value
            is not finite (logged), instead of poisoning the student.
        max_nan_steps (int, optional): stop with a RuntimeError after this
            many consecutive steps whose distillation loss was not finite
            (a step with a finite one resets the count; a step without
            distillation leaves it as is), whether ``nan_guard`` dropped
            them or not: a permanently broken distillation must not turn
            into plain student training. None disables the check. Defaults
            to 50.
        distill_fraction (float): expected fraction of each batch's images
            that the teacher, the prototype branch, the KL and the feature
            mimic use; the student's own loss uses them all. 1.0 (default)
            is the authors' recipe. How the images are drawn, identically
            on every rank: :class:`DistillSampler`. With 2 images per GPU
            and 0.25, a quarter of the steps distil both images and the
            others skip the teacher. It trades signal for cost
            (docs/benchmark.md).
        teacher_cache (dict, optional): arguments of
            :class:`TeacherFeatureCache` (``max_items``, ``dtype``) to reuse
            teacher features across epochs. Only valid for deterministic
            pipelines: read the caveat in ``teacher_cache.py``.
        branch_cache (dict, optional): [ours] arguments of
            :class:`TeacherFeatureCache` for the outputs of a *frozen*
            prototype branch (:attr:`branch_frozen`): its logits (and the
            maps ``branch_feat_loss`` reads) per sample, under the teacher
            cache's key. A frozen branch is a fixed function of the image,
            so from the second epoch on the teacher, the branch and its
            head no longer run and a two-stage stage-2 step costs about a
            student step. The same caveat as ``teacher_cache`` holds (a
            deterministic pipeline); the branch needs its own head
            (``branch_head='own'``) and every student level its head reads
            must be a prototype level (else the branch's output also
            depends on the student's changing maps): all levels, except for
            a segmentor, whose decode head reads those of its ``in_index``
            (:meth:`StudentInterface.logit_levels`); and the frozen
            branch's losses are logged on the images it ran on only.
            Emptied whenever ``branch_frozen`` changes. One entry holds
            the head's logits of every level, so size ``max_items`` to the
            memory: small data sets and proxies, not COCO at full scale.
        log_rank_mean (bool): under DDP, log every loss (and ``loss``, the
            total) as its mean over the ranks, so that a 2-process log reads
            like a 1-process one with the same global batch; the
            backpropagated loss stays the rank's own. One extra collective
            per step (:class:`RankMeanLogVars`). False logs rank 0's values,
            mmengine's default. Defaults to True.
        data_preprocessor (dict, optional): handed to the student when its
            own config has none, exactly as mmengine's Runner does for a
            plain model (mmpretrain configs keep it at the top level). The
            distiller always preprocesses with the student's preprocessor,
            so the student trains on what it sees when deployed; the
            teacher re-normalises on its side.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 student: dict,
                 teacher: dict,
                 student_channels: Sequence[int],
                 learner: Optional[dict] = None,
                 augment: Optional[dict] = None,
                 proto_levels: Optional[Sequence[int]] = None,
                 proto_weight: float = 1.0,
                 level_adapter: Optional[dict] = None,
                 branch_head: str = 'shared',
                 proto_head_grad: bool = True,
                 kl_loss: Optional[dict] = None,
                 feat_loss: Optional[dict] = None,
                 branch_feat_loss: Optional[dict] = None,
                 branch_pseudo_loss: Optional[dict] = None,
                 assign_loss: Optional[dict] = None,
                 student_ckpt: Optional[str] = None,
                 branch_ckpt: Optional[str] = None,
                 sync_student_prototypes: bool = True,
                 nan_guard: bool = True,
                 max_nan_steps: Optional[int] = 50,
                 distill_fraction: float = 1.0,
                 teacher_cache: Optional[dict] = None,
                 branch_cache: Optional[dict] = None,
                 log_rank_mean: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        check_sub_configs(locals())
        if student_ckpt is not None and '://' not in student_ckpt and \
                not osp.isfile(student_ckpt):
            raise FileNotFoundError(
                f'ProtoDistiller: student_ckpt {student_ckpt!r} does not '
                'exist')
        if branch_ckpt is not None:
            if '://' not in branch_ckpt and not osp.isfile(branch_ckpt):
                raise FileNotFoundError(
                    f'ProtoDistiller: branch_ckpt {branch_ckpt!r} does not '
                    'exist (a ProtoDistiller checkpoint with the prototype '
                    'branch)')
            if learner is None or branch_head != 'own':
                raise ValueError(
                    'ProtoDistiller: branch_ckpt needs the prototype branch '
                    "(learner) with branch_head='own'; got learner="
                    f'{None if learner is None else "..."}, branch_head='
                    f'{branch_head!r} (a shared head is the new student\'s, '
                    'untrained)')
        if data_preprocessor is not None and \
                student.get('data_preprocessor') is None:
            student = dict(student, data_preprocessor=data_preprocessor)
        self.student = MODELS.build(student)
        self.data_preprocessor = self.student.data_preprocessor
        self.iface = StudentInterface.from_model(self.student)
        # The teacher and the branch draw their random init from the RNG, and
        # put it back as it was after the student was built: the student's
        # init_weights (the first child's) then draws exactly what it draws
        # in a student-alone run with the same seed, so paired comparisons
        # (docs/benchmark.md) start from the same student.
        rng_after_student = torch.get_rng_state()
        # outside the module tree: not saved, not in DDP, not in optimizer
        object.__setattr__(self, '_teacher', MODELS.build(teacher))
        if not isinstance(self._teacher, FrozenTeacher):
            raise TypeError('ProtoDistiller: teacher must build a '
                            'mmprockd.FrozenTeacher')
        # the map from the student's input to the teacher's own convention:
        # an unknown preprocessor fails here, before any data is loaded
        self._teacher.bind_student(self.student.data_preprocessor)
        self.student_channels = list(student_channels)
        n_levels = len(self.student_channels)
        self.proto_levels = list(
            range(n_levels) if proto_levels is None else proto_levels)
        bad = [i for i in self.proto_levels if not 0 <= i < n_levels]
        if bad:
            raise ValueError(f'ProtoDistiller: proto_levels {bad} outside '
                             f'the {n_levels} student levels')
        self.proto_weight = proto_weight
        if branch_head not in ('shared', 'own'):
            raise ValueError("ProtoDistiller: branch_head must be 'shared' "
                             f"or 'own', got {branch_head!r}")
        self.branch_head = branch_head
        self.kl_scale = 1.0  # set by DistillScheduleHook(kl_start=...)
        # set by DistillScheduleHook(branch_stop=...) [ours]
        self._branch_frozen = False
        # set by DistillScheduleHook(student_start=...) [ours]
        self._student_paused = False
        self.proto_head_grad = proto_head_grad
        self.student_ckpt = student_ckpt
        self.branch_ckpt = branch_ckpt
        self.sync_student_prototypes = sync_student_prototypes
        self.nan_guard = nan_guard
        if max_nan_steps is not None and max_nan_steps < 1:
            raise ValueError('ProtoDistiller: max_nan_steps must be >= 1 or '
                             f'None, got {max_nan_steps}')
        self.max_nan_steps = max_nan_steps
        self.nan_skips = 0  # steps whose distillation losses were dropped
        self.nan_streak = 0  # consecutive steps with a non-finite one
        self.sampler = DistillSampler(distill_fraction)
        augments = getattr(self.data_preprocessor, 'batch_augments', None)
        if augments and (teacher_cache is not None
                         or branch_cache is not None):
            # Mixup, CutMix...: the batch the teacher sees is not the
            # image the cache key names
            raise ValueError(
                'ProtoDistiller: teacher_cache and branch_cache key a sample '
                'by its image path and flip, but the data preprocessor has '
                f'batch_augments ({type(augments).__name__}) that change '
                'the image after that; set teacher_cache=None and '
                'branch_cache=None')
        self.teacher_cache = None if teacher_cache is None else \
            TeacherFeatureCache(**teacher_cache)
        self.branch_cache = None
        if branch_cache is not None:
            why = self.branch_cache_refusal(learner is not None, branch_head)
            if why:
                raise ValueError(f'ProtoDistiller: {why}')
            self.branch_cache = TeacherFeatureCache(**branch_cache)
        self.distill_scale = 1.0  # set by DistillScheduleHook
        self.log_rank_mean = log_rank_mean
        self._rank_mean = RankMeanLogVars()
        teacher_channels = self._probe_teacher_channels()
        self._build_branches(learner, augment, kl_loss, feat_loss,
                             branch_feat_loss, teacher_channels, level_adapter)
        check_student_channels(self.iface, self.student_channels)
        self.branch_feat_loss = None
        if branch_feat_loss is not None:
            if self.learner is None:
                raise ValueError('ProtoDistiller: branch_feat_loss needs the '
                                 'prototype branch (learner)')
            self.branch_feat_loss = MODELS.build(branch_feat_loss)
        self.branch_pseudo_loss = None
        if branch_pseudo_loss is not None:
            if self.learner is None or self.iface.family != 'cls':
                raise ValueError(
                    'ProtoDistiller: branch_pseudo_loss labels the unlabelled '
                    'images of a classification transfer set with the '
                    'prototype branch; it needs the branch (learner) and a '
                    f'classifier student, got learner='
                    f'{None if self.learner is None else "..."} and a '
                    f'{self.iface.family!r} student')
            self.branch_pseudo_loss = MODELS.build(branch_pseudo_loss)
        self.assign_loss = None
        if assign_loss is not None:
            if self.learner is None:
                raise ValueError('ProtoDistiller: assign_loss needs the '
                                 'prototype branch (learner)')
            assign_loss = dict(assign_loss)
            assign_loss.setdefault(
                'student_channels',
                [self.student_channels[i] for i in self.proto_levels])
            assign_loss.setdefault('channels', self.learner.channels)
            self.assign_loss = MODELS.build(assign_loss)
        self._check_student_plugins()
        torch.set_rng_state(rng_after_student)

    # ------------------------------------------------------------- building
    @property
    def teacher(self) -> FrozenTeacher:
        """The frozen teacher (not a submodule: never saved or trained)."""
        return self._teacher

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
                f'ProtoDistiller: teacher layers {pooled} give 1 x 1 maps on '
                'a 224 x 224 input: they come after a global pooling, so '
                'they hold no parts for the prototypes. Name layers before '
                'the pooling (ConvNeXt: gap_before_final_norm=False for '
                'norm1..3; ResNet: layer2..4, not the neck)')
        return [f.shape[1] for f in feats]

    def _build_branches(self, learner, augment, kl_loss, feat_loss,
                        branch_feat_loss, teacher_channels: List[int],
                        level_adapter: Optional[dict]) -> None:
        self.learner = self.augment = self.level_adapter = None
        self.branch_student = None
        self.branch_iface = self.iface
        self.kl_loss = self.feat_loss = None
        if learner is not None:
            learner = dict(learner)
            learner.setdefault('num_levels', len(self.proto_levels))
            given = learner.get('in_channels')
            if given is not None and list(given) != teacher_channels:
                raise ValueError(
                    f'ProtoDistiller: learner.in_channels={list(given)} but '
                    f'the teacher layers {self._teacher.layers} give '
                    f'{teacher_channels} channels')
            learner['in_channels'] = teacher_channels
            self.learner = MODELS.build(learner)
            augment = dict(
                augment or dict(type='mmprockd.TaskAdaptiveAugment'))
            augment.setdefault('in_channels', self.learner.channels)
            augment.setdefault('num_prototypes', self.learner.num_prototypes)
            self.augment = MODELS.build(augment)
            self.level_adapter = MODELS.build(
                dict(
                    type='mmprockd.LevelAdapter',
                    in_channels=self.learner.channels,
                    out_channels=[
                        self.student_channels[i] for i in self.proto_levels
                    ],
                    **(level_adapter or {})))
            if self.branch_head == 'own':
                self.branch_student = self._copy_heads()
                self.branch_iface = StudentInterface.from_model(
                    self.branch_student)
            if kl_loss is not None:
                if self.iface.kl_unsupported:
                    raise ValueError(
                        kl_refusal(self.iface.kl_unsupported, self.branch_head,
                                   branch_feat_loss))
                kl_loss = dict(kl_loss)
                kl_loss.setdefault('kind', self.iface.kl_kind)
                self.kl_loss = MODELS.build(kl_loss)
        elif kl_loss is not None:
            raise ValueError('ProtoDistiller: kl_loss needs the prototype '
                             'branch (learner)')
        if feat_loss is not None:
            feat_loss = dict(feat_loss)
            feat_loss.setdefault('student_channels', self.student_channels)
            feat_loss.setdefault('teacher_channels', sum(teacher_channels))
            self.feat_loss = MODELS.build(feat_loss)

    def _copy_heads(self) -> torch.nn.Module:
        """The student with its own weights for the heads, and no backbone
        (the branch gives the features). Detectors and segmentors lose
        their neck too (``extract_feat`` is replaced as a whole);
        classifiers keep it (it pools the given maps)."""
        import copy
        branch = copy.deepcopy(self.student)
        branch.backbone = torch.nn.Identity()
        if self.iface.family != 'cls' and getattr(branch, 'neck',
                                                  None) is not None:
            branch.neck = torch.nn.Identity()
        return branch

    def _student_plugins(self) -> List[TaskAdaptiveAugment]:
        return [
            m for m in self.student.modules()
            if isinstance(m, TaskAdaptiveAugment)
        ]

    def _check_student_plugins(self) -> None:
        if not self.sync_student_prototypes or self.learner is None:
            return
        for m in self._student_plugins():
            if m.in_channels != self.learner.channels or \
                    m.num_prototypes != self.learner.num_prototypes:
                raise ValueError(
                    'ProtoDistiller: a TaskAdaptiveAugment in the student has'
                    f' in_channels={m.in_channels}, num_prototypes='
                    f'{m.num_prototypes}, but the learned prototypes are '
                    f'{self.learner.num_prototypes} x {self.learner.channels};'
                    ' put it where the student has that many channels (e.g. '
                    'after the neck) or set sync_student_prototypes=False')

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
        if self.branch_ckpt is not None:
            self._load_branch(self.branch_ckpt)

    def _load_branch(self, path: str) -> None:
        """Load every branch module from a ProtoDistiller checkpoint,
        strictly (:func:`load_branch_checkpoint`)."""
        load_branch_checkpoint(self, path, ('learner', 'augment',
                                            'level_adapter', 'branch_student'))

    # -------------------------------------------------------------- forward
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """``loss`` distils; ``predict`` and ``tensor`` are the student's."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('predict', 'tensor'):
            return self.student(inputs, data_samples, mode=mode)
        raise RuntimeError(f'ProtoDistiller: invalid mode {mode!r}; only '
                           'loss, predict and tensor are supported')

    def _teacher_features(self,
                          inputs: Tensor,
                          data_samples: Optional[list] = None) -> List[Tensor]:
        if self.teacher_cache is None or not data_samples:
            return self._teacher.from_student_input(
                inputs, self.student.data_preprocessor)
        # the teacher runs only on the images the cache does not hold
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

    def _sync_prototypes(self) -> None:
        if not self.sync_student_prototypes or self.learner is None:
            return
        protos = self.learner.get_prototypes(0)
        for m in self._student_plugins():
            m.set_prototypes(protos)

    def _touch_distill_params(self) -> Tensor:
        """Zero that depends on every distillation parameter, so DDP sees a
        gradient for each of them on steps that skip distillation."""
        mods = [
            self.learner, self.augment, self.level_adapter, self.feat_loss,
            self.branch_student, self.assign_loss
        ]
        params = [p for m in mods if m is not None for p in m.parameters()]
        if not params:
            return None
        return sum(p.view(-1)[0] for p in params) * 0.0

    def prototype_branch(
        self,
        teacher_feats: List[Tensor],
        student_feats: Tuple[Tensor, ...],
        return_assign: bool = False
    ) -> Union[Tuple[Tensor, ...], Tuple[Tuple[Tensor, ...], List[Tensor]]]:
        """The student's feature tuple with the prototype levels replaced by
        the augmented teacher features; with ``return_assign`` also the
        learner's soft assignment of every prototype level."""
        sizes = [student_feats[i].shape[-2:] for i in self.proto_levels]
        f_v, assigns = self.learner(teacher_feats, sizes, return_assign=True)
        a_t = [
            self.augment(f, self.learner.get_prototypes(j))
            for j, f in enumerate(f_v)
        ]
        a_t = self.level_adapter(a_t)
        feats = [f.detach() for f in student_feats]
        for j, i in enumerate(self.proto_levels):
            feats[i] = a_t[j]
        if return_assign:
            return tuple(feats), assigns
        return tuple(feats)

    def branch_cache_refusal(self, has_learner: bool,
                             branch_head: str) -> Optional[str]:
        """Why ``branch_cache`` cannot serve this model's frozen branch, or
        None if it can: its output must be a fixed function of the image,
        so the branch needs its own head, and that head may read no student
        level the branch does not replace."""
        if not has_learner or branch_head != 'own':
            return ('branch_cache needs the prototype branch (learner) with '
                    f"branch_head='own', got branch_head={branch_head!r} (a "
                    "shared head is the student's, which changes every step)")
        n_levels = len(self.student_channels)
        read = self.iface.logit_levels(n_levels)
        if not set(read) <= set(self.proto_levels):
            return ('branch_cache needs every student level the head reads '
                    f'({read} of {n_levels}) to be a prototype level, got '
                    f'proto_levels={self.proto_levels} (the branch\'s head '
                    "would read the student's own maps at the others, which "
                    'change every step)')
        return None

    def _branch_modules(self) -> List[torch.nn.Module]:
        return [
            m for m in (self.learner, self.augment, self.level_adapter,
                        self.branch_student) if m is not None
        ]

    @property
    def branch_frozen(self) -> bool:
        """[ours] Whether the prototype branch has stopped training (set by
        ``DistillScheduleHook(branch_stop=...)``). A frozen branch runs in
        eval mode and without gradient, its task loss is still logged under
        the same keys but no longer counted into the total, and the KL goes
        on teaching the student its predictions: probe-then-distil inside
        one run, from a branch stopped before it memorises the training set
        (docs/method.md)."""
        return self._branch_frozen

    @branch_frozen.setter
    def branch_frozen(self, value: bool) -> None:
        value = bool(value)
        if value and self.learner is None:
            raise ValueError('ProtoDistiller: branch_frozen needs the '
                             'prototype branch (learner)')
        if value != self._branch_frozen and self.branch_cache is not None:
            self.branch_cache.clear()  # outputs of another branch state
        self._branch_frozen = value
        for m in self._branch_modules():
            m.train(self.training and not value)

    @property
    def student_paused(self) -> bool:
        """[ours] Whether only the prototype branch trains (set by
        ``DistillScheduleHook(student_start=...)``): the student runs once
        without gradient, its norm buffers kept, to give the branch its
        level sizes (and the detached maps of any level the branch does
        not replace); its loss, the KL and the feature losses are not
        computed, so its parameters, buffers and optimizer state stay as
        they were built. Two-stage ProC-KD in one run: the branch's stage
        first, then a student that starts from its init (docs/method.md)."""
        return self._student_paused

    @student_paused.setter
    def student_paused(self, value: bool) -> None:
        value = bool(value)
        if value and (self.learner is None or self.branch_student is None):
            raise ValueError(
                'ProtoDistiller: student_paused (DistillScheduleHook('
                "student_start=...)) needs the prototype branch with "
                "branch_head='own'; got learner="
                f'{None if self.learner is None else "..."}, branch_head='
                f'{self.branch_head!r} (a shared head is the student\'s, '
                'which the branch would train)')
        self._student_paused = value

    def __deepcopy__(self, memo: dict):
        """A copy shares the frozen teacher and its feature cache, which
        nothing trains, and copies the rest: mmengine's ``EMAHook`` copies
        the whole model to average it (:func:`deepcopy_sharing`)."""
        return deepcopy_sharing(self, memo,
                                ('_teacher', 'teacher_cache', 'branch_cache'))

    def train(self, mode: bool = True) -> 'ProtoDistiller':
        """The usual train/eval switch; a frozen branch stays in eval."""
        super().train(mode)
        if self._branch_frozen:
            for m in self._branch_modules():
                m.eval()
        return self

    @torch.no_grad()
    def prototype_assignments(self, inputs: Tensor
                              ) -> Tuple[List[Tensor], List[Tensor]]:
        """The learner's soft assignment and the augment's attention over
        the K prototypes at every prototype level, each (N, K, H, W) and
        summing to 1 over K, for preprocessed ``inputs``: what shows whether
        the prototypes have specialised (``assignment_entropy``). The teacher
        runs without the feature cache."""
        if self.learner is None:
            raise ValueError('ProtoDistiller: prototype_assignments needs '
                             'the prototype branch (learner)')
        feats = self.iface.extract(inputs)
        sizes = [feats[i].shape[-2:] for i in self.proto_levels]
        f_v, assigns = self.learner(
            self._teacher_features(inputs), sizes, return_assign=True)
        attns = [
            self.augment(f, self.learner.get_prototypes(j),
                         return_attn=True)[1] for j, f in enumerate(f_v)
        ]
        return assigns, attns

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

    def loss(self, inputs: Tensor, data_samples: list) -> LossDict:
        """Student loss plus the scaled distillation losses."""
        self._sync_prototypes()
        if self._student_paused:
            return self._branch_only_loss(inputs, data_samples)
        feats = self.iface.extract(inputs)
        if len(feats) != len(self.student_channels) or any(
                f.shape[1] != c for f, c in zip(feats, self.student_channels)):
            raise ValueError(
                'ProtoDistiller: student_channels='
                f'{self.student_channels} but the student features have '
                f'{[f.shape[1] for f in feats]} channels')
        if any(f.dim() != 4 for f in feats):
            raise ValueError(
                'ProtoDistiller: the student features must be maps '
                f'(N, C, H, W), got shapes {[tuple(f.shape) for f in feats]}'
                "; for a ViT classifier set the backbone out_type='featmap' "
                'and pool in the neck (GlobalAveragePooling)')
        student_losses, student_logits = self.iface.loss(
            inputs, feats, data_samples)
        losses = {f'student.{k}': v for k, v in student_losses.items()}
        scale = float(self.distill_scale)
        distill: LossDict = {}
        idx = self.distill_indices(inputs.shape[0]) if scale > 0 else None
        if scale > 0 and (idx is None or idx.numel() > 0):
            inputs, feats, data_samples, student_logits = take_images(
                idx, inputs, feats, data_samples, student_logits)
            teacher_feats = None
            if self.learner is not None:
                out = self._branch_outputs(inputs, feats, data_samples,
                                           distill, scale)
                proto_logits, teacher_feats = out.logits, out.teacher_feats
                if self.branch_feat_loss is not None:
                    distill['distill.loss_branch_feat'] = scale * \
                        self.branch_feat_loss(
                            [feats[i] for i in self.proto_levels], out.maps)
                if self.assign_loss is not None:
                    distill['distill.loss_assign'] = scale * \
                        self.assign_loss(
                            [feats[i] for i in self.proto_levels],
                            out.assigns, self.learner)
                kl_scale = float(self.kl_scale)
                if self.kl_loss is not None and kl_scale > 0:
                    valid = self.iface.ignore_masks(data_samples,
                                                    student_logits)
                    distill['distill.loss_kl'] = scale * kl_scale * \
                        self.kl_loss(student_logits, proto_logits, valid)
            if self.feat_loss is not None:
                if teacher_feats is None:
                    teacher_feats = self._teacher_features(
                        inputs, data_samples)
                distill['distill.loss_feat'] = scale * self.feat_loss(
                    feats, teacher_feats)
        losses.update(self._finish_distill(distill))
        return losses

    def _branch_only_loss(self, inputs: Tensor,
                          data_samples: list) -> LossDict:
        """The step of a paused student (:attr:`student_paused`): the
        branch's task loss alone."""
        if self._branch_frozen:
            raise RuntimeError(
                'ProtoDistiller: the student is paused and the branch is '
                'frozen, so nothing would train this step')
        with torch.no_grad(), keep_norm_stats(self.student):
            feats = self.iface.extract(inputs)
        scale = float(self.distill_scale)
        idx = self.distill_indices(inputs.shape[0])
        distill: LossDict = {}
        if scale > 0 and (idx is None or idx.numel() > 0):
            inputs, feats, data_samples, _ = take_images(
                idx, inputs, feats, data_samples, [])
            self._run_branch(inputs, feats, data_samples, distill, scale)
        return self._finish_distill(distill)

    def _finish_distill(self, distill: LossDict) -> LossDict:
        """The step's distillation losses: none if one is not finite and
        ``nan_guard`` drops them (the step counts for ``max_nan_steps``),
        and a zero that touches every distillation parameter when no loss
        that counts is left (for DDP)."""
        if distill and (self.nan_guard or self.max_nan_steps is not None):
            bad = [
                k for k, v in distill.items() if 'loss' in k and not _finite(v)
            ]
            self._count_nan_steps(bad)
            if bad and self.nan_guard:
                self.nan_skips += 1
                MMLogger.get_current_instance().warning(
                    f'ProtoDistiller: non-finite distillation loss {bad}, '
                    f'dropped for this step ({self.nan_skips} so far)')
                distill = {}
        if not any('loss' in k
                   for k in distill if not self._frozen_log_key(k)):
            zero = self._touch_distill_params()
            if zero is not None:
                distill['distill.loss_zero'] = zero
        return distill

    def _run_branch(self, inputs: Tensor, feats: Tuple[Tensor, ...],
                    data_samples: list, distill: LossDict,
                    scale: float) -> BranchOutputs:
        """The prototype branch on these images: its head's logits, its
        prototype-level maps and assignments; its task losses go into
        ``distill``."""
        teacher_feats = self._teacher_features(inputs, data_samples)
        own = self.branch_student is not None
        frozen = self._branch_frozen
        # a frozen branch is a fixed teacher: no graph, no task loss
        with torch.no_grad() if frozen else nullcontext():
            proto_feats, assigns = self.prototype_branch(
                teacher_feats, feats, return_assign=True)
            proto_losses, proto_logits = {}, []
            # a query detector's head computes its loss only in training
            # mode (denoising queries), and nothing reads its logits: a
            # frozen branch gives it its maps alone
            if not (frozen and self.branch_iface.kl_unsupported):
                proto_losses, proto_logits = self.branch_iface.loss(
                    inputs,
                    proto_feats,
                    data_samples,
                    param_grad=not frozen and (own or self.proto_head_grad),
                    update_stats=own and not frozen)
        # a frozen branch's losses are still logged, under the same keys, so
        # the log shows how the fixed teacher does on each batch;
        # parse_losses keeps them out of the total
        for k, v in proto_losses.items():
            distill[f'distill.proto.{k}'] = _scale(v, self.proto_weight *
                                                   scale) if 'loss' in k else v
        if self.branch_pseudo_loss is not None and not frozen:
            unlabelled = self.branch_iface.unlabelled(data_samples)
            if unlabelled:
                loss, ratio = self.branch_pseudo_loss(
                    proto_logits[0][unlabelled])
                distill['distill.proto.loss_pseudo'] = \
                    loss * self.proto_weight * scale
                distill['distill.proto.pseudo_ratio'] = ratio
        return BranchOutputs(
            list(proto_logits), [proto_feats[i] for i in self.proto_levels],
            [a.detach() for a in assigns], teacher_feats)

    def _branch_outputs(self, inputs: Tensor, feats: Tuple[Tensor, ...],
                        data_samples: list, distill: LossDict,
                        scale: float) -> BranchOutputs:
        """The branch's logits, prototype-level maps and assignments for
        the batch, and the teacher features if they were computed for all
        of it; a frozen branch with ``branch_cache`` runs only on the
        images it lacks (and caches the maps and assignments only if a
        loss reads them)."""
        if not (self._branch_frozen and self.branch_cache is not None):
            return self._run_branch(inputs, feats, data_samples, distill,
                                    scale)
        keys = [sample_key(s, inputs.shape[-2:]) for s in data_samples]

        def run(idx: Tensor) -> BranchOutputs:
            sub_inputs, sub_feats, sub_samples, _ = take_images(
                idx, inputs, feats, data_samples, [])
            return self._run_branch(sub_inputs, sub_feats, sub_samples,
                                    distill, scale)

        return cached_branch_outputs(self.branch_cache, keys, inputs.device,
                                     run, len(self.proto_levels),
                                     self.branch_feat_loss is not None,
                                     self.assign_loss is not None)

    def parse_losses(self, losses: LossDict) -> Tuple[Tensor, dict]:
        """mmengine's total loss, which is backpropagated as it is, and
        log variables that are, under DDP, the mean over the ranks
        (``log_rank_mean``; :class:`RankMeanLogVars` for the keys that only
        some ranks log). Called on every rank at every training step."""
        frozen = {k: v for k, v in losses.items() if self._frozen_log_key(k)}
        loss, log_vars = super().parse_losses({
            k: v
            for k, v in losses.items() if k not in frozen
        })
        for k, v in frozen.items():  # logged, not trained
            log_vars[k] = (v if isinstance(v, Tensor) else sum(
                x.mean() for x in v)).detach().mean()
        if self.log_rank_mean:
            log_vars = self._rank_mean(log_vars)
        return loss, log_vars

    def _frozen_log_key(self, key: str) -> bool:
        """Whether ``key`` is a frozen branch's loss: logged, kept out of
        the total (:attr:`branch_frozen`)."""
        return self._branch_frozen and key.startswith('distill.proto.')

    def _count_nan_steps(self, bad: List[str]) -> None:
        """Count consecutive steps with a non-finite distillation loss.

        Args:
            bad (list[str]): The loss keys that are not finite this step;
                empty for a finite step, which resets the count.

        Raises:
            RuntimeError: at the ``max_nan_steps``-th consecutive step.
        """
        self.nan_streak = self.nan_streak + 1 if bad else 0
        if self.max_nan_steps is not None and \
                self.nan_streak >= self.max_nan_steps:
            raise RuntimeError(
                f'ProtoDistiller: the distillation loss {bad} was not finite '
                f'for {self.nan_streak} consecutive steps (max_nan_steps='
                f'{self.max_nan_steps}); stopping rather than training the '
                'student without distillation; check the teacher checkpoint, '
                'the learning rate and the distillation loss weights')

    def extra_repr(self) -> str:
        return (f'teacher={type(self._teacher.model).__name__} '
                f'layers={self._teacher.layers}, '
                f'proto_levels={self.proto_levels}')
