# Segmentation accuracy proxy, plain student (docs/benchmark.md): a tiny FCN
# labels every pixel of the 96x96 Fashion-MNIST canvases built by
# tools/dataset_converters/build_fmnist_canvas.py (the label maps of the
# detection proxy's canvases: 0 = background, class c = the Fashion-MNIST
# label + 1), evaluated with mmseg's IoUMetric on the 200 validation
# canvases. Every method of this proxy shares this student, data and
# schedule; tools/analysis_tools/proxy_benchmark.py --task seg sets the
# seed, work_dir and data root.
_base_ = ['mmseg::_base_/default_runtime.py']

default_scope = 'mmseg'
data_root = 'data/fmnist_canvas/reduced/'
classes = ('background', 'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
           'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
max_iters = 400  # 3.2 epochs of 1000 canvases at batch 8
norm_cfg = dict(type='BN', requires_grad=True)  # one process: no SyncBN

model = dict(
    type='EncoderDecoder',
    # torchvision's ImageNet mean/std in RGB, the frozen MobileNetV2
    # teacher's own convention: the teacher takes the student's input as it
    # is. Canvases are all 96x96, so the padding is a no-op.
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        size=(96, 96),
        pad_val=0,
        seg_pad_val=255),
    backbone=dict(
        type='ResNetV1c',
        depth=18,
        # a quarter-width ResNet-18 (16..128 channels), the other proxies'
        # student backbone; random init: no small pretrained student exists
        # offline, and every method starts from the same init
        stem_channels=16,
        base_channels=16,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        # mmseg's D8 layout: output stride 8, a 12x12 map at 96 px
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        contract_dilation=True,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch'),
    decode_head=dict(
        type='FCNHead',
        in_channels=128,  # stage 4 (16 x 8)
        in_index=3,
        # one 3x3 conv at 32 channels, no concatenation with the input: a
        # ProC-KD step runs the head twice and must stay cheap on 2 cores
        channels=32,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=len(classes),
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        # mmseg draws the classifier from N(0, 0.01): under AdamW at this
        # budget the logits then grow too slowly and the student predicts
        # background everywhere (7.9 mIoU on val at 400 iterations); N(0,
        # 0.1), about PyTorch's default for 32 inputs, learns the classes
        init_cfg=dict(type='Normal', std=0.1, override=dict(name='conv_seg'))),
    # no auxiliary head: the branch replaces stage 4 only
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # the only augmentation, as in the detection proxy; the canvases keep
    # their own size
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# the splits differ in data_prefix only (the palette is mmseg's seeded random
# one: it only colours visualisations)
canvas_dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=dict(classes=classes),
    img_suffix='.png',
    seg_map_suffix='.png',
    # label 0 is the background class, not "ignore"
    reduce_zero_label=False)
train_dataloader = dict(
    batch_size=8,
    # tiny PNGs: the main process loads them faster than workers on 2 cores
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        canvas_dataset,
        data_prefix=dict(img_path='train/images', seg_map_path='train/masks'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        canvas_dataset,
        # for choosing settings; the benchmark script reports on test/
        data_prefix=dict(img_path='val/images', seg_map_path='val/masks'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# evaluated once, after training, by the benchmark script (runner.test())
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# the detection proxy's optimiser and schedule: AdamW converges from random
# init at batch 8 in a few hundred steps; the clip guards the first steps.
# lr 2e-3 (the classification proxy's), chosen on val: 34.6 mIoU at 400
# iterations, 24.3 at the detection proxy's 1e-3
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
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
custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
