# Segmentation accuracy proxy, reference and stage 1 of probe-then-distil:
# what the frozen teacher's features alone know about the canvases. The
# FCN head of fcn_r18-tiny-d8_400i_fmnist-canvas_student.py on the frozen
# ImageNet MobileNetV2 (the teacher of the ProC-KD and PKD rows; every stage
# frozen, BN in eval mode, so it computes exactly the teacher's features):
# layers 3/5/7 (32/96/320 channels, strides 8/16/32) are resized to the 12x12
# grid of layer3 and concatenated (448 channels) for a trainable head, trained
# on the same canvases, schedule and seed as the student.
_base_ = ['./fcn_r18-tiny-d8_400i_fmnist-canvas_student.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.MobileNetV2',
        widen_factor=1.0,
        out_indices=(2, 4, 6),  # layer3/5/7
        frozen_stages=7,
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmprockd://mobilenet_v2_in1k',
            prefix='backbone.')),
    decode_head=dict(
        in_channels=[32, 96, 320],
        in_index=[0, 1, 2],
        input_transform='resize_concat'))
