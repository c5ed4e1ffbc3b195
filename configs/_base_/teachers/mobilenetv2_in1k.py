# The frozen teacher of the demo and proxy-benchmark configs: torchvision's
# ImageNet-1k MobileNetV2 (71.9% top-1), the only real ImageNet weights a
# registry package ships; mmprockd.utils.pretrained checks its sha256 and
# converts it to mmpretrain's layout on first use. Configs use it as
# ``teacher=_base_.mobilenetv2_in1k_teacher`` (or ``{{_base_...}}``).
mobilenetv2_in1k_teacher = dict(
    type='mmprockd.FrozenTeacher',
    # out_indices 2/4/6 are layer3/5/7: 32/96/320 channels at strides
    # 8/16/32; the forward stops after layer7 (conv2 never runs)
    backbone=dict(
        type='mmpretrain.MobileNetV2', widen_factor=1.0,
        out_indices=(2, 4, 6)),
    layers=['layer3', 'layer5', 'layer7'],
    ckpt='mmprockd://mobilenet_v2_in1k',
    ckpt_prefix='backbone.',
    # the input convention it was trained with (torchvision's ImageNet
    # mean/std on 0-255 RGB): whatever the student's preprocessor does is
    # undone and this applied; a student with the same one costs nothing
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    channel_order='rgb')
