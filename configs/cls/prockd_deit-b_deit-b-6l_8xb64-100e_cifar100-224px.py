# ProC-KD in the authors' setting: an ImageNet-1k DeiT-B (12 blocks, frozen,
# never fine-tuned) teaches a 6-layer DeiT-B on CIFAR-100 at 224x224.
# Student, data and schedule are
# ./deit-b-6l_8xb64-100e_cifar100-224px_student.py (the baseline).
_base_ = [
    './deit-b-6l_8xb64-100e_cifar100-224px_student.py',
    '../_base_/prockd_runtime.py',
]

model = dict(
    _delete_=True,
    type='mmprockd.ProtoDistiller',
    student={{_base_.model}},
    teacher=dict(
        type='mmprockd.FrozenTeacher',
        backbone=dict(
            type='mmpretrain.VisionTransformer',
            arch='deit-base',
            img_size=224,
            patch_size=16,
            drop_path_rate=0.1),
        # three blocks, as in the authors' code; their (N, 197, 768) tokens
        # become (N, 768, 14, 14) maps (class token dropped)
        layers=['layers.3', 'layers.7', 'layers.11'],
        # mmpretrain's ImageNet-1k DeiT-B (81.76 top-1); keys under backbone.
        ckpt={{_base_.deit_b_ckpt}},
        ckpt_prefix='backbone.',
        # the teacher's own input convention (ImageNet statistics, RGB);
        # the student's (CIFAR-100 statistics, no channel swap) is undone
        # exactly. mmpretrain's CIFAR dataset gives RGB arrays, not the BGR
        # of LoadImageFromFile: say so
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        channel_order='rgb',
        source_channel_order='rgb',
        dtype='bf16'),
    # one level: the student's (N, 768, 14, 14) patch-token map, before the
    # neck's global average pooling
    student_channels=[768],
    learner=dict(
        type='mmprockd.PrototypeLearner',
        # authors' code: 3 ViT layers -> Linear(3 x 768 -> 768) + ReLU
        channels=768,
        num_prototypes=72,  # authors' code
        share_prototypes=True),
    augment=dict(type='mmprockd.TaskAdaptiveAugment', temperature=1.0),
    proto_weight=1.0,
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss',
        temperature=1.0,
        detach_target=True,
        # the authors' code hints "ratio10" for classification
        loss_weight=10.0))

# epoch-based: a student-only checkpoint every 10 epochs, 3 kept (and
# student_latest.pth)
prockd_hooks = [
    dict(
        type='mmprockd.StudentCheckpointHook',
        interval=10,
        by_epoch=True,
        max_keep_ckpts=3),
    dict(type='mmprockd.DistillScheduleHook', warmup=500, by_epoch=False),
]
custom_hooks = [*_base_.get('custom_hooks', []), *prockd_hooks]
