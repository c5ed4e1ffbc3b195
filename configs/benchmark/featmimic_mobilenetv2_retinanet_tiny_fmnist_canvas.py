# Accuracy proxy benchmark, feature-mimic baseline: the same frozen ImageNet
# MobileNetV2, student and schedule as the ProC-KD config, but the student's
# FPN levels copy the teacher's (resized, concatenated) layer3/5/7 features
# through a 1x1 connector with per-channel standardisation (PKD). No
# prototypes, no prototype branch, no KL.
_base_ = ['./prockd_mobilenetv2_retinanet_tiny_fmnist_canvas.py']

model = dict(
    learner=None,
    augment=None,
    kl_loss=None,
    # PKD's weight for RetinaNet after standardisation
    feat_loss=dict(type='mmprockd.FeatureMimicLoss', loss_weight=6.0))
