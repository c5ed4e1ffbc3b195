# ProC-KD, the paper's recipe
# (prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py), with mmdet's 2x schedule
# (24 epochs, LR steps at 16/22), the schedule of the PKD comparison in
# docs/method.md (37.4 mAP plain).
_base_ = [
    './prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py',
    '../_base_/schedules/retinanet_2x.py',
]

train_cfg = dict(max_epochs=_base_.retinanet_2x_epochs)
param_scheduler = _base_.retinanet_2x_schedule
