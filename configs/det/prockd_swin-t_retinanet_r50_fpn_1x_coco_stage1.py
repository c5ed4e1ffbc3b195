# [ours] Two-stage ProC-KD, stage 1 (configs/_base_/models/
# prockd_2stage_recipe.py): the flagship's pair (Swin-T teaches
# RetinaNet-R50, mmdet 1x) with the signed own-head prototype branch and no
# KL. What is kept is the branch, in this run's last checkpoint
# (work_dirs/prockd_swin-t_retinanet_r50_fpn_1x_coco_stage1/epoch_12.pth),
# which prockd_swin-t_retinanet_r50_fpn_2x_coco_stage2.py loads.
_base_ = [
    './prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py',
    '../_base_/models/prockd_2stage_recipe.py',
]

model = dict(_base_.prockd_2stage_branch, kl_loss=None)
