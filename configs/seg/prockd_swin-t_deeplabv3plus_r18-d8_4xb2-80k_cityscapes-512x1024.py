# Recipe: another segmenter. mmseg's DeepLabV3+ R18-D8 on Cityscapes taught
# by the frozen Swin-T. The prototype branch replaces the levels its heads
# read (the decoder's low-level skip reads level 0, ASPP level 3, the
# auxiliary FCN level 2).
_base_ = [
    'mmseg::deeplabv3plus/'
    'deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/prockd_runtime.py',
    '../_base_/teachers/swin-t_in1k.py',
    '../_base_/models/prockd_distiller.py',
]

model = dict(
    _base_.prockd_distiller,
    _delete_=True,
    student=_base_.model,
    teacher=_base_.swin_t_in1k_teacher,
    # ResNetV1c-18-D8 stages (strides 4/8/8/8)
    student_channels=[64, 128, 256, 512],
    proto_levels=[0, 2, 3],
    # 1x1 level adapters map the branch's 256 channels to 64 / 256 / 512
    learner=dict(_base_.prockd_distiller.learner, channels=256))

# iteration-based: student-only checkpoints at mmseg's interval
prockd_hooks = [
    dict(type='mmprockd.StudentCheckpointHook', interval=8000, by_epoch=False),
    dict(type='mmprockd.DistillScheduleHook', warmup=500, by_epoch=False),
]
custom_hooks = [*_base_.get('custom_hooks', []), *prockd_hooks]
