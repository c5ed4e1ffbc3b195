# ProC-KD, the paper's recipe (prockd_retinanet_coco_paper.py), with
# mmdet's 2x schedule (24 epochs, LR steps at 16/22), the schedule of the
# PKD comparison in docs/method.md (37.4 mAP plain).
_base_ = ['./prockd_retinanet_coco_paper.py']

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[16, 22],
        gamma=0.1)
]
