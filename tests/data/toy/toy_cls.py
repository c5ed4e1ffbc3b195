# A two-class LeNet-5 classifier on a folder of 32x32 grayscale images, small
# enough to train for two epochs on a CPU in seconds. The tests write the
# images (``<data_root>/<class>/*.png``) and point the three dataloaders at
# them with ``--cfg-options``; ``data/toy_cls`` is only a placeholder.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='LeNet5', num_classes=2),
    # LeNet5 ends with its own classifier, so the head only takes the loss
    head=dict(type='ClsHead', loss=dict(type='CrossEntropyLoss')))
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=2,
    mean=[127.5],
    std=[127.5],
    to_rgb=False)

data_root = 'data/toy_cls'
pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='PackInputs'),
]
# batch 4: LeNet5 squeezes its features, which breaks on a batch of one
dataloader = dict(
    batch_size=4,
    num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
train_dataloader = dict(
    dataloader, sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dataloader
test_dataloader = dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'))
visualizer = dict(
    type='UniversalVisualizer', vis_backends=[dict(type='LocalVisBackend')])
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
