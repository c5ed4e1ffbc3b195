# The frozen teacher of the Swin-T configs: mmpretrain's ImageNet-1k Swin-T
# classifier, never fine-tuned. Configs use it as
# ``teacher={{_base_.swin_t_in1k_teacher}}`` (the variable is also left in
# the merged config, as mmdet's own helper variables are).
swin_t_in1k_teacher = dict(
    type='mmprockd.FrozenTeacher',
    backbone=dict(
        type='mmpretrain.SwinTransformer',
        arch='tiny',
        img_size=224,
        # stages 1-3 (strides 8/16/32) feed the learner; the forward stops
        # after norm3, so nothing later is computed
        out_indices=(1, 2, 3),
        drop_path_rate=0.2,
        # pad maps smaller than the 7x7 window (small inputs, e.g. smoke
        # tests) instead of failing; no effect at COCO/Cityscapes sizes
        pad_small_map=True),
    layers=['norm1', 'norm2', 'norm3'],
    # mmpretrain's ImageNet-1k Swin-T (81.18 top-1); keys under backbone.
    ckpt='https://download.openmmlab.com/mmclassification/v0/'
    'swin-transformer/swin_tiny_224_b16x64_300e_imagenet_20210616_'
    '090925-66df6be6.pth',
    ckpt_prefix='backbone.',
    # the input convention it was trained with (ImageNet mean/std on 0-255
    # RGB): whatever the student's preprocessor does is undone and this
    # applied; a student with the same one costs nothing
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    channel_order='rgb',
    # the teacher only gives features: bf16 halves its cost on GPUs
    dtype='bf16')
