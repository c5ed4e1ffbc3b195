# Accuracy proxy benchmark, ProC-KD: torchvision's ImageNet-1k MobileNetV2
# (frozen, never fine-tuned; 1000 ImageNet classes) teaches the tiny
# RetinaNet of retinanet_r18-tiny_fpn_400i_fmnist-canvas_student.py to detect
# 10 clothing classes. Same student, data and schedule as the plain student.
_base_ = [
    './retinanet_r18-tiny_fpn_400i_fmnist-canvas_student.py',
    '../_base_/teachers/mobilenetv2_in1k.py',
    '../_base_/models/prockd_distiller.py',
]

# the paper's recipe (configs/_base_/models/prockd_distiller.py: K = 72
# shared prototypes, proto_weight 1, Bernoulli KL weight 1 with the target
# detached) around the tiny RetinaNet
model = dict(
    _base_.prockd_distiller,
    _delete_=True,
    student=_base_.model,
    # layer3/5/7 are 12/6/3 cells on a 96 px canvas
    teacher=_base_.mobilenetv2_in1k_teacher,
    # the pipeline is a fixed resize and a random flip, and the flip is in
    # the cache key: the frozen teacher runs once per canvas and flip
    teacher_cache=dict(max_items=2000, dtype='fp32'),
    student_channels=[32, 32, 32, 32, 32],
    # = the FPN width: the level adapter is the identity
    learner=dict(_base_.prockd_distiller.learner, channels=32))

custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
custom_hooks = [
    # 400 iterations: ramp the distillation in over the first 40, with the
    # LR warm-up, instead of the 500 of full-size runs
    dict(type='mmprockd.DistillScheduleHook', warmup=40, by_epoch=False),
]
