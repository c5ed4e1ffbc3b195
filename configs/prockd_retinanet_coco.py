# ProC-KD flagship: an ImageNet-1k Swin-T classifier (frozen, never
# fine-tuned) teaches a RetinaNet-R50 detector on COCO. Student, data and
# 1x schedule are exactly mmdet's retinanet_r50_fpn_1x_coco, so the plain
# student row (36.5 mAP in mmdet's model zoo) is the baseline.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    './_base_/prockd_runtime.py',
    './_base_/teachers/swin-t_in1k.py',
]

model = dict(
    _delete_=True,
    type='mmprockd.ProtoDistiller',
    student={{_base_.model}},
    teacher={{_base_.swin_t_in1k_teacher}},
    # P3-P7 of RetinaNet's FPN
    student_channels=[256, 256, 256, 256, 256],
    learner=dict(
        type='mmprockd.PrototypeLearner',
        channels=256,  # = the FPN width, so no level adapter is needed
        num_prototypes=72,  # authors' code
        share_prototypes=True),
    augment=dict(type='mmprockd.TaskAdaptiveAugment', temperature=1.0),
    proto_weight=1.0,
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss',
        temperature=1.0,
        detach_target=True,
        # per-anchor Bernoulli KL, summed over 9 anchors x 80 classes; once
        # the head's prior bias is set (init_weights) it starts near 0 and
        # stays a few percent of the focal loss at weight 1 (the proxy
        # benchmark's weight ablation is in docs/benchmark.md)
        loss_weight=1.0))

# the shared hooks after any the upstream bases bring
custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
