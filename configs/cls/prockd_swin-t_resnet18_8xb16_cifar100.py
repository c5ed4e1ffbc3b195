# ProC-KD CNN pair: an ImageNet-1k Swin-T classifier (frozen, never
# fine-tuned, different label space) teaches a CIFAR ResNet-18 on CIFAR-100.
# Student, data and schedule are ./resnet18_8xb16_cifar100_student.py (the
# baseline).
_base_ = [
    './resnet18_8xb16_cifar100_student.py',
    '../_base_/prockd_runtime.py',
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
            out_indices=(1, 2, 3),
            drop_path_rate=0.2),
        layers=['norm1', 'norm2', 'norm3'],
        # mmpretrain's ImageNet-1k Swin-T (81.18 top-1); keys under backbone.
        ckpt='https://download.openmmlab.com/mmclassification/v0/'
        'swin-transformer/swin_tiny_224_b16x64_300e_imagenet_20210616_'
        '090925-66df6be6.pth',
        ckpt_prefix='backbone.',
        # the teacher's own input convention (ImageNet statistics, RGB);
        # the student's (CIFAR-100 statistics, no channel swap) is undone
        # exactly. mmpretrain's CIFAR dataset gives RGB arrays, not the BGR
        # of LoadImageFromFile: say so
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        channel_order='rgb',
        source_channel_order='rgb',
        # the teacher sees the 32x32 images upsampled to its 224x224 (7x),
        # the student keeps its 32x32 inputs
        input_scale=7.0,
        dtype='bf16'),
    # one level: the 512-channel 4x4 map of stage 4, before the neck's
    # global average pooling
    student_channels=[512],
    learner=dict(
        type='mmprockd.PrototypeLearner',
        channels=256,  # a 1x1 conv adapts to the 512 student channels
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
