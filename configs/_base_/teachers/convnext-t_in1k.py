# A frozen ConvNeXt-T teacher: mmpretrain's ImageNet-1k ConvNeXt-T (82.14
# top-1), never fine-tuned. Configs use it as
# ``teacher=_base_.convnext_t_in1k_teacher``.
convnext_t_in1k_teacher = dict(
    type='mmprockd.FrozenTeacher',
    backbone=dict(
        type='mmpretrain.ConvNeXt',
        arch='tiny',
        # stages 2-4 (strides 8/16/32, 192/384/768 channels)
        out_indices=(1, 2, 3),
        # by default mmpretrain pools before norm1..3 (its classifier's
        # global average pooling), so those layers give 1 x 1 maps with no
        # parts in them; keep the maps
        gap_before_final_norm=False,
        drop_path_rate=0.1),
    layers=['norm1', 'norm2', 'norm3'],
    ckpt='https://download.openmmlab.com/mmclassification/v0/convnext/'
    'convnext-tiny_32xb128_in1k_20221207-998cf3e9.pth',
    ckpt_prefix='backbone.',
    # the input convention it was trained with: ImageNet mean/std, 0-255 RGB
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    channel_order='rgb',
    dtype='bf16')
