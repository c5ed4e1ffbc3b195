# ProC-KD CNN pair: an ImageNet-1k Swin-T classifier (frozen, never
# fine-tuned, different label space) teaches a CIFAR ResNet-18 on CIFAR-100.
# Student, data and schedule are ./resnet18_8xb16_cifar100_student.py (the
# baseline).
_base_ = [
    './resnet18_8xb16_cifar100_student.py',
    '../_base_/prockd_runtime.py',
    '../_base_/teachers/swin-t_in1k.py',
    '../_base_/models/prockd_distiller.py',
]

model = dict(
    _base_.prockd_distiller,  # the paper's recipe, K = 72
    _delete_=True,
    student=_base_.model,
    # mmpretrain's CIFAR dataset gives RGB arrays, not the BGR of
    # LoadImageFromFile: say so (the student's CIFAR-100 normalisation is
    # undone exactly, the teacher gets its own ImageNet one); the teacher
    # sees the 32x32 images upsampled to its 224x224 (7x), the student
    # keeps its 32x32 inputs
    teacher=dict(
        _base_.swin_t_in1k_teacher,
        source_channel_order='rgb',
        input_scale=7.0),
    # one level: the 512-channel 4x4 map of stage 4, before the neck's
    # global average pooling; a 1x1 conv adapts the learner's 256 channels
    student_channels=[512],
    # the authors' code hints "ratio10" for classification
    kl_loss=dict(_base_.prockd_distiller.kl_loss, loss_weight=10.0))

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
