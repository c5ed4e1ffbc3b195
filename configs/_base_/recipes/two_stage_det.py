# [ours] Two-stage ProC-KD in one run, for a detector: the recipe of the
# flagship (configs/prockd_retinanet_coco.py), as a base a new pair
# inherits. A whole config (docs: using the package from your own project):
#
#     _base_ = [
#         'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
#         'mmprockd::_base_/teachers/swin-t_in1k.py',
#         'mmprockd::_base_/recipes/two_stage_det.py',
#     ]
#     model = dict(
#         _base_.two_stage_det,
#         student=_base_.model,
#         teacher=_base_.swin_t_in1k_teacher,
#         student_channels=[256] * 5)
#     train_cfg = _base_.two_stage_det_train_cfg
#     custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
#
# Every block is complete (each sub-dict has its type), so a config changes
# a switch by merging into the block, never by replacing it:
# ``learner=dict(_base_.two_stage_det.learner, num_prototypes=36)``.
#
# - Epochs 1-12, the branch phase (the student's own 1x schedule): only the
#   prototype branch learns (FPN fusion of the teacher maps, the prototypes
#   added to them, signed features, a head copy of its own; no KL). The
#   student is left exactly as built.
# - Epochs 13-36, the student phase (mmdet's 2x schedule, from the base
#   LR): the branch is frozen and teaches the student, from its init,
#   through the KL and PKD from the branch's features.
#
# The phases are counted for a student whose upstream schedule is mmdet's
# 1x (12 epochs); another schedule changes student_start and branch_stop
# (its length), the 2x below and max_epochs.
_base_ = ['../prockd_runtime.py']

# the ProtoDistiller; `_delete_` makes it replace the student base's
# `model` (a detector) instead of merging into it
two_stage_det = dict(
    type='mmprockd.ProtoDistiller',
    _delete_=True,
    learner=dict(
        type='mmprockd.PrototypeLearner',
        # the branch's width; the level adapter maps it to each level's
        channels=256,
        num_prototypes=72,  # authors' code
        share_prototypes=True,
        fusion='fpn',
        residual=True,
        input_norm=False,
        downsample='bilinear',
        fusion_convs=0),
    augment=dict(
        type='mmprockd.TaskAdaptiveAugment', temperature=1.0, out_relu=False),
    level_adapter=dict(out_kernel=0),
    proto_weight=1.0,
    branch_head='own',
    proto_head_grad=True,
    distill_fraction=1.0,
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss',
        temperature=1.0,
        detach_target=True,
        loss_weight=1.0,
        reduction='level',
        weighting=None),
    # PKD from the branch's features, not from the teacher's
    branch_feat_loss=dict(type='mmprockd.BranchMimicLoss', loss_weight=1.0),
    feat_loss=None)

two_stage_det_branch_epochs = 12
# mmdet's RetinaNet 2x schedule, counted from the student phase's start
two_stage_det_student_schedule = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=24,
        by_epoch=True,
        milestones=[16, 22],
        gamma=0.1)
]
# merged into the student base's train loop; no evaluation of the untouched
# student during the branch phase
two_stage_det_train_cfg = dict(max_epochs=12 + 24, val_begin=12 + 1)
# the runtime base's hooks, with the phases
prockd_hooks = [
    dict(type='mmprockd.StudentCheckpointHook', interval=1),
    dict(
        type='mmprockd.DistillScheduleHook',
        by_epoch=True,
        # each phase ramps its losses in over about 500 iterations (0.07 of
        # a COCO epoch at 8 GPUs x 2 images), as the LR
        warmup=0.07,
        student_start=two_stage_det_branch_epochs,
        branch_stop=two_stage_det_branch_epochs,
        student_schedule=two_stage_det_student_schedule),
    # [ours] the branch's val metric when its phase ends; name the
    # student's own figure at the branch phase's length to see its lead:
    # baseline=dict(metric='coco/bbox_mAP', value=0.365)
    dict(type='mmprockd.BranchEvalHook'),
]
# each phase leaves one side without gradients: DDP must be told
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
