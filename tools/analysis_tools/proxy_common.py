# Copyright (c) mmprockd contributors. All rights reserved.
"""What the rows of every accuracy proxy share (``proxy_variants.py``):
the config dir, the runs a row needs and where their checkpoint goes, and
the override blocks of the two-stage recipe [ours] that detection,
classification and segmentation rows all build on."""
import os.path as osp

CFG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'benchmark')
# a probe run keeps its last weights: stage 2 of probe-then-distil
# distils them (the other runs keep metrics only)
KEEP_WEIGHTS = {
    'default_hooks.checkpoint':
    dict(type='CheckpointHook', interval=-1, by_epoch=False, save_last=True)
}
# a variant that needs another's finished run of the same seed: its
# ``model.teacher_ckpt`` is that run's last checkpoint
NEEDS = {
    v: 'teacher_probe'
    for v in ('probe_kd', 'probe_kd_kl10', 'probe_kd_conf', 'probe_kd_pfeat')
}
NEEDS['probe_kd_t224'] = 'teacher_probe_t224'
NEEDS['probe_kd_mix'] = 'teacher_probe'
# [ours] ProC-KD in two stages: stage 2 starts its frozen branch from the
# stage-1 run's checkpoint (``model.branch_ckpt``, not the teacher's)
NEEDS.update({
    'prockd_signed_own_2stage': 'prockd_signed_own_stage1',
    'prockd_signed_own_2stage_kl3': 'prockd_signed_own_stage1',
    'prockd_signed_own_2stage_kl10': 'prockd_signed_own_stage1',
    'prockd_signed_own_2stage_bfeat': 'prockd_signed_own_stage1',
    'prockd_signed_own_2stage_cached': 'prockd_signed_own_stage1',
    'prockd_signed_own_2stage_bfeat_cached': 'prockd_signed_own_stage1',
    'prockd_own_area_kd_2stage': 'prockd_own_area_stage1',
    'prockd_own_area_kd_2stage_bfeat': 'prockd_own_area_stage1',
    'prockd_own_area_kd_2stage_bfeat6': 'prockd_own_area_stage1',
    'prockd_own_area_kd_2stage_bfeat3': 'prockd_own_area_stage1',
    'prockd_own_area_kd_2stage_bfeat_t224': 'prockd_own_area_stage1_t224',
    'prockd_own_area_kd_2stage_bfeat_mix': 'prockd_own_area_stage1',
    'prockd_own_area_kd_2stage_bfeat_unl': 'prockd_own_area_stage1',
    'prockd_own_area_kd_2stage_bfeat_t224_unl': 'prockd_own_area_stage1_t224',
    'probe_kd_unl': 'teacher_probe',
    'probe_kd_t224_unl': 'teacher_probe_t224',
    'self_kd_unl': 'student_kept',
})
NEEDS['prockd_own_area_kd_2stage_bfeat_pkd_unl'] = 'prockd_own_area_stage1'
NEEDS['prockd_own_2stage_bfeat'] = 'prockd_own_stage1'
NEEDS['prockd_own_area_kd_2stage_bfeat_t224_pl_unl'] = \
    'prockd_own_area_stage1_t224_pl_unl'
NEEDS['prockd_own_area_kd_2stage_bfeat_t224_lp_unl'] = \
    'prockd_own_area_stage1_t224_lp_unl'
NEEDS['prockd_own_area_kd_2stage_bfeat_t224_ap_lp_unl'] = \
    'prockd_own_area_stage1_t224_ap_lp_unl'
NEEDS['prockd_own_area_kd_2stage_bfeat_assign_t224_ap_lp_unl'] = \
    'prockd_own_area_stage1_t224_ap_lp_unl'
NEEDS['prockd_own_area_kd_2stage_bfeat_assign10_t224_ap_lp_unl'] = \
    'prockd_own_area_stage1_t224_ap_lp_unl'
