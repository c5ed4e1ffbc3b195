# Classification accuracy proxy, ProC-KD: torchvision's ImageNet-1k
# MobileNetV2 (frozen, never fine-tuned; 1000 ImageNet classes) teaches the
# tiny classifier of resnet18-tiny_1000i_fmnist-64px_student.py the 10
# Fashion-MNIST classes, with the authors' classification recipe (K = 72, KL
# weight 10). Same student, data and schedule as the plain student.
_base_ = [
    './resnet18-tiny_1000i_fmnist-64px_student.py',
    '../_base_/teachers/mobilenetv2_in1k.py',
    '../_base_/models/prockd_distiller.py',
]

model = dict(
    _base_.prockd_distiller,
    _delete_=True,
    # carries its own data_preprocessor (ImageNet mean/std, to_rgb): the
    # teacher sees the same normalised input, so it needs no mean/std
    student=_base_.model,
    # layer3/5/7 are 8x8, 4x4 and 2x2 cells on a 64 px image (strides
    # 8/16/32); the learner resizes them to the student's 2x2 level
    teacher=_base_.mobilenetv2_in1k_teacher,
    # the pipeline is a load and a random flip, and the flip is in the
    # cache key: the frozen teacher runs once per image and flip (4000
    # entries of ~19 KB), which cuts the step from ~2.0x to ~1.1x the
    # student's (benchmark_cost.py, 64 px, batch 32)
    teacher_cache=dict(max_items=4000, dtype='fp32'),
    # one level: the 128-channel 2x2 map of stage 4, before the neck's
    # global average pooling
    student_channels=[128],
    # = the student's width: the level adapter is identity
    learner=dict(_base_.prockd_distiller.learner, channels=128),
    kl_loss=dict(
        _base_.prockd_distiller.kl_loss,
        kind='softmax',  # over the 10 classes of each image
        # the authors' code hints "ratio10" for classification
        loss_weight=10.0))

custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
custom_hooks = [
    # 1000 iterations: ramp the distillation in over the first 100, with
    # the LR warm-up, instead of the 500 of full-size runs
    dict(type='mmprockd.DistillScheduleHook', warmup=100, by_epoch=False),
]
