# toy_cls.py's images (read in colour) with a real ProtoDistiller: a tiny
# CIFAR ResNet student, a random-init MobileNetV2 (widen 0.25) teacher, the
# prototype branch and the KL, distillation on half of each batch (the
# DistillSampler's random draws), random flip and crop in the training
# pipeline, one non-persistent dataloader worker. A few seconds an epoch on
# a CPU; the exact-resume tests train it (tests/test_engine/
# test_exact_resume.py).
_base_ = ['./toy_cls.py']

preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=2,
    mean=[127.5] * 3,
    std=[127.5] * 3,
    to_rgb=False)
data_preprocessor = preprocessor
model = dict(
    _delete_=True,
    type='mmprockd.ProtoDistiller',
    student=dict(
        type='ImageClassifier',
        data_preprocessor=preprocessor,
        backbone=dict(
            type='ResNet_CIFAR',
            depth=18,
            stem_channels=16,
            base_channels=16,
            out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=2,
            in_channels=128,
            loss=dict(type='CrossEntropyLoss'))),
    teacher=dict(
        type='mmprockd.FrozenTeacher',
        backbone=dict(
            type='mmpretrain.MobileNetV2',
            widen_factor=0.25,
            out_indices=(4, )),
        layers=['layer3', 'layer5'],
        input_scale=2.0),
    student_channels=[128],
    learner=dict(
        type='mmprockd.PrototypeLearner', channels=16, num_prototypes=8),
    augment=dict(type='mmprockd.TaskAdaptiveAugment'),
    proto_weight=0.5,
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss', temperature=4.0, loss_weight=1.0),
    distill_fraction=0.5)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    num_workers=1,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# the raw loss of each step in vis_data/scalars.json, not a running mean
log_processor = dict(window_size=1)
