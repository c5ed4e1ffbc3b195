# ProC-KD in the authors' setting: an ImageNet-1k DeiT-B (12 blocks, frozen,
# never fine-tuned) teaches a 6-layer DeiT-B on CIFAR-100 at 224x224.
# Student, data and schedule are
# ./deit-b-6l_8xb64-100e_cifar100-224px_student.py (the baseline).
_base_ = [
    './deit-b-6l_8xb64-100e_cifar100-224px_student.py',
    '../_base_/prockd_runtime.py',
    '../_base_/teachers/vit-b_in1k.py',
    '../_base_/models/prockd_distiller.py',
]

model = dict(
    _base_.prockd_distiller,  # the paper's recipe, K = 72
    _delete_=True,
    student=_base_.model,
    # mmpretrain's ImageNet-1k DeiT-B (81.76 top-1), blocks 4/8/12 as in the
    # authors' code; (N, 197, 768) tokens become (N, 768, 14, 14) maps.
    # mmpretrain's CIFAR dataset gives RGB arrays, not the BGR of
    # LoadImageFromFile: say so (the student's CIFAR-100 normalisation is
    # undone exactly, the teacher gets its own ImageNet one)
    teacher=dict(_base_.vit_b_in1k_teacher, source_channel_order='rgb'),
    # one level: the student's (N, 768, 14, 14) patch-token map, before the
    # neck's global average pooling
    student_channels=[768],
    # authors' code: 3 ViT layers -> Linear(3 x 768 -> 768) + ReLU
    learner=dict(_base_.prockd_distiller.learner, channels=768),
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
