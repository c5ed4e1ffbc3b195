# ProC-KD with a two-stage student: mmdet's Faster R-CNN R50-FPN 1x (37.4
# mAP in mmdet's model zoo). The prototype branch runs the student's RPN and
# RoI head on the augmented teacher features; the consistency KL is on the
# RPN objectness (a sigmoid dense head).
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    '../_base_/prockd_runtime.py',
    '../_base_/teachers/swin-t_in1k.py',
    '../_base_/models/prockd_distiller.py',
]

model = dict(
    _base_.prockd_distiller,
    _delete_=True,
    student=_base_.model,
    teacher=_base_.swin_t_in1k_teacher,
    # P2-P6 of Faster R-CNN's FPN (num_outs=5)
    student_channels=[256, 256, 256, 256, 256])

# the shared hooks after any the upstream bases bring
custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
