"""PKDDistiller: the feature-mimic baseline, no prototype branch."""
from typing import Sequence

from torch import Tensor

from mmprockd.registry import MODELS
from .base_distiller import LossDict
from .build_checks import check_student_channels, check_sub_configs
from .feature_distiller import FeatureDistiller


@MODELS.register_module()
class PKDDistiller(FeatureDistiller):
    """PKD (Cao et al. 2022): the student's feature levels pulled towards
    the frozen teacher's maps.

    The baseline ProC-KD is measured against (docs/benchmark.md) and, on
    the classification proxy, our recommended recipe
    (``configs/_base_/recipes/pkd_cls.py``). The loss is
    :class:`FeatureMimicLoss`: every student level and the teacher's layers
    (resized, concatenated) standardised per channel, joined by a 1x1
    connector on the student's side, or on the teacher's with
    ``projector='teacher'`` (the inverted projection, Auty et al. 2024).
    It is logged as ``distill.loss_feat``, beside the student's own loss
    (``student.*``). ``predict`` and ``tensor`` run the student alone.

    Args:
        student (dict): the student model config.
        teacher (dict): :class:`FrozenTeacher` config.
        student_channels (Sequence[int]): channels of every student feature
            level, e.g. ``[256] * 5`` for RetinaNet's FPN.
        feat_loss (dict): :class:`FeatureMimicLoss` config; the channels are
            filled in.
        **kwargs: ``student_ckpt``, ``nan_guard``, ``max_nan_steps``,
            ``distill_fraction``, ``teacher_cache``, ``log_rank_mean``,
            ``data_preprocessor`` and ``init_cfg``, as
            :class:`FeatureDistiller` (and :class:`ProtoDistiller`) take
            them.
    """

    def __init__(self, student: dict, teacher: dict,
                 student_channels: Sequence[int], feat_loss: dict,
                 **kwargs) -> None:
        name = type(self).__name__
        check_sub_configs(
            dict(student=student, teacher=teacher, feat_loss=feat_loss), name)
        if feat_loss is None:
            raise ValueError(f'{name}: feat_loss is the distillation, it '
                             "cannot be None (e.g. feat_loss=dict(type='"
                             "mmprockd.FeatureMimicLoss', loss_weight=6.0))")
        super().__init__(student, teacher, student_channels, **kwargs)
        self._build_feat_loss(feat_loss)
        check_student_channels(self.iface, self.student_channels, name)
        self._end_build()

    def loss(self, inputs: Tensor, data_samples: list) -> LossDict:
        """The student's loss plus the scaled feature mimic."""
        losses, feats, _ = self._student_step(inputs, data_samples)
        scale = float(self.distill_scale)
        distill: LossDict = {}
        batch = self._distill_batch(scale, inputs, feats, data_samples, [])
        if batch is not None:
            inputs, feats, data_samples, _ = batch
            distill['distill.loss_feat'] = scale * self.feat_loss(
                feats, self._teacher_features(inputs, data_samples))
        losses.update(self._finish_distill(distill))
        return losses
