# A frozen ResNet-50 teacher: mmpretrain's ImageNet-1k ResNet-50 (76.55
# top-1), never fine-tuned. Configs use it as
# ``teacher=_base_.resnet50_in1k_teacher``.
resnet50_in1k_teacher = dict(
    type='mmprockd.FrozenTeacher',
    backbone=dict(type='mmpretrain.ResNet', depth=50, out_indices=(1, 2, 3)),
    # stages 2-4: 512/1024/2048 channels at strides 8/16/32 (the forward
    # stops after layer4; the classifier's pooling never runs)
    layers=['layer2', 'layer3', 'layer4'],
    ckpt='https://download.openmmlab.com/mmclassification/v0/resnet/'
    'resnet50_8xb32_in1k_20210831-ea4938fc.pth',
    ckpt_prefix='backbone.',
    # the input convention it was trained with: ImageNet mean/std, 0-255 RGB
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    channel_order='rgb',
    dtype='bf16')
