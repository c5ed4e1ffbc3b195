# Plain-student baseline of the segmentation demo: a small FCN on ResNet-18
# trained on the 7 hand-labelled Cityscapes-style photos of
# data/prockd_demo/cityscapes (19 Cityscapes classes, coarse polygons) and
# evaluated by mIoU on the 3 others. Same student, data and schedule as
# prockd_mobilenetv2_fcn_cityscapes_demo.py, without distillation. Ten
# photos show that the pipeline works, not segmentation skill: see
# docs/user_guides/demo.md.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py',
    'mmseg::_base_/default_runtime.py',
]

data_root = 'data/prockd_demo/cityscapes/'
crop_size = (256, 512)  # (h, w)
max_iters = 80  # 4 iterations per epoch at batch 2: 20 passes

norm_cfg = dict(type='BN', requires_grad=True)  # one CPU process: no SyncBN
# the Runner gives this top-level preprocessor to a model config that has
# none (the ProtoDistiller wrapper): it must pad to the crop too
data_preprocessor = dict(size=crop_size)
model = dict(
    # random init: no ResNet-18 weights can be had offline
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        depth=18,
        # output stride 16 (dilated last stage) instead of 8: a quarter of
        # the last stages' cost on a CPU
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=512,
        channels=64,
        num_convs=1,
        concat_input=False,
        norm_cfg=norm_cfg),
    # one head keeps a step short; the prototype branch runs it again
    auxiliary_head=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # the photos are at most 512 px: jitter the scale around that size
    dict(
        type='RandomResize',
        scale=(512, 384),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,  # small photos: no worker processes on 2 cores
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CityscapesDataset',
        data_root=data_root,
        img_suffix='_leftImg8bit.jpg',
        seg_map_suffix='_gtFine_labelTrainIds.png',
        data_prefix=dict(
            img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CityscapesDataset',
        data_root=data_root,
        img_suffix='_leftImg8bit.jpg',
        seg_map_suffix='_gtFine_labelTrainIds.png',
        data_prefix=dict(
            img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=40)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# AdamW: converges from random init at batch 2 without a long warm-up
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.01),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
    dict(
        type='PolyLR',
        eta_min=1e-5,
        power=0.9,
        begin=10,
        end=max_iters,
        by_epoch=False),
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=max_iters,
        max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
