# Plain-student baseline of the out-of-the-box demo: a small RetinaNet trained
# on the 13 hand-labelled photos of data/prockd_demo (80 COCO classes) and
# evaluated with the COCO metric on the 6 others. Same student, data and
# schedule as prockd_mobilenetv2_retinanet_demo.py, without distillation.
# 19 photos measure that the pipeline works end to end, not detection skill:
# see docs/user_guides/demo.md.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
]

data_root = 'data/prockd_demo/'
# longest side 320 px: small enough for a 2-core CPU, large enough that the
# stride-32 teacher level still has a 10x10 grid
img_scale = (320, 320)
max_epochs = 24  # 7 iterations per epoch at batch 2: ~170 iterations

model = dict(
    backbone=dict(
        depth=18,
        # random init: no ResNet-18 weights can be had offline, so nothing
        # is frozen and BatchNorm keeps learning
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    # 64 channels and 2 convs per branch instead of 256 and 4: the head
    # runs twice per step under ProC-KD, and this keeps a step near 2 s on
    # 2 CPU cores
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    bbox_head=dict(in_channels=64, feat_channels=64, stacked_convs=2),
    # every box is scored (mmdet uses 0.05): a briefly trained model is
    # still under-confident, and the COCO metric needs some detections
    test_cfg=dict(score_thr=0.0))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    # the photos are small: loading in the main process is cheaper than
    # worker processes on 2 cores
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False)
test_evaluator = val_evaluator

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=12)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# AdamW rather than RetinaNet's SGD 0.01: from random init at batch 2 it
# converges without a long warm-up; the clip guards the first steps
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[18],
        gamma=0.1),
]

default_hooks = dict(
    # a line with loss and ETA at iterations 2, 4 and 6 of each epoch's 7:
    # progress and the ETA show from the second step (once per epoch, the
    # first line came only after 7 steps)
    logger=dict(type='LoggerHook', interval=2),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
# the logged losses are means over the last 7 steps (one epoch)
log_processor = dict(type='LogProcessor', window_size=7, by_epoch=True)
auto_scale_lr = dict(enable=False, base_batch_size=2)
