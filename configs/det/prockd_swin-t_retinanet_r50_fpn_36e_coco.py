# ProC-KD flagship: an ImageNet-1k Swin-T classifier (frozen, never
# fine-tuned) teaches a RetinaNet-R50 detector on COCO, with our recipe
# ([ours], docs/method.md), the one that won on the detection proxy of
# docs/benchmark.md: two-stage ProC-KD in one run.
#
# - Epochs 1-12, the branch phase (mmdet's 1x schedule): only the prototype
#   branch learns (FPN fusion of the teacher maps, the prototypes added to
#   them, signed features, a head copy of its own; no KL). The student is
#   left exactly as built.
# - Epochs 13-36, the student phase (mmdet's 2x schedule, from the base
#   LR): the branch is frozen and teaches the student, from its init,
#   through the KL and PKD from the branch's features.
#
# Its student is to be compared with mmdet's RetinaNet-R50 2x (37.4 mAP),
# and, at equal cost, with a longer student run. Not trained at COCO scale
# here. The paper's recipe on the same pair:
# prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py.
# the paper's config, and our switches on top of it
_base_ = [
    './prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py',
    '../_base_/models/prockd_2stage_recipe.py',
    '../_base_/schedules/retinanet_2x.py',
]

model = dict(_base_.prockd_2stage_branch, **_base_.prockd_2stage_student)

branch_epochs, student_epochs = 12, _base_.retinanet_2x_epochs
# no evaluation of the untouched student during the branch phase
train_cfg = dict(
    max_epochs=branch_epochs + student_epochs, val_begin=branch_epochs + 1)
# the branch phase runs the base's 1x schedule (it ends at epoch 12); the
# student phase's (mmdet's 2x, counted from its own start) replaces it there
student_schedule = _base_.retinanet_2x_schedule
# counted in epochs; each phase ramps its distillation losses in over about
# 500 iterations (0.07 of a COCO epoch at 8 GPUs x 2 images), as the LR
custom_hooks = [
    dict(
        h,
        by_epoch=True,
        warmup=0.07,
        student_start=branch_epochs,
        branch_stop=branch_epochs,
        student_schedule=student_schedule)
    if h['type'] == 'mmprockd.DistillScheduleHook' else h
    for h in _base_.custom_hooks
] + [
    # [ours] at epoch 12, the branch's COCO val mAP beside mmdet's
    # RetinaNet-R50 1x (the student given the branch phase's 12 epochs):
    # with no lead, the 24 epochs that follow are unlikely to pay
    dict(
        type='mmprockd.BranchEvalHook',
        baseline=dict(metric='coco/bbox_mAP', value=0.365))
]
# each phase leaves one side without gradients: DDP must be told
model_wrapper_cfg = _base_.prockd_2stage_model_wrapper_cfg
