# A frozen ViT-B/16 teacher: mmpretrain's ImageNet-1k DeiT-B (81.76 top-1;
# the ViT-B/16 architecture trained on ImageNet-1k alone), never
# fine-tuned. Configs use it as ``teacher=_base_.vit_b_in1k_teacher`` and
# override keys in code: ``teacher=dict(_base_.vit_b_in1k_teacher,
# ckpt=None)``.
vit_b_in1k_teacher = dict(
    type='mmprockd.FrozenTeacher',
    backbone=dict(
        type='mmpretrain.VisionTransformer',
        arch='deit-base',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1),
    # blocks 4, 8 and 12, as in the authors' code: their (N, 1 + HW, 768)
    # tokens become (N, 768, H/16, W/16) maps (class token dropped); the
    # forward stops after the last one
    layers=['layers.3', 'layers.7', 'layers.11'],
    ckpt='https://download.openmmlab.com/mmclassification/v0/deit/'
    'deit-base_pt-16xb64_in1k_20220216-db63c16c.pth',
    ckpt_prefix='backbone.',
    # the input convention it was trained with: ImageNet mean/std, 0-255 RGB
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    channel_order='rgb',
    # positional embeddings are resized to the input's token grid by
    # mmpretrain; the teacher only gives features: bf16 halves its cost
    dtype='bf16')
