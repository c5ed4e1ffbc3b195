# [ours] The recommended classification recipe: PKD, the student's maps
# pulled towards the frozen teacher's (FeatureMimicLoss: both standardised
# per channel, a 1x1 student-side connector), no prototype branch. On the
# classification proxy it beats the prototype recipes (docs/benchmark.md).
# A whole config:
#
#     _base_ = [
#         'mmpretrain::resnet/resnet18_8xb16_cifar10.py',
#         'mmprockd::_base_/teachers/mobilenetv2_in1k.py',
#         'mmprockd::_base_/recipes/pkd_cls.py',
#     ]
#     model = dict(
#         _base_.pkd_cls,
#         student=_base_.model,
#         teacher=_base_.mobilenetv2_in1k_teacher,
#         student_channels=[512])
#     custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
#
# The student trains on its own schedule; `student_channels` lists the
# backbone's output maps (out_indices), before the neck's pooling.
#
# The prototype route (the paper's branch and its consistency KL, weight 10
# for classification, with PKD kept) is the other block of this base:
# ``model = dict(_base_.pkd_cls_prototypes, ...)``. Every block is complete
# (each sub-dict has its type): a config changes a switch by merging into
# it, ``feat_loss=dict(_base_.pkd_cls.feat_loss, loss_weight=3.0)``.
_base_ = ['../prockd_runtime.py']

# the PKDDistiller; `_delete_` makes it replace the student base's
# `model` (a classifier) instead of merging into it
pkd_cls = dict(
    type='mmprockd.PKDDistiller',
    _delete_=True,
    # PKD's per-level weight of the detection proxy: 6 x MSE / 2 between
    # the standardised maps, about 6 x (1 - Pearson r)
    feat_loss=dict(type='mmprockd.FeatureMimicLoss', loss_weight=6.0))
pkd_cls_prototypes = dict(
    pkd_cls,
    type='mmprockd.ProtoDistiller',
    learner=dict(
        type='mmprockd.PrototypeLearner',
        channels=256,
        num_prototypes=72,  # authors' code
        share_prototypes=True),
    augment=dict(type='mmprockd.TaskAdaptiveAugment', temperature=1.0),
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss',
        temperature=1.0,
        detach_target=True,
        # the authors' code hints "ratio10" for classification
        loss_weight=10.0))
