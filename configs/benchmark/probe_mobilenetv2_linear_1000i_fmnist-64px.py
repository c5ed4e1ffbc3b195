# Classification accuracy proxy, diagnostic: what the frozen teacher's
# features alone know about the task. A linear probe: the frozen ImageNet
# MobileNetV2 (every stage frozen, BN in eval mode; the teacher of the
# ProC-KD and PKD rows) with global average pooling and a trainable linear
# head on its layer7 (320 channels; the layer the learner's deepest input
# is), trained on the same 500 images, schedule and seed as the student.
# It is stage 1 of probe-then-distil; its accuracy bounds what distilling
# its predictions (stage 2, not built) could give.
_base_ = ['./resnet18-tiny_1000i_fmnist-64px_student.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        widen_factor=1.0,
        out_indices=(6, ),  # layer7
        frozen_stages=7,
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmprockd://mobilenet_v2_in1k',
            prefix='backbone.')),
    head=dict(in_channels=320))
custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
