"""ProtoDistiller's prototype branch (:class:`PrototypeBranch`): the
learner, the augment, the level adapter and the branch's own head, their
freezing, the cache of a frozen branch's outputs and the student's pause.

The branch's modules are attributes of the distiller itself (``learner``,
``augment``, ``level_adapter``, ``branch_student``), so its checkpoints keep
the keys ``learner.*``, ``augment.*``, ... whatever file builds them.
"""
import copy
from contextlib import nullcontext
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from mmprockd.registry import MODELS
from ..plugins.task_adaptive_augment import TaskAdaptiveAugment
from .base_distiller import LossDict
from .branch_io import (BranchOutputs, cached_branch_outputs,
                        load_branch_checkpoint)
from .distill_sampler import take_images
from .student_interface import StudentInterface, keep_norm_stats
from .teacher_cache import sample_key

BRANCH_MODULES = ('learner', 'augment', 'level_adapter', 'branch_student')


def _scale(value: Union[Tensor, List[Tensor]], factor: float):
    if isinstance(value, (list, tuple)):
        return [v * factor for v in value]
    return value * factor


class PrototypeBranch:
    """The prototype branch, mixed into :class:`ProtoDistiller`.

    It reads the distiller's ``student``, ``iface``, ``student_channels``,
    ``proto_levels``, ``branch_head``, ``proto_weight``,
    ``proto_head_grad``, ``sync_student_prototypes``, ``branch_cache``,
    ``branch_feat_loss``, ``branch_pseudo_loss``, ``assign_loss``,
    ``box_loss`` and its teacher features (``_teacher_features``).
    """

    # ------------------------------------------------------------- building
    def _build_branch(self, learner: dict, augment: Optional[dict],
                      level_adapter: Optional[dict],
                      teacher_channels: List[int]) -> None:
        """The learner on the teacher's layers, the augment, the level
        adapter to the student's prototype levels and, with
        ``branch_head='own'``, the branch's own copy of the heads."""
        self._branch_frozen = False  # DistillScheduleHook(branch_stop=...)
        self._student_paused = False  # DistillScheduleHook(student_start=)
        # input (C, H, W) -> the student's map shapes (_paused_student_feats)
        self._paused_shapes: Dict[tuple, list] = {}
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
        augment = dict(augment or dict(type='mmprockd.TaskAdaptiveAugment'))
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
        self.branch_student = None
        self.branch_iface = self.iface
        if self.branch_head == 'own':
            self.branch_student = self._copy_heads()
            self.branch_iface = StudentInterface.from_model(
                self.branch_student)

    def _copy_heads(self) -> torch.nn.Module:
        """The student with its own weights for the heads, and no backbone
        (the branch gives the features). Detectors and segmentors lose
        their neck too (``extract_feat`` is replaced as a whole);
        classifiers keep it (it pools the given maps)."""
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
        if not self.sync_student_prototypes:
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

    def _sync_prototypes(self) -> None:
        """Copy the learned prototypes into the student's plugins."""
        if not self.sync_student_prototypes:
            return
        protos = self.learner.get_prototypes(0)
        for m in self._student_plugins():
            m.set_prototypes(protos)

    def _load_branch(self, path: str) -> None:
        """Load every branch module from a ProtoDistiller checkpoint,
        strictly (:func:`load_branch_checkpoint`)."""
        load_branch_checkpoint(self, path, BRANCH_MODULES)

    def branch_cache_refusal(self, branch_head: str) -> Optional[str]:
        """Why ``branch_cache`` cannot serve this model's frozen branch, or
        None if it can: its output must be a fixed function of the image,
        so the branch needs its own head, and that head may read no student
        level the branch does not replace."""
        if branch_head != 'own':
            return ("branch_cache needs the prototype branch with "
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

    # --------------------------------------------------------- the forward
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

    @torch.no_grad()
    def prototype_assignments(self, inputs: Tensor
                              ) -> Tuple[List[Tensor], List[Tensor]]:
        """The learner's soft assignment and the augment's attention over
        the K prototypes at every prototype level, each (N, K, H, W) and
        summing to 1 over K, for preprocessed ``inputs``: what shows whether
        the prototypes have specialised (``assignment_entropy``). The teacher
        runs without the feature cache."""
        feats = self.iface.extract(inputs)
        sizes = [feats[i].shape[-2:] for i in self.proto_levels]
        f_v, assigns = self.learner(
            self._teacher_features(inputs), sizes, return_assign=True)
        attns = [
            self.augment(f, self.learner.get_prototypes(j),
                         return_attn=True)[1] for j, f in enumerate(f_v)
        ]
        return assigns, attns

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
        boxes = list(self.branch_iface.last_boxes) \
            if self.box_loss is not None and proto_logits else []
        return BranchOutputs(
            list(proto_logits), [proto_feats[i] for i in self.proto_levels],
            [a.detach() for a in assigns], teacher_feats, boxes)

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
                                     self.assign_loss is not None,
                                     self.box_loss is not None)

    # ------------------------------------------------------- the schedule
    def _branch_modules(self) -> List[torch.nn.Module]:
        return [
            getattr(self, name) for name in BRANCH_MODULES
            if getattr(self, name) is not None
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
        if value != self._branch_frozen and self.branch_cache is not None:
            self.branch_cache.clear()  # outputs of another branch state
        self._branch_frozen = value
        for m in self._branch_modules():
            m.train(self.training and not value)

    @property
    def student_paused(self) -> bool:
        """[ours] Whether only the prototype branch trains (set by
        ``DistillScheduleHook(student_start=...)``): the student runs
        without gradient, its norm buffers kept, to give the branch its
        level sizes (and the detached maps of any level the branch does
        not replace; when it replaces every level its head reads, once per
        input size: :meth:`_paused_student_feats`); its loss, the KL and
        the feature losses are not computed, so its parameters, buffers and
        optimizer state stay as they were built. Two-stage ProC-KD in one
        run: the branch's stage first, then a student that starts from its
        init (docs/method.md)."""
        return self._student_paused

    def _paused_student_feats(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """The student's maps for a step of the branch alone.

        When the branch's own head reads only levels the branch replaces
        (:meth:`branch_cache_refusal` has no objection), nothing of the
        student's maps but their shapes reaches the branch: the student
        runs on the first batch of each input size, and zeros of the
        shapes it gave (one element each, expanded) stand in afterwards.
        That saves the student's forward on every other step of the branch
        phase. Otherwise the student runs every step."""
        key = tuple(inputs.shape[1:])
        shapes = self._paused_shapes.get(key)
        if shapes is not None:  # one zero each, expanded: no memory
            n = inputs.shape[0]
            return tuple(
                inputs.new_zeros((), dtype=dtype).expand((n, ) + shape)
                for shape, dtype in shapes)
        with torch.no_grad(), keep_norm_stats(self.student):
            feats = self.iface.extract(inputs)
        if self.branch_cache_refusal('own') is None:
            self._paused_shapes[key] = [(tuple(f.shape[1:]), f.dtype)
                                        for f in feats]
        return feats

    @student_paused.setter
    def student_paused(self, value: bool) -> None:
        value = bool(value)
        if value and self.branch_student is None:
            raise ValueError(
                'ProtoDistiller: student_paused (DistillScheduleHook('
                "student_start=...)) needs the prototype branch with "
                f"branch_head='own'; got branch_head={self.branch_head!r} "
                "(a shared head is the student's, which the branch would "
                'train)')
        self._student_paused = value

    def _log_only_key(self, key: str) -> bool:
        """Whether ``key`` is a frozen branch's loss: logged, kept out of
        the total (:attr:`branch_frozen`)."""
        return self._branch_frozen and key.startswith('distill.proto.')

    def train(self, mode: bool = True):
        """The usual train/eval switch; a frozen branch stays in eval."""
        super().train(mode)
        if self._branch_frozen:
            for m in self._branch_modules():
                m.eval()
        return self
