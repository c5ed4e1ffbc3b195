# ProC-KD flagship: an ImageNet-1k Swin-T classifier (frozen, never
# fine-tuned) teaches a RetinaNet-R50 detector on COCO. Student, data and
# 1x schedule are exactly mmdet's retinanet_r50_fpn_1x_coco, so the plain
# student row (36.5 mAP in mmdet's model zoo) is the baseline.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    './_base_/prockd_runtime.py',
]

model = dict(
    _delete_=True,
    type='mmprockd.ProtoDistiller',
    student={{_base_.model}},
    teacher=dict(
        type='mmprockd.FrozenTeacher',
        backbone=dict(
            type='mmpretrain.SwinTransformer',
            arch='tiny',
            img_size=224,
            # stages 1-3 (strides 8/16/32) feed the learner; stage 0 is not
            # computed beyond what stage 1 needs
            out_indices=(1, 2, 3),
            drop_path_rate=0.2,
            # small images give stage maps under the 7x7 window: pad them
            pad_small_map=True),
        layers=['norm1', 'norm2', 'norm3'],
        # mmpretrain's ImageNet-1k Swin-T (81.18 top-1); keys under backbone.
        ckpt='https://download.openmmlab.com/mmclassification/v0/'
        'swin-transformer/swin_tiny_224_b16x64_300e_imagenet_20210616_'
        '090925-66df6be6.pth',
        ckpt_prefix='backbone.',
        # same ImageNet RGB normalisation as the student: nothing to convert
        mean=None,
        std=None,
        # the teacher only gives features: bf16 halves its cost on GPUs
        dtype='bf16'),
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
        # per-anchor Bernoulli KL summed over 9 anchors x 80 classes is
        # large at init; 1.0 keeps it below the focal loss (ablation in
        # docs/benchmark.md)
        loss_weight=1.0))
