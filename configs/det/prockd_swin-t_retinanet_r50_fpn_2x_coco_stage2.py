# [ours] Two-stage ProC-KD, stage 2: the branch of
# prockd_swin-t_retinanet_r50_fpn_1x_coco_stage1.py, frozen from the first
# step, teaches a fresh RetinaNet-R50 through the KL and PKD from its features,
# for mmdet's 2x schedule (24 epochs): on the 100-canvas detection proxy the
# student gained most with stage 2 twice as long as the student's schedule
# (docs/benchmark.md). Compare with mmdet's RetinaNet-R50 2x (37.4 mAP). Train
# stage 1 first, or point branch_ckpt at its checkpoint:
#
#     python tools/train.py \
#         configs/det/prockd_swin-t_retinanet_r50_fpn_1x_coco_stage1.py
#     python tools/train.py \
#         configs/det/prockd_swin-t_retinanet_r50_fpn_2x_coco_stage2.py \
#         [--cfg-options model.branch_ckpt=PATH]
_base_ = [
    './prockd_swin-t_retinanet_r50_fpn_2x_coco.py',
    '../_base_/models/prockd_2stage_recipe.py',
]

model = dict(
    _base_.prockd_2stage_branch,
    **_base_.prockd_2stage_student,
    branch_ckpt='work_dirs/prockd_swin-t_retinanet_r50_fpn_1x_coco_stage1/'
    'epoch_12.pth')
# the branch is frozen from iteration 0: a fixed teacher; its parameters get
# no gradient, so DDP must be told
custom_hooks = [
    dict(h, branch_stop=0)
    if h['type'] == 'mmprockd.DistillScheduleHook' else h
    for h in _base_.custom_hooks
]
model_wrapper_cfg = _base_.prockd_2stage_model_wrapper_cfg
