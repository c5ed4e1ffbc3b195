# ProC-KD with a two-stage student: mmdet's Faster R-CNN R50-FPN 1x (37.4
# mAP in mmdet's model zoo). The prototype branch runs the student's RPN and
# RoI head on the augmented teacher features; the consistency KL is on the
# RPN objectness (a sigmoid dense head).
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    './_base_/prockd_runtime.py',
]

model = dict(
    _delete_=True,
    type='mmprockd.ProtoDistiller',
    student={{_base_.model}},
    teacher=dict(
        type='mmprockd.FrozenTeacher',
        backbone=dict(
            type='mmpretrain.SwinTransformer',
            arch='tiny',
            img_size=224,
            out_indices=(1, 2, 3),
            drop_path_rate=0.2,
            # small images give stage maps under the 7x7 window: pad them
            pad_small_map=True),
        layers=['norm1', 'norm2', 'norm3'],
        ckpt='https://download.openmmlab.com/mmclassification/v0/'
        'swin-transformer/swin_tiny_224_b16x64_300e_imagenet_20210616_'
        '090925-66df6be6.pth',
        ckpt_prefix='backbone.',
        dtype='bf16'),
    # P2-P6 of Faster R-CNN's FPN (num_outs=5)
    student_channels=[256, 256, 256, 256, 256],
    learner=dict(
        type='mmprockd.PrototypeLearner', channels=256, num_prototypes=72),
    augment=dict(type='mmprockd.TaskAdaptiveAugment', temperature=1.0),
    proto_weight=1.0,
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss', temperature=1.0, loss_weight=1.0))
