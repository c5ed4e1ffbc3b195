# [ours] Two-stage ProC-KD in one run, for a segmentor: the recipe that won
# on the segmentation proxy (docs/benchmark.md, row
# two_stage_t2x): the paper's prototype branch with a head copy
# of its own, trained first; then, frozen, it teaches the student through
# the KL and PKD from its features; the teacher is given the image at twice
# its size. A whole config:
#
#     _base_ = [
#         'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
#         'mmprockd::_base_/teachers/swin-t_in1k.py',
#         'mmprockd::_base_/recipes/two_stage_seg.py',
#     ]
#     model = dict(
#         _base_.two_stage_seg,
#         student=_base_.model,
#         teacher=dict(_base_.swin_t_in1k_teacher, input_scale=2.0),
#         student_channels=[64, 128, 256, 512])
#     train_cfg = _base_.two_stage_seg_train_cfg
#     custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
#
# `input_scale=2.0` is the teacher's key: the teacher base gives the rest.
# Every block is complete (each sub-dict has its type), so a config changes
# a switch by merging into the block, never by replacing it:
# ``learner=dict(_base_.two_stage_seg.learner, num_prototypes=36)``.
#
# - Iterations 1-80k, the branch phase (the student's own 80k schedule):
#   only the prototype branch learns; the student is left as built.
# - Iterations 80k-240k, the student phase (twice the student's schedule,
#   from the base LR, as in the detection recipe; the proxy's row ran six
#   times its student's 400 iterations): the frozen branch teaches the
#   student, from its init.
#
# The phases are counted for mmseg's 80k-iteration schedules; another one
# changes student_start and branch_stop, the PolyLR's end and max_iters.
_base_ = ['../prockd_runtime.py']

# the ProtoDistiller; `_delete_` makes it replace the student base's
# `model` (a segmentor) instead of merging into it
two_stage_seg = dict(
    type='mmprockd.ProtoDistiller',
    _delete_=True,
    learner=dict(
        type='mmprockd.PrototypeLearner',
        # the branch's width; the level adapter maps it to each level's
        channels=256,
        num_prototypes=72,  # authors' code
        share_prototypes=True),
    augment=dict(type='mmprockd.TaskAdaptiveAugment', temperature=1.0),
    proto_weight=1.0,
    branch_head='own',
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss',
        temperature=1.0,
        detach_target=True,
        loss_weight=1.0),
    # PKD from the branch's features, not from the teacher's
    branch_feat_loss=dict(type='mmprockd.BranchMimicLoss', loss_weight=1.0))

two_stage_seg_branch_iters = 80000
# mmseg's poly schedule at twice the student's length, counted from the
# student phase's start
two_stage_seg_student_schedule = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=2 * two_stage_seg_branch_iters,
        by_epoch=False)
]
# merged into the student base's train loop; no evaluation of the untouched
# student during the branch phase
two_stage_seg_train_cfg = dict(
    max_iters=3 * two_stage_seg_branch_iters,
    val_begin=two_stage_seg_branch_iters + 1)
# the runtime base's hooks, with the phases
prockd_hooks = [
    # student-only checkpoints at mmseg's checkpoint interval
    dict(type='mmprockd.StudentCheckpointHook', interval=8000, by_epoch=False),
    dict(
        type='mmprockd.DistillScheduleHook',
        by_epoch=False,
        # the distillation losses ramp in over 500 iterations in each phase
        warmup=500,
        student_start=two_stage_seg_branch_iters,
        branch_stop=two_stage_seg_branch_iters,
        student_schedule=two_stage_seg_student_schedule),
    # [ours] the branch's val metric when its phase ends; name the
    # student's own figure at the branch phase's length to see its lead:
    # baseline=dict(metric='mIoU', value=<the student's mIoU>)
    dict(type='mmprockd.BranchEvalHook'),
]
# each phase leaves one side without gradients: DDP must be told
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
