# Recipe: another detector. mmdet's FCOS R50 (caffe style: BGR input, mean
# only; the teacher still sees its own ImageNet RGB input) taught by the
# frozen Swin-T, with the paper's recipe. Only the student base and the
# channels of its levels differ from the flagship.
_base_ = [
    'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    '../_base_/prockd_runtime.py',
    '../_base_/teachers/swin-t_in1k.py',
    '../_base_/models/prockd_distiller.py',
]

model = dict(
    _base_.prockd_distiller,
    _delete_=True,
    student=_base_.model,
    teacher=_base_.swin_t_in1k_teacher,
    # P3-P7 of FCOS's FPN
    student_channels=[256] * 5)

custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
