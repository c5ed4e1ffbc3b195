# Accuracy proxy benchmark, the PKD baseline: the same frozen ImageNet
# MobileNetV2, student and schedule as the ProC-KD config, but the student's
# FPN levels copy the teacher's (resized, concatenated) layer3/5/7 features
# through a 1x1 student-side connector, with PKD's standardisation (per
# channel over N, H, W) on both sides. No prototypes, no prototype branch,
# no KL.
_base_ = ['./prockd_mobilenetv2_retinanet_r18-tiny_fpn_400i_fmnist-canvas.py']

# mmprockd.PKDDistiller in place of the base's ProtoDistiller (_delete_)
model = dict(
    type='mmprockd.PKDDistiller',
    _delete_=True,
    # PKD's RetinaNet weight (mmrazor): the loss is 6 x the SUM over the
    # FPN levels of MSE / 2 between the maps standardised per channel
    # over (N, H, W), i.e. about 6 x (1 - Pearson r) per level, r
    # averaged over the channels. projector='teacher' gives the
    # inverted projection (Auty et al. 2024).
    feat_loss=dict(type='mmprockd.FeatureMimicLoss', loss_weight=6.0),
    # the ProC-KD config's student, teacher and levels
    student=_base_.model.student,
    teacher=_base_.model.teacher,
    teacher_cache=_base_.model.teacher_cache,
    student_channels=_base_.model.student_channels)
