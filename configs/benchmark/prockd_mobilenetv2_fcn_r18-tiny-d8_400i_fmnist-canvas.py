# Segmentation accuracy proxy, ProC-KD: torchvision's ImageNet-1k
# MobileNetV2 (frozen, never fine-tuned; 1000 ImageNet classes) teaches the
# tiny FCN of fcn_r18-tiny-d8_400i_fmnist-canvas_student.py to label the pixels
# of the canvases, with the paper's recipe as the Cityscapes configs use it (K
# = 72, KL weight 1, shared head). Same student, data and schedule as the plain
# student.
_base_ = [
    './fcn_r18-tiny-d8_400i_fmnist-canvas_student.py',
    '../_base_/teachers/mobilenetv2_in1k.py',
    '../_base_/models/prockd_distiller.py',
]

model = dict(
    _base_.prockd_distiller,
    _delete_=True,
    student=_base_.model,
    # layer3/5/7 are 12/6/3 cells on a 96 px canvas (strides 8/16/32); the
    # learner resizes them to the student's 12x12 stage 4
    teacher=_base_.mobilenetv2_in1k_teacher,
    # the pipeline is a load and a random flip, and the flip is in the
    # cache key: the frozen teacher runs once per canvas and flip
    teacher_cache=dict(max_items=2000, dtype='fp32'),
    # the ResNetV1c-18-D8 stages at quarter width (strides 4/8/8/8)
    student_channels=[16, 32, 64, 128],
    # the level the decode head reads (in_index=3), as the Cityscapes
    # PSPNet config; the KL is per pixel over the 11 classes of the decode
    # head's 12x12 logits, averaged over the valid pixels, so it is on the
    # scale of the CE: weight 1 (the Cityscapes configs' value)
    proto_levels=[3],
    learner=dict(
        _base_.prockd_distiller.learner,
        channels=128))  # = stage 4's width: the level adapter is identity

custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
custom_hooks = [
    # 400 iterations: ramp the distillation in over the first 40, with the
    # LR warm-up, instead of the 500 of full-size runs
    dict(type='mmprockd.DistillScheduleHook', warmup=40, by_epoch=False),
]
