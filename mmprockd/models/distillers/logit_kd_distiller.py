"""LogitKDDistiller: plain KD from a frozen model of the student's own task.

The second stage of the *probe-then-distil* baseline of docs/benchmark.md:
first a model of the student's task is trained on the frozen cross-task
teacher's features (a "probe": the student's head and neck on the frozen
ImageNet backbone, ``configs/benchmark/probe_*.py``), then its predictions
are distilled into the student with the KL of
:class:`~mmprockd.models.losses.ConsistencyKLLoss` (Hinton et al.'s KD for
classifiers and segmentors; the per-anchor Bernoulli KL for sigmoid dense
detectors). ProC-KD does both stages end to end; this is the two-stage
baseline it has to beat.

The frozen model can be any mmdet dense detector, mmseg segmentor or
mmpretrain classifier whose head gives logits of the same layout as the
student's (same classes, same anchors and strides, same output grid),
checked at the first step. It is held outside the module tree like
:class:`ProtoDistiller`'s teacher: never saved, never trained, always in
eval mode.
"""
import os.path as osp
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from torch import Tensor

from mmprockd.registry import MODELS
from .base_distiller import BaseDistiller
from .frozen_teacher import student_input_convention
from .student_interface import StudentInterface


def _model_config(model: Union[str, dict]) -> dict:
    """A model config, or the ``model`` of a config file."""
    if isinstance(model, dict):
        return model
    from mmengine.config import Config
    if model.startswith('mmprockd::'):
        from mmprockd.utils import get_config_path
        model = get_config_path(model[len('mmprockd::'):])
    elif '::' in model:  # mmdet::, mmpretrain::, ... (mmengine's hub)
        from mmengine.hub import get_config
        return get_config(model).model
    if not osp.isfile(model):
        raise FileNotFoundError(
            f'LogitKDDistiller: teacher config {model!r} does not exist')
    return Config.fromfile(model).model


def _convention(preprocessor) -> tuple:
    """What a preprocessor does to the loaded image, comparable with ``==``
    (:func:`student_input_convention`: mean and std, or None, and whether
    it reverses the channel order)."""
    mean, std, flips = student_input_convention(preprocessor)
    rounded = [
        None if t is None else [round(float(v), 4) for v in t]
        for t in (mean, std)
    ]
    return (*rounded, flips)


