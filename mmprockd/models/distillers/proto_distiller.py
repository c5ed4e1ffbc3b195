"""ProtoDistiller: ProC-KD around any mmdet / mmseg / mmpretrain student.

Li, Li, Wu, Han, "Prototype-guided cross-task knowledge distillation",
FITEE 26(6), 2025 (arXiv 2212.13180). Our reading of the method and every
switch below are in ``docs/method.md``.
"""
import os.path as osp
from typing import Optional, Sequence

from torch import Tensor

from mmprockd.registry import MODELS
from .base_distiller import LossDict
from .branch_io import BranchOutputs
from .build_checks import check_student_channels, check_sub_configs, kl_refusal
from .distill_sampler import take_images
from .feature_distiller import FeatureDistiller
from .prototype_branch import PrototypeBranch
from .teacher_cache import TeacherFeatureCache


@MODELS.register_module()
class ProtoDistiller(PrototypeBranch, FeatureDistiller):
    """Prototype-guided cross-task distillation of a frozen teacher.

    The teacher was trained for another task (ImageNet classification), so
    its features cannot be copied into the student as they are. ProC-KD
    sums them up as prototypes and lets the student's own task decide what
    of them counts:

    1. the student computes its own task loss on its own features
       (``student.*``);
    2. the prototype branch: the frozen teacher's layers are fused and
       summarised by the :class:`PrototypeLearner`, augmented by
       :class:`TaskAdaptiveAugment` with the same prototypes, aligned to
       each student level and given to the student's head (or a copy of
       it), which must solve the student's task from them
       (``distill.proto.*``; :class:`PrototypeBranch`);
    3. the student learns from the branch: a KL makes its predictions
       consistent with the branch's (``distill.loss_kl``), optionally with
       [ours] feature and assignment paths (``distill.loss_branch_feat``,
       ``distill.loss_assign``) and PKD to the teacher itself
       (``distill.loss_feat``).

    ``predict`` and ``tensor`` run the student alone. The feature-mimic
    baseline without the branch is :class:`PKDDistiller`. What each
    argument does, and why, is in docs/method.md ("One training step",
    "Recipe switches" and "The distillers").

    Args:
        student (dict): the student model config; its data preprocessor is
            the distiller's.
        teacher (dict): :class:`FrozenTeacher` config.
        student_channels (Sequence[int]): channels of every student feature
            level, e.g. ``[256] * 5`` for RetinaNet's FPN.
        learner (dict): :class:`PrototypeLearner` config; ``num_levels`` and
            ``in_channels`` are filled in.
        augment (dict, optional): :class:`TaskAdaptiveAugment` config.
        proto_levels (Sequence[int], optional): the student levels the
            branch produces; all by default.
        proto_weight (float): weight of the branch's task loss.
        level_adapter (dict, optional): extra arguments of the
            :class:`LevelAdapter` that ends the branch [ours].
        branch_head (str): ``'shared'`` (the authors') or ``'own'`` [ours],
            a copy of the student's heads with its own weights.
        proto_head_grad (bool): whether the branch's task loss also trains
            the student's (shared) head.
        kl_loss (dict, optional): :class:`ConsistencyKLLoss` config; its
            ``kind`` defaults to the student head's.
        feat_loss (dict, optional): :class:`FeatureMimicLoss` config, PKD
            beside the branch; channels are filled in.
        branch_feat_loss (dict, optional): [ours] :class:`BranchMimicLoss`.
        branch_pseudo_loss (dict, optional): [ours] :class:`PseudoLabelLoss`
            on the unlabelled images of a classification transfer set.
        assign_loss (dict, optional): [ours] :class:`PrototypeAssignLoss`.
        box_loss (dict, optional): [ours] :class:`BoxDistillLoss`: the
            student's box deltas towards the branch's (dense detectors);
            its ``kind`` defaults to the student head's.
        kd_head (str): which head gives the student's predictions that the
            KL and ``box_loss`` compare with the branch's: ``'student'``
            (its own head; the default) or ``'branch'``: the student's maps
            through the branch's own head, its parameters detached, so the
            gradient trains the maps only (after CrossKD, Wang et al.,
            CVPR 2024; needs ``branch_head='own'``).
        student_ckpt (str, optional): start the student from these weights.
        branch_ckpt (str, optional): [ours] start the branch from this
            ProtoDistiller checkpoint's (needs ``branch_head='own'``).
        sync_student_prototypes (bool): copy the prototypes into every
            :class:`TaskAdaptiveAugment` of the student before each step.
        nan_guard (bool), max_nan_steps (int, optional): the
            :class:`NanGuard`.
        distill_fraction (float): expected fraction of each batch's images
            that the teacher and the distillation terms use.
        teacher_cache (dict, optional): :class:`TeacherFeatureCache`
            arguments; deterministic pipelines only.
        branch_cache (dict, optional): [ours] :class:`TeacherFeatureCache`
            arguments for a frozen branch's outputs.
        log_rank_mean (bool): log the mean of every loss over the ranks.
        data_preprocessor (dict, optional): the student's when its own
            config has none.
        init_cfg (dict, optional): initialisation config.
    """

    shared_on_copy = ('_teacher', 'teacher_cache', 'branch_cache')
    distill_modules = ('learner', 'augment', 'level_adapter', 'feat_loss',
                       'branch_student', 'assign_loss')

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
                 box_loss: Optional[dict] = None,
                 kd_head: str = 'student',
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
        check_sub_configs(locals())
        if learner is None:
            raise ValueError(
                'ProtoDistiller: learner=None: the prototype branch is what '
                'this distiller is. For the feature-mimic baseline (PKD, '
                "feat_loss) use type='mmprockd.PKDDistiller' with student, "
                'teacher, student_channels and feat_loss (drop learner, '
                'augment and kl_loss)')
        if branch_head not in ('shared', 'own'):
            raise ValueError("ProtoDistiller: branch_head must be 'shared' "
                             f"or 'own', got {branch_head!r}")
        if kd_head not in ('student', 'branch'):
            raise ValueError("ProtoDistiller: kd_head must be 'student' or "
                             f"'branch', got {kd_head!r}")
        if kd_head == 'branch' and branch_head != 'own':
            raise ValueError(
                "ProtoDistiller: kd_head='branch' runs the student's maps "
                "through the branch's own head; it needs branch_head='own', "
                f'got branch_head={branch_head!r}')
        self.kd_head = kd_head
        if branch_ckpt is not None:
            if '://' not in branch_ckpt and not osp.isfile(branch_ckpt):
                raise FileNotFoundError(
                    f'ProtoDistiller: branch_ckpt {branch_ckpt!r} does not '
                    'exist (a ProtoDistiller checkpoint with the prototype '
                    'branch)')
            if branch_head != 'own':
                raise ValueError(
                    "ProtoDistiller: branch_ckpt needs branch_head='own', "
                    f'got branch_head={branch_head!r} (a shared head is the '
                    "new student's, untrained)")
        super().__init__(student, teacher, student_channels, student_ckpt,
                         nan_guard, max_nan_steps, distill_fraction,
                         teacher_cache, log_rank_mean, data_preprocessor,
                         init_cfg, dict(branch_cache=branch_cache))
        n_levels = len(self.student_channels)
        self.proto_levels = list(
            range(n_levels) if proto_levels is None else proto_levels)
        bad = [i for i in self.proto_levels if not 0 <= i < n_levels]
        if bad:
            raise ValueError(f'ProtoDistiller: proto_levels {bad} outside '
                             f'the {n_levels} student levels')
        self.proto_weight = proto_weight
        self.branch_head = branch_head
        self.proto_head_grad = proto_head_grad
        self.branch_ckpt = branch_ckpt
        self.sync_student_prototypes = sync_student_prototypes
        self.branch_cache = None
        if branch_cache is not None:
            why = self.branch_cache_refusal(branch_head)
            if why:
                raise ValueError(f'ProtoDistiller: {why}')
            self.branch_cache = TeacherFeatureCache(**branch_cache)
        self._build_branch(learner, augment, level_adapter,
                           self.teacher_channels)
        self._build_losses(kl_loss, feat_loss, branch_feat_loss,
                           branch_pseudo_loss, assign_loss)
        self._build_box_loss(box_loss)
        self._check_student_plugins()
        self._end_build()

    def _build_losses(self, kl_loss, feat_loss, branch_feat_loss,
                      branch_pseudo_loss, assign_loss) -> None:
        """The losses through which the student learns (and the branch's
        pseudo-label loss), their channels filled in."""
        self.kl_loss = None
        if kl_loss is not None:
            if self.iface.kl_unsupported:
                raise ValueError(
                    kl_refusal(self.iface.kl_unsupported, self.branch_head,
                               branch_feat_loss))
            self.kl_loss = MODELS.build(
                dict(dict(kind=self.iface.kl_kind), **kl_loss))
        self._build_feat_loss(feat_loss)
        check_student_channels(self.iface, self.student_channels)
        self.branch_feat_loss = None if branch_feat_loss is None else \
            MODELS.build(branch_feat_loss)
        self.branch_pseudo_loss = None
        if branch_pseudo_loss is not None:
            if self.iface.family != 'cls':
                raise ValueError(
                    'ProtoDistiller: branch_pseudo_loss labels the unlabelled '
                    'images of a classification transfer set with the '
                    'prototype branch; it needs a classifier student, got a '
                    f'{self.iface.family!r} student')
            self.branch_pseudo_loss = MODELS.build(branch_pseudo_loss)
        self.assign_loss = None
        if assign_loss is not None:
            levels = [self.student_channels[i] for i in self.proto_levels]
            self.assign_loss = MODELS.build(
                dict(
                    dict(
                        student_channels=levels,
                        channels=self.learner.channels), **assign_loss))

    def _build_box_loss(self, box_loss: Optional[dict]) -> None:
        """[ours] Box distillation, for dense detection heads only; and
        ``kd_head='branch'`` for the heads that take maps."""
        self.box_loss = None
        if self.kd_head == 'branch' and self.iface.family == 'cls':
            raise ValueError(
                "ProtoDistiller: kd_head='branch' runs the student's maps "
                "through the branch's head; a classifier's head takes pooled "
                "vectors, not maps. Use kd_head='student'")
        if box_loss is None:
            return
        if self.iface.family != 'det' or self.iface.kl_unsupported:
            raise ValueError(
                'ProtoDistiller: box_loss distils the box deltas of a dense '
                'detection head (RetinaNet, FCOS, ...); this student is a '
                f'{self.iface.family!r} model with '
                f'{type(self.iface.logit_head).__name__}. Set box_loss=None')
        self.box_loss = MODELS.build(
            dict(dict(kind=self.iface.kl_kind), **box_loss))

    def init_weights(self) -> None:
        super().init_weights()
        if self.branch_ckpt is not None:
            self._load_branch(self.branch_ckpt)

    # ----------------------------------------------------------- the losses
    def loss(self, inputs: Tensor, data_samples: list) -> LossDict:
        """Student loss plus the scaled distillation losses."""
        self._sync_prototypes()
        if self._student_paused:
            return self._branch_only_loss(inputs, data_samples)
        losses, feats, logits = self._student_step(inputs, data_samples)
        n_logits = len(logits)
        if self.box_loss is not None:  # subset with the logits
            logits = logits + list(self.iface.last_boxes)
        scale = float(self.distill_scale)
        distill: LossDict = {}
        batch = self._distill_batch(scale, inputs, feats, data_samples, logits)
        if batch is not None:
            inputs, feats, data_samples, heads = batch
            out = self._branch_outputs(inputs, feats, data_samples, distill,
                                       scale)
            distill.update(
                self._from_branch(out, feats, data_samples, heads[:n_logits],
                                  heads[n_logits:], scale))
            if self.feat_loss is not None:
                teacher_feats = out.teacher_feats
                if teacher_feats is None:
                    teacher_feats = self._teacher_features(
                        inputs, data_samples)
                distill['distill.loss_feat'] = scale * self.feat_loss(
                    feats, teacher_feats)
        losses.update(self._finish_distill(distill))
        return losses

    def _from_branch(self, out: BranchOutputs, feats: Sequence[Tensor],
                     data_samples: list, logits: list, boxes: list,
                     scale: float) -> LossDict:
        """What the student learns from the branch's outputs ``out``: its
        features, assignments and predictions (``logits`` and the box
        deltas ``boxes`` of the student's head, or with ``kd_head='branch'``
        of the branch's head on the student's maps)."""
        distill: LossDict = {}
        kl_scale = float(self.kl_scale)
        heads = (self.kl_loss is not None or self.box_loss is not None) \
            and kl_scale > 0
        if heads and self.kd_head == 'branch':
            logits = self.branch_iface.head_outputs(tuple(feats))
            boxes = self.branch_iface.last_boxes
        levels = [feats[i] for i in self.proto_levels]
        if self.branch_feat_loss is not None:
            distill['distill.loss_branch_feat'] = scale * \
                self.branch_feat_loss(levels, out.maps)
        if self.assign_loss is not None:
            distill['distill.loss_assign'] = scale * self.assign_loss(
                levels, out.assigns, self.learner)
        if self.kl_loss is not None and kl_scale > 0:
            valid = self.iface.ignore_masks(data_samples, logits)
            distill['distill.loss_kl'] = scale * kl_scale * self.kl_loss(
                logits, out.logits, valid)
        if self.box_loss is not None and kl_scale > 0:
            distill['distill.loss_box'] = scale * kl_scale * self.box_loss(
                boxes, out.boxes, out.logits)
        return distill

    def _branch_only_loss(self, inputs: Tensor,
                          data_samples: list) -> LossDict:
        """The step of a paused student (:attr:`student_paused`): the
        branch's task loss alone."""
        if self._branch_frozen:
            raise RuntimeError(
                'ProtoDistiller: the student is paused and the branch is '
                'frozen, so nothing would train this step')
        feats = self._paused_student_feats(inputs)
        scale = float(self.distill_scale)
        idx = self.distill_indices(inputs.shape[0])
        distill: LossDict = {}
        if scale > 0 and (idx is None or idx.numel() > 0):
            inputs, feats, data_samples, _ = take_images(
                idx, inputs, feats, data_samples, [])
            self._run_branch(inputs, feats, data_samples, distill, scale)
        return self._finish_distill(distill)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, proto_levels={self.proto_levels}'
