# [ours] Few labels and many unlabelled images, stage 2 (docs/method.md,
# "An unlabelled transfer set"; docs/benchmark.md): the branch
# of prockd_mobilenetv2_resnet18-tiny_500i_fmnist-n100_unlabelled_stage1.py,
# frozen from the first step, teaches a fresh student through Hinton's KD (T 4)
# and PKD from its features, on every batch's 32 labelled images and 32
# unlabelled ones (annotation lines "path -1"); the cross-entropy sees the
# labelled images only. On the 100-image proxy: +6.1 +- 0.7 top-1 on test over
# the student alone, level with PKD given the same unlabelled images.
#
#     cfg=configs/cls/prockd_mobilenetv2_resnet18-tiny_500i_fmnist-n100
#     python tools/train.py ${cfg}_unlabelled_stage2.py \
#         [--cfg-options model.branch_ckpt=PATH]
_base_ = [
    './prockd_mobilenetv2_resnet18-tiny_500i_fmnist-n100_unlabelled_stage1.py'
]

model = dict(
    branch_ckpt='work_dirs/prockd_mobilenetv2_resnet18-tiny_500i_fmnist-n100_'
    'unlabelled_stage1/iter_500.pth',
    # Hinton's KD as the KL: T 4, weight 1 (times T^2 inside the loss)
    kl_loss=dict(
        _delete_=True,
        type='mmprockd.ConsistencyKLLoss',
        kind='softmax',
        temperature=4.0,
        detach_target=True,
        loss_weight=1.0),
    branch_feat_loss=dict(type='mmprockd.BranchMimicLoss', loss_weight=1.0),
    # the frozen branch's outputs and the teacher's features, once per
    # image and flip: (100 + 2000) x 2 entries each
    branch_cache=dict(max_items=5000, dtype='fp32'),
    teacher_cache=dict(max_items=5000, dtype='fp32'))

labelled = dict(
    type='CustomDataset',
    data_root=_base_.data_root,
    ann_file='meta/train.txt',
    data_prefix='',
    metainfo=dict(classes=_base_.classes),
    pipeline=_base_.train_pipeline)
# mmdet's MultiSourceSampler fixes how many images of each set a batch
# holds; the labelled ones come in InfiniteSampler's order for the seed
train_dataloader = dict(
    batch_size=64,
    sampler=dict(
        _delete_=True,
        type='mmdet.MultiSourceSampler',
        batch_size=64,
        source_ratio=[1, 1]),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[labelled,
                  dict(labelled, ann_file='meta/unlabelled.txt')]))
# the branch is frozen from iteration 0: a fixed teacher (under DDP its
# parameters get no gradient: find_unused_parameters)
custom_hooks = [
    # the kept student: student_iter_500.pth, loadable by plain mmpretrain
    dict(
        type='mmprockd.StudentCheckpointHook',
        interval=_base_.max_iters,
        by_epoch=False),
    dict(
        type='mmprockd.DistillScheduleHook',
        warmup=_base_.warmup_iters,
        branch_stop=0,
        by_epoch=False),
]
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
# the student is what this run is for: no full checkpoint
default_hooks = dict(checkpoint=dict(save_last=False))
