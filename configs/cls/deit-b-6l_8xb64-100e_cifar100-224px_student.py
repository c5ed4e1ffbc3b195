# Plain-student baseline for the authors' setting: a 6-layer DeiT-B
# (ViT-B/16 width, 6 of its 12 blocks) fine-tuned on CIFAR-100 with the
# 32x32 images upsampled to 224x224, as in the authors' code.
# The student starts from the first 6 blocks of mmpretrain's ImageNet-1k
# DeiT-B (the others are dropped), and its patch tokens are pooled in the
# neck: the backbone gives a map (out_type='featmap') so that ProC-KD can
# replace it before the pooling. The schedule is ours (fine-tuning recipe,
# not published by the authors).
_base_ = [
    'mmpretrain::_base_/datasets/cifar100_bs16.py',
    'mmpretrain::_base_/default_runtime.py',
]

deit_b_ckpt = ('https://download.openmmlab.com/mmclassification/v0/deit/'
               'deit-base_pt-16xb64_in1k_20220216-db63c16c.pth')

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        # DeiT-B with 6 blocks
        arch=dict(
            embed_dims=768,
            num_layers=6,
            num_heads=12,
            feedforward_channels=3072),
        img_size=224,
        patch_size=16,
        # (N, 768, 14, 14) patch tokens, normalised by the final norm
        out_type='featmap',
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint=deit_b_ckpt, prefix='backbone.')),
    neck=dict(type='GlobalAveragePooling'),
    # LinearClsHead takes the pooled (N, 768) vector. VisionTransformerClsHead
    # is written for the class token (optional tanh pre-logits layer, its fc
    # zero-initialised); with featmap output there is no class token to give
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=768,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02)),
)

# CIFAR-100 at 224x224 (bicubic upsampling after the usual 32x32 crop/flip)
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='Resize', scale=224, interpolation='bicubic'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='Resize', scale=224, interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64, num_workers=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# fine-tuning schedule [ours]: AdamW, 100 epochs, 5 of linear warm-up, cosine
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=5e-4, weight_decay=0.05, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=5)
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr above is for 8 GPUs x 64 images
auto_scale_lr = dict(base_batch_size=512)
