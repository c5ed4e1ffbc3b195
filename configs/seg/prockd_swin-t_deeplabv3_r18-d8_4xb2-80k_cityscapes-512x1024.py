# ProC-KD: an ImageNet-1k Swin-T classifier (frozen, never fine-tuned)
# teaches a DeepLabV3-R18-D8 on Cityscapes. Student, data and the 80k schedule
# are exactly mmseg's deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024, so
# ./deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024_student.py (76.70 mIoU in
# mmseg's model zoo) is the baseline.
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/prockd_runtime.py',
    '../_base_/teachers/swin-t_in1k.py',
    '../_base_/models/prockd_distiller.py',
]

model = dict(
    _base_.prockd_distiller,  # the paper's recipe, K = 72
    _delete_=True,
    student=_base_.model,
    teacher=_base_.swin_t_in1k_teacher,
    # ResNetV1c-18-D8 stages (strides 4/8/8/8)
    student_channels=[64, 128, 256, 512],
    # the levels the heads read: auxiliary FCN in_index=2, ASPP in_index=3;
    # both heads are trained on the prototype branch; 1x1 convs adapt the
    # learner's 256 channels to the 256 / 512 of levels 2 / 3. The KL is
    # per pixel over the 19 classes of the decode head's logits (1/8
    # resolution), pixels labelled 255 ignored; averaged over the valid
    # pixels, so it is on the scale of the CE: weight 1 [ours]
    proto_levels=[2, 3])

# iteration-based schedule: student-only checkpoints at mmseg's checkpoint
# interval (8k iterations), not per epoch as in the shared runtime
prockd_hooks = [
    dict(type='mmprockd.StudentCheckpointHook', interval=8000, by_epoch=False),
    dict(type='mmprockd.DistillScheduleHook', warmup=500, by_epoch=False),
]
custom_hooks = [*_base_.get('custom_hooks', []), *prockd_hooks]
