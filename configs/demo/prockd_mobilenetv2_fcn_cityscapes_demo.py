# Segmentation demo of ProC-KD: the frozen ImageNet-1k MobileNetV2 of the
# detection demo teaches the small FCN-R18 of fcn_r18_cityscapes_demo.py on
# the 10 Cityscapes-style photos of data/prockd_demo. CPU, ~5-10 minutes:
# see docs/user_guides/demo.md.
_base_ = [
    './fcn_r18_cityscapes_demo.py',
    '../_base_/prockd_runtime.py',
    '../_base_/teachers/mobilenetv2_in1k.py',
    '../_base_/models/prockd_distiller.py',
]

model = dict(
    _base_.prockd_distiller,  # the paper's recipe, K = 72
    _delete_=True,
    student=_base_.model,
    teacher=_base_.mobilenetv2_in1k_teacher,
    # the four ResNet-18 stages that extract_feat returns
    student_channels=[64, 128, 256, 512],
    # the FCN head reads only the last stage (in_index=3)
    proto_levels=[3],
    # adapted to the 512 channels of stage 4
    learner=dict(_base_.prockd_distiller.learner, channels=128))

custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
prockd_hooks = [
    # iteration-based schedule: student_iter_N.pth at the end
    dict(
        type='mmprockd.StudentCheckpointHook',
        interval={{_base_.max_iters}},
        by_epoch=False),
    dict(type='mmprockd.DistillScheduleHook', warmup=20, by_epoch=False),
]
custom_hooks = [*_base_.get('custom_hooks', []), *prockd_hooks]
