# Accuracy proxy benchmark, ProC-KD: torchvision's ImageNet-1k MobileNetV2
# (frozen, never fine-tuned; 1000 ImageNet classes) teaches the tiny
# RetinaNet of retinanet_tiny_fmnist_canvas_student.py to detect 10
# clothing classes. Same student, data and schedule as the plain student.
_base_ = [
    './retinanet_tiny_fmnist_canvas_student.py',
    '../_base_/teachers/mobilenetv2_in1k.py',
]

model = dict(
    _delete_=True,
    type='mmprockd.ProtoDistiller',
    student={{_base_.model}},
    # layer3/5/7 are 12/6/3 cells on a 96 px canvas
    teacher={{_base_.mobilenetv2_in1k_teacher}},
    # the pipeline is a fixed resize and a random flip, and the flip is in
    # the cache key: the frozen teacher runs once per canvas and flip
    teacher_cache=dict(max_items=2000, dtype='fp32'),
    student_channels=[32, 32, 32, 32, 32],
    learner=dict(
        type='mmprockd.PrototypeLearner',
        channels=32,  # = the FPN width: the level adapter is identity
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
    # 400 iterations: ramp the distillation in over the first 40, with the
    # LR warm-up, instead of the 500 of full-size runs
    dict(type='mmprockd.DistillScheduleHook', warmup=40, by_epoch=False),
]
