# [ours] Few labels and many unlabelled images, stage 1: the classification
# recipe that won on the 100-image proxy (docs/benchmark.md).
# The frozen ImageNet MobileNetV2 (shipped weights) and a prototype branch
# with its own head learn the 10 Fashion-MNIST classes from the 100
# labelled images: no KL, so this run's student is discarded; its branch is
# kept in the last checkpoint (work_dirs/<this config>/iter_500.pth), which
# the stage-2 config loads. The data (labelled, val, test and 2000
# unlabelled images; point data_root at your own):
#
#     cfg=configs/cls/prockd_mobilenetv2_resnet18-tiny_500i_fmnist-n100
#     python tools/dataset_converters/build_fmnist_cls.py \
#         /tmp/fmnist/usr/share/datasets/fashion-mnist data/fmnist_cls_n100 \
#         --num-train 100 --num-val 1000 --num-test 2000 --num-unlabelled 2000
#     python tools/train.py ${cfg}_unlabelled_stage1.py
_base_ = ['../benchmark/prockd_mobilenetv2_resnet18-tiny_1000i_fmnist-64px.py']

data_root = 'data/fmnist_cls_n100/'
max_iters = 500  # 160 epochs of 100 images at batch 32: the proxy's
warmup_iters = 50

model = dict(
    # the branch of the classification proxy's recipe: its own head, the
    # teacher layers standardised and averaged down to the student's grid
    branch_head='own',
    learner=dict(downsample='area', input_norm=True),
    kl_loss=None)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# the student's warm-up and cosine decay, fitted to the shorter run
param_scheduler = [
    dict(_base_.param_scheduler[0], end=warmup_iters),
    dict(
        _base_.param_scheduler[1],
        begin=warmup_iters,
        end=max_iters,
        T_max=max_iters - warmup_iters),
]
# the branch is what this run is for: keep the last weights
default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', interval=-1, by_epoch=False, save_last=True))
custom_hooks = [
    # the student of this run is not the one kept, but a student-only file
    # at the end costs little and keeps every shipped config alike
    dict(
        type='mmprockd.StudentCheckpointHook',
        interval=max_iters,
        by_epoch=False),
    dict(
        type='mmprockd.DistillScheduleHook',
        warmup=warmup_iters,
        by_epoch=False),
]