# the config key a needed run's checkpoint goes to, if not teacher_ckpt
NEEDS_KEY = {
    'prockd_signed_own_2stage': 'model.branch_ckpt',
    'prockd_signed_own_2stage_kl3': 'model.branch_ckpt',
    'prockd_signed_own_2stage_kl10': 'model.branch_ckpt',
    'prockd_signed_own_2stage_bfeat': 'model.branch_ckpt',
    'prockd_signed_own_2stage_cached': 'model.branch_ckpt',
    'prockd_signed_own_2stage_bfeat_cached': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat6': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat3': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat_t224': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat_mix': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat_unl': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat_t224_unl': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat_pkd_unl': 'model.branch_ckpt',
    'prockd_own_2stage_bfeat': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat_t224_pl_unl': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat_t224_lp_unl': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat_t224_ap_lp_unl': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat_assign_t224_ap_lp_unl':
    'model.branch_ckpt',
    'prockd_own_area_kd_2stage_bfeat_assign10_t224_ap_lp_unl':
    'model.branch_ckpt',
}
# [ours] stage 1 of two-stage ProC-KD: the branch learns (no KL, so the
# student of this run is the student alone's), and its weights are kept
STAGE1 = dict({'model.kl_loss': None}, **KEEP_WEIGHTS)
# stage 2: the stage-1 branch, frozen from the first step, teaches a fresh
# student through the KL
STAGE2 = {'custom_hooks.0.branch_stop': 0}
# [ours] and the frozen branch's outputs reused from the second epoch on
# (``branch_cache``): the same targets to float rounding, a stage-2 step at
# a student step's cost (the pipelines are a fixed resize and a flip, in the
# key)
STAGE2_CACHED = dict(
    STAGE2, **{'model.branch_cache': dict(max_items=2000, dtype='fp32')})

# [ours] the two stages in one run (DistillScheduleHook(student_start=...)):
# 400 iterations in which only the branch learns (stage 1's length and
# schedule; the student left as built), then the student phase, frozen
# branch, at the row's schedule (``@ITERS``) with a schedule of its own,
# as stage 2 (proxy_run._set_iters)
ONE_RUN = {
    'custom_hooks.0.student_start': 400,
    'custom_hooks.0.branch_stop': 400
}
ONE_RUN_CACHED = dict(
    ONE_RUN, **{'model.branch_cache': dict(max_items=2000, dtype='fp32')})

# [ours] a branch that can detect: each teacher layer standardised before
# the fusion, a 3x3 conv + BN + ReLU after it, and a 3x3 conv at the end so
# the branch's features are signed like the FPN's
STRONG = {
    'model.learner.input_norm': True,
    'model.learner.fusion_convs': 1,
    'model.level_adapter': dict(out_kernel=3),
}
# [ours] and the branch has its own copy of the student's head
OWN = dict(STRONG, **{'model.branch_head': 'own'})
# [ours] PKD from the branch's features to the student's, weight 1
BFEAT = dict(type='mmprockd.BranchMimicLoss', loss_weight=1.0)
# [ours] prototype-assignment distillation: the
# student's level, projected, assigned over the frozen branch's prototypes
# like the teacher's tokens (PrototypeAssignLoss); the weight was fixed
# before any run. Its branch starts the assignment from the prototypes
# (NetVLAD's init): the authors' init leaves it uniform, nothing to distil
ASSIGN = dict(type='mmprockd.PrototypeAssignLoss', loss_weight=1.0)
ASSIGN_INIT = {'model.learner.assign_init': 'prototypes'}


def with_assign(base: dict, schedule: dict, weight: float) -> dict:
    """``base`` + ``schedule`` + branch PKD, the assignment started from
    the prototypes and distilled at ``weight``."""
    return dict(
        base, **schedule, **ASSIGN_INIT, **{
            'model.branch_feat_loss': BFEAT,
            'model.assign_loss': dict(ASSIGN, loss_weight=weight)
        })


# the student alone trained for the wall-clock time of a recipe (each
# proxy names the recipe: its ``equal_time_ref``)
EQUAL_TIME = 'student_eqtime'
