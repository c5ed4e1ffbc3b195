# Feature-mimic baseline at the same budget as the flagship: the same frozen
# ImageNet Swin-T, the same student and schedule, but the student's FPN
# levels copy the teacher's (resized, concatenated) stage 1-3 features
# through a 1x1 student-side connector, with PKD's per-channel
# standardisation on both sides. No prototypes, no prototype branch.
_base_ = ['../prockd_retinanet_coco.py']

model = dict(
    learner=None,
    augment=None,
    kl_loss=None,
    # PKD's weight for RetinaNet after standardisation
    feat_loss=dict(type='mmprockd.FeatureMimicLoss', loss_weight=6.0))