@MODELS.register_module()
class LogitKDDistiller(BaseDistiller):
    """Distil the predictions of a frozen, trained model into a student.

    Args:
        student (dict): the student model config (mmdet dense detector,
            mmseg segmentor or mmpretrain classifier).
        teacher (dict | str): the frozen model: a model config, or the path
            of a config file whose ``model`` it is (``mmdet::``-style paths
            work). Its data preprocessor must normalise as the student's.
        teacher_ckpt (str): its trained weights (a checkpoint of that
            config, e.g. ``iter_400.pth`` of its run), loaded strictly.
        kl_loss (dict): :class:`ConsistencyKLLoss` config; ``kind`` defaults
            to the student head's (sigmoid for RetinaNet).
        feat_loss (dict, optional): [ours] a loss between the student's
            features and the frozen model's of the same shapes
            (``extract``: backbone and neck for dense detectors, e.g.
            :class:`BranchMimicLoss`, PKD without a projector), logged as
            ``distill.loss_feat``: probe-then-distil with the frozen
            probe's FPN as a feature target, the baseline matched to
            two-stage ProC-KD with ``branch_feat_loss``.
        teacher_input_scale (float): [ours] the frozen model sees the
            student's batch resized by this factor (bilinear, as
            :class:`FrozenTeacher`'s ``input_scale``), e.g. 3.5 for a probe
            on an ImageNet backbone trained on 64 px images upsampled to
            224 px. Not with ``feat_loss`` (its features would be at another
            resolution than the student's). Defaults to 1.0.
        data_preprocessor (dict, optional): handed to the student when its
            own config has none (as :class:`ProtoDistiller` does).
        log_rank_mean (bool): log every loss as its mean over the DDP ranks.
            Defaults to True.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 student: dict,
                 teacher: Union[str, dict],
                 teacher_ckpt: str,
                 kl_loss: dict,
                 feat_loss: Optional[dict] = None,
                 teacher_input_scale: float = 1.0,
                 data_preprocessor: Optional[dict] = None,
                 log_rank_mean: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        if not teacher_ckpt or ('://' not in teacher_ckpt
                                and not osp.isfile(teacher_ckpt)):
            raise FileNotFoundError(
                f'LogitKDDistiller: teacher_ckpt {teacher_ckpt!r} does not '
                'exist (the trained weights of the frozen model)')
        if not float(teacher_input_scale) > 0:
            raise ValueError('LogitKDDistiller: teacher_input_scale must be '
                             f'> 0, got {teacher_input_scale!r}')
        if feat_loss is not None and float(teacher_input_scale) != 1.0:
            raise ValueError(
                'LogitKDDistiller: feat_loss needs teacher_input_scale 1.0 '
                f'(got {teacher_input_scale}): the frozen model\'s features '
                "would not be on the student's grid")
        super().__init__(student, data_preprocessor, log_rank_mean, init_cfg)
        self.teacher_input_scale = float(teacher_input_scale)
        model = _model_config(teacher)
        if data_preprocessor is not None and \
                model.get('data_preprocessor') is None:
            model = dict(model, data_preprocessor=data_preprocessor)
        frozen = MODELS.build(model)
        # the frozen model's build drew from the RNG: the student starts as
        # it does alone with the same seed
        self._end_build()
        ours = _convention(self.student.data_preprocessor)
        theirs = _convention(frozen.data_preprocessor)
        if ours != theirs:
            raise ValueError(
                'LogitKDDistiller: the frozen model preprocesses its input '
                f'as (mean, std, channel flip) {theirs}, the student as '
                f"{ours}; they must agree (the frozen model is given the "
                "student's batch)")
        from mmengine.runner import load_checkpoint
        load_checkpoint(
            frozen,
            teacher_ckpt,
            map_location='cpu',
            strict=True,
            logger=MMLogger.get_current_instance())
        frozen.eval()
        frozen.requires_grad_(False)
        self._hold_teacher(frozen)
        self.teacher_iface = StudentInterface.from_model(frozen)
        if self.iface.kl_unsupported:
            raise ValueError('LogitKDDistiller: no KL for this student: '
                             f'{self.iface.kl_unsupported}')
        if self.teacher_iface.kl_kind != self.iface.kl_kind:
            raise ValueError(
                f'LogitKDDistiller: the frozen model\'s head gives '
                f'{self.teacher_iface.kl_kind} scores, the student\'s '
                f'{self.iface.kl_kind}; the KL needs the same kind')
        kl_loss = dict(kl_loss)
        kl_loss.setdefault('kind', self.iface.kl_kind)
        self.kl_loss = MODELS.build(kl_loss)
        self.feat_loss = None if feat_loss is None else MODELS.build(feat_loss)

    def teacher_logits(self, inputs: Tensor) -> List[Tensor]:
        """The frozen model's head logits on the student's batch (it
        follows the batch's device on first use)."""
        return self.teacher_outputs(inputs)[1]

    def teacher_outputs(self, inputs: Tensor
                        ) -> Tuple[Tuple[Tensor, ...], List[Tensor]]:
        """The frozen model's features (``extract``) and head logits on the
        student's batch (resized by ``teacher_input_scale``), from one
        pass."""
        if next(self._teacher.parameters()).device != inputs.device:
            self._teacher.to(inputs.device)
        if self.teacher_input_scale != 1.0:
            inputs = F.interpolate(
                inputs,
                scale_factor=self.teacher_input_scale,
                mode='bilinear',
                align_corners=False)
        with torch.no_grad():
            return self.teacher_iface.forward_feats_and_logits(inputs)

    def loss(self, inputs: Tensor,
             data_samples: list) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """The student's loss and the scaled KL to the frozen model."""
        feats = self.iface.extract(inputs)
        student_losses, student_logits = self.iface.loss(
            inputs, feats, data_samples)
        losses = {f'student.{k}': v for k, v in student_losses.items()}
        scale = float(self.distill_scale) * float(self.kl_scale)
        teacher_feats, target = self.teacher_outputs(inputs)
        shapes = [tuple(t.shape) for t in target]
        if shapes != [tuple(s.shape) for s in student_logits]:
            raise ValueError(
                'LogitKDDistiller: the frozen model\'s logits have shapes '
                f'{shapes}, the student\'s '
                f'{[tuple(s.shape) for s in student_logits]}; both heads '
                'must predict the same classes on the same grid (anchors, '
                'strides, output size)')
        valid = self.iface.ignore_masks(data_samples, student_logits)
        losses['distill.loss_kl'] = scale * self.kl_loss(
            student_logits, target, valid)
        if self.feat_loss is not None:
            losses['distill.loss_feat'] = float(self.distill_scale) * \
                self.feat_loss(feats, teacher_feats)
        return losses
