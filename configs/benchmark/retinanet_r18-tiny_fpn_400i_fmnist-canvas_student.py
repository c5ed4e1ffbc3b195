# Accuracy proxy benchmark, plain student (docs/benchmark.md): a tiny
# RetinaNet detects the 10 Fashion-MNIST classes on 96x96 canvases built by
# tools/dataset_converters/build_fmnist_canvas.py, evaluated with mmdet's
# CocoMetric on the 200 validation canvases. Every method of the benchmark
# shares this student, data and schedule; tools/analysis_tools/
# proxy_benchmark.py sets the seed, work_dir and (with --full) the size.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
]

data_root = 'data/fmnist_canvas/reduced/'
classes = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
img_scale = (96, 96)  # the canvases' own size: no resizing
max_iters = 400  # 3.2 epochs of 1000 canvases at batch 8

model = dict(
    backbone=dict(
        depth=18,
        # a quarter-width ResNet-18 (16..128 channels), random init: no
        # small pretrained student exists offline, and every method starts
        # from the same init, so the comparison stays fair
        base_channels=16,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    # P3-P7 at 32 channels, one conv per head branch: a ProC-KD step runs
    # the head twice and must stay well under a second on 2 CPU cores
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    bbox_head=dict(
        num_classes=10,
        in_channels=32,
        feat_channels=32,
        stacked_convs=1,
        # items are 24-48 px: anchors from 16 px (stride 8, octave 2)
        anchor_generator=dict(octave_base_scale=2)),
    # score every box (mmdet uses 0.05): briefly trained detectors are
    # under-confident and the COCO metric needs detections to rank
    test_cfg=dict(score_thr=0.0, max_per_img=50))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    # a no-op at the canvas size; it records the scale factor mmdet needs
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
    batch_size=8,
    # tiny PNGs: the main process loads them faster than workers on 2 cores
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/images/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/images/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False)
test_evaluator = val_evaluator

# evaluated once, after training, by the benchmark script (runner.test())
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# AdamW: from random init at batch 8 it converges in a few hundred steps
# without RetinaNet's long SGD warm-up; the clip guards the first steps
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=40),
    dict(
        type='CosineAnnealingLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        T_max=max_iters,
        eta_min=1e-5),
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    # the benchmark keeps metrics, not weights
    checkpoint=dict(type='CheckpointHook', interval=-1, save_last=False))
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=8)
custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
