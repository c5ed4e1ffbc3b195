# [ours] Two-stage ProC-KD, the recommended segmentation recipe
# (configs/_base_/recipes/two_stage_seg.py), on mmseg's PSPNet-R18-D8:
# 80k iterations in which only the prototype branch learns over the frozen
# Swin-T (given the image at twice its size), then 160k in which the frozen
# branch teaches the student from its init. Compare the student with
# mmseg's 80k PSPNet-R18 (74.87 mIoU) and, at equal cost, with the student
# trained longer. Not trained at Cityscapes scale here.
_base_ = [
    'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/teachers/swin-t_in1k.py',
    '../_base_/recipes/two_stage_seg.py',
]

model = dict(
    _base_.two_stage_seg,
    student=_base_.model,
    teacher=dict(_base_.swin_t_in1k_teacher, input_scale=2.0),
    # ResNetV1c-18-D8 stages (strides 4/8/8/8); the branch gives the two
    # levels the heads read (auxiliary FCN in_index=2, PSP in_index=3)
    student_channels=[64, 128, 256, 512],
    proto_levels=[2, 3])
train_cfg = _base_.two_stage_seg_train_cfg
custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
