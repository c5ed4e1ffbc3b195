# Classification accuracy proxy, plain student (the paper's section 3: the
# authors' own setting): a tiny mmpretrain classifier, trained from scratch,
# classifies the 10 Fashion-MNIST classes at 64 px in a low-data regime
# (2000 training images here; tools/analysis_tools/proxy_benchmark.py
# --task cls trains on 500 images for 500 iterations, the regime chosen on
# val, see docs/benchmark.md), data built by
# tools/dataset_converters/build_fmnist_cls.py. Settings are chosen on
# meta/val.txt (1000 other train-split items); results are reported on
# meta/test.txt (2000 t10k items). Every method of this proxy shares this
# student, data and schedule.
_base_ = ['mmpretrain::_base_/default_runtime.py']

default_scope = 'mmpretrain'
data_root = 'data/fmnist_cls/'
classes = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
max_iters = 1000  # 16 epochs of 2000 images at batch 32
warmup_iters = 100  # 10 % of the run, as the distillation ramp

model = dict(
    type='ImageClassifier',
    # torchvision's ImageNet mean/std in RGB (LoadImageFromFile gives BGR:
    # to_rgb), the frozen MobileNetV2 teacher's own convention, so the
    # teacher takes the student's input as it is (no conversion)
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        num_classes=10,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=18,
        # a quarter-width ResNet-18 (16..128 channels), the detection
        # proxy's student backbone: small enough that a ProC-KD step stays
        # cheap on 2 CPU cores, and weak enough from scratch on 2000 images
        # that teacher knowledge can matter
        stem_channels=16,
        base_channels=16,
        # stage 4 only: a 128 x 2 x 2 map at 64 px (stride 32), the level
        # ProC-KD replaces before the pooling
        out_indices=(3, ),
        # the class's own Kaiming init: random, no pretrained student exists
        # offline, and every method starts from the same init
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=128,  # = the backbone's last stage (16 x 8)
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    # the only augmentation: clothes are left-right symmetric in kind; no
    # crops, so every method sees the same 64 px items
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    # tiny PNGs: the main process loads them faster than workers on 2 cores
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        # lines "train/000000.png 3": CustomDataset joins data_root with
        # the empty data_prefix, then with the file name
        ann_file='meta/train.txt',
        data_prefix='',
        metainfo=dict(classes=classes),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        # for choosing settings: items of the train split that train lacks
        ann_file='meta/val.txt',
        data_prefix='',
        metainfo=dict(classes=classes),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        # for reporting, never for choosing: t10k items
        ann_file='meta/test.txt',
        data_prefix='',
        metainfo=dict(classes=classes),
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# evaluated once, after training (runner.test() for the test split)
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# AdamW: from random init at batch 32 it converges in a few hundred steps
# without a long SGD schedule; wd 0.05 is mmpretrain's usual AdamW value
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05))
param_scheduler = [
    # warm-up from 0.1 x lr, as the detection proxy
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    # then cosine decay to the end
    dict(
        type='CosineAnnealingLR',
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters,
        T_max=max_iters - warmup_iters,
        eta_min=1e-5),
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    # the benchmark keeps metrics, not weights
    checkpoint=dict(type='CheckpointHook', interval=-1, save_last=False))
# iterations, not epochs, in the log; the logged time is the mean over the
# logger interval
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=32)
custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
