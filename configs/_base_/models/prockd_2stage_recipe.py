# [ours] Two-stage ProC-KD (docs/method.md, docs/benchmark.md): the switches
# a config merges into a ProtoDistiller that already has the paper's recipe
# pinned (prockd_paper_recipe.py), for each stage. A new student/teacher
# pair inherits the complete recipe instead, _base_/recipes/two_stage_det.py
# (or two_stage_seg.py), whose blocks each have their type.
#
# Stage 1 trains the prototype branch: the teacher maps fused by an FPN, the
# prototypes added to them (a skip), signed features (no ReLU at the
# augment's end) and a head copy of its own; no KL, so the student of this
# run learns alone (it is not the one that is kept).
#
#     model = dict(_base_.prockd_2stage_branch, kl_loss=None)
#
# Stage 2 loads that branch (`branch_ckpt`), freezes it from the first step
# (`DistillScheduleHook(branch_stop=0)`, which needs DDP with
# find_unused_parameters=True) and teaches a fresh student with the KL and
# PKD from the branch's features (`branch_feat_loss`), for twice the
# student's schedule: on the 100-canvas detection proxy the second half of
# that schedule is where the branch's features pay.
#
#     model = dict(_base_.prockd_2stage_branch,
#                  **_base_.prockd_2stage_student, branch_ckpt=STAGE1_CKPT)
prockd_2stage_branch = dict(
    learner=dict(fusion='fpn', residual=True),
    augment=dict(out_relu=False),
    branch_head='own')
# (`_delete_`: it replaces the None that a paper config pins)
prockd_2stage_student = dict(
    branch_feat_loss=dict(
        type='mmprockd.BranchMimicLoss', loss_weight=1.0, _delete_=True))
prockd_2stage_model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
