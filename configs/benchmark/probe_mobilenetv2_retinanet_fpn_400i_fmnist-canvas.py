# Detection accuracy proxy, reference and stage 1 of probe-then-distil:
# what the frozen teacher's features alone know about the canvases. The
# tiny RetinaNet of retinanet_r18-tiny_fpn_400i_fmnist-canvas_student.py with
# the frozen ImageNet MobileNetV2 (the teacher of the ProC-KD and PKD rows;
# every stage frozen, BN in eval mode, so it computes exactly the teacher's
# features) as its backbone: layers 3/5/7 (32/96/320 channels, strides 8/16/32)
# feed a trainable 32-channel FPN (P6/P7 from layer7) and head, trained on the
# same canvases, schedule and seed as the student.
_base_ = ['./retinanet_r18-tiny_fpn_400i_fmnist-canvas_student.py']

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
    neck=dict(
        in_channels=[32, 96, 320],
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5))
