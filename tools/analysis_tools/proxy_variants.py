# Copyright (c) mmprockd contributors. All rights reserved.
"""The rows of the accuracy proxy benchmark (``proxy_benchmark.py``).

Per proxy (det: the Fashion-MNIST canvases and a tiny RetinaNet; cls: 64 px
Fashion-MNIST images and a tiny ResNet; seg: the canvases' label maps and a
tiny FCN), every variant is ``name -> (group, config file in
configs/benchmark/, config overrides, what differs)``; ``TASKS`` gathers
each proxy's variants, default rows, metrics and work dir, and the size
presets say which data and schedule a proxy runs at. Every row marked
``[ours]`` is an addition to the paper's recipe (docs/method.md).
"""
import os.path as osp
from typing import Dict

CFG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'benchmark')
STUDENT = 'retinanet_tiny_fmnist_canvas_student.py'
PROCKD = 'prockd_mobilenetv2_retinanet_tiny_fmnist_canvas.py'
FEAT = 'featmimic_mobilenetv2_retinanet_tiny_fmnist_canvas.py'
AUGNECK = 'prockd_mobilenetv2_retinanet_augneck_tiny_fmnist_canvas.py'
PROBE = 'probe_mobilenetv2_retinanet_tiny_fmnist_canvas.py'
PROBE_KD = 'probekd_mobilenetv2_retinanet_tiny_fmnist_canvas.py'
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
# [ours] the teacher maps fused by an FPN (lateral, top-down, 3x3 out)
FPN = {'model.learner.fusion': 'fpn'}
FPN_OWN = dict(FPN, **{'model.branch_head': 'own'})
# [ours] and the prototypes add to the fused maps (a skip), and a 3x3 conv
# ends the branch (signed features, as the FPN's)
FPN_RES_OWN = dict(
    FPN_OWN, **{
        'model.learner.residual': True,
        'model.level_adapter': dict(out_kernel=3)
    })
# [ours] a signed branch, as the probe's FPN output: FPN fusion, the
# prototypes added to it (skip), no ReLU at the augment's end, own head
SIGNED_OWN = dict(
    FPN_OWN, **{
        'model.learner.residual': True,
        'model.augment.out_relu': False
    })
# [ours] PKD from the branch's features to the student's, weight 1
BFEAT = dict(type='mmprockd.BranchMimicLoss', loss_weight=1.0)
# [ours] prototype-assignment distillation (issue 10's last idea): the
# student's level, projected, assigned over the frozen branch's prototypes
# like the teacher's tokens (PrototypeAssignLoss); the weight was fixed
# before any run. Its branch starts the assignment from the prototypes
# (NetVLAD's init): the authors' init leaves it uniform, nothing to distil
ASSIGN = dict(type='mmprockd.PrototypeAssignLoss', loss_weight=1.0)
ASSIGN_INIT = {'model.learner.assign_init': 'prototypes'}


def _with_assign(base: dict, schedule: dict, weight: float) -> dict:
    """``base`` + ``schedule`` + branch PKD, the assignment started from
    the prototypes and distilled at ``weight``."""
    return dict(
        base, **schedule, **ASSIGN_INIT, **{
            'model.branch_feat_loss': BFEAT,
            'model.assign_loss': dict(ASSIGN, loss_weight=weight)
        })


# the student alone trained for the wall-clock time of this recipe
EQUAL_TIME, EQUAL_TIME_REF = 'student_eqtime', 'prockd_signed_own'

# name -> (group, config, cfg overrides, what differs from ``prockd``)
VARIANTS: Dict[str, tuple] = {
    'student': ('method', STUDENT, {}, 'student alone'),
    EQUAL_TIME: ('method', STUDENT, {},
                 f'student alone, wall-clock time of {EQUAL_TIME_REF}'),
    'feat_mimic': ('method', FEAT, {}, 'feature mimic (PKD-style)'),
    'inv_proj': ('method', FEAT, {
        'model.feat_loss.projector': 'teacher'
    }, 'inverted projection (Auty et al. 2024) + PKD'),
    'prockd': ('method', PROCKD, {},
               'ProC-KD (K=72, KL 1, layers 3/5/7, plain student)'),
    'prockd_k8': ('prototypes', PROCKD, {
        'model.learner.num_prototypes': 8
    }, 'K=8 prototypes'),
    'prockd_kl0': ('KL weight', PROCKD, {
        'model.kl_loss': None
    }, 'KL weight 0 (no consistency)'),
    'prockd_kl10': ('KL weight', PROCKD, {
        'model.kl_loss.loss_weight': 10.0
    }, 'KL weight 10'),
    'prockd_augneck':
    ('student augment', AUGNECK, {}, 'student-side AugmentedNeck on'),
    'prockd_layer7': ('teacher layers', PROCKD, {
        'model.teacher.layers': ['layer7'],
        'model.teacher.backbone.out_indices': (6, )
    }, 'teacher layer7 only'),
    'prockd_loc': ('KL reduction', PROCKD, {
        'model.kl_loss.reduction': 'location'
    }, 'KL averaged over all locations, not per level'),
    'prockd_ownhead': ('head sharing', PROCKD, {
        'model.proto_head_grad': False
    }, "prototype-branch loss kept out of the student's head"),
    'prockd_frac25': ('cost lever', PROCKD, {
        'model.distill_fraction': 0.25
    }, 'teacher, branch and KL on 2 of the 8 images per step'),
    'prockd_ownhead_frac25': ('cost lever', PROCKD, {
        'model.distill_fraction': 0.25,
        'model.proto_head_grad': False
    }, 'both: 2 of 8 images, branch kept out of the head'),
    'prockd_strong': ('recipe [ours]', PROCKD, STRONG,
                      'branch: normalised inputs, 3x3 context, signed end'),
    'prockd_own': ('recipe [ours]', PROCKD, {
        'model.branch_head': 'own'
    }, 'branch has its own copy of the head'),
    'prockd_own_strong':
    ('recipe [ours]', PROCKD, OWN, 'both: strong branch with its own head'),
    'prockd_own_strong_kl0': ('recipe [ours]', PROCKD,
                              dict(OWN,
                                   **{'model.kl_loss':
                                      None}), 'strong own-head branch, no KL'),
    'prockd_own_strong_kl5': ('recipe [ours]', PROCKD,
                              dict(OWN, **{'model.kl_loss.loss_weight': 5.0}),
                              'strong own-head branch, KL weight 5'),
    # [ours] the branch fuses the teacher maps with an FPN, as the probe
    # that reaches 38 mAP does
    'prockd_fpn': ('recipe [ours]', PROCKD, FPN, 'branch fuses with an FPN'),
    'prockd_fpn_own': ('recipe [ours]', PROCKD, FPN_OWN,
                       'FPN fusion, the branch has its own head'),
    'prockd_fpn_own_kl0': ('recipe [ours]', PROCKD,
                           dict(FPN_OWN, **{'model.kl_loss': None}),
                           'FPN fusion, own head, no KL (a control)'),
    'prockd_signed_own': ('recipe [ours]', PROCKD, SIGNED_OWN,
                          'signed branch (FPN, skip, no end ReLU), own head'),
    # [ours] the KL only from mid-run, when the branch detects (in the
    # config's 400 iterations; _set_iters scales them to the run's)
    'prockd_signed_own_late':
    ('recipe [ours]', PROCKD,
     dict(SIGNED_OWN, **{
         'custom_hooks.0.kl_start': 200,
         'custom_hooks.0.kl_warmup': 40
     }), 'signed own-head branch, the KL from '
     'mid-run on'),
    # [ours] prototypes that specialise: NetVLAD's init of the assignment
    'prockd_signed_own_vlad':
    ('recipe [ours]', PROCKD,
     dict(SIGNED_OWN,
          **{'model.learner.assign_init':
             'prototypes'}), 'signed own-head branch, the assignment '
     'initialised from the prototypes'),
    # [ours] probe-then-distil with the prototype branch as the probe
    'prockd_signed_own_stage1':
    ('recipe [ours]', PROCKD, dict(SIGNED_OWN, **STAGE1),
     'two-stage, stage 1: the signed own-head branch trained (no KL)'),
    'prockd_signed_own_2stage':
    ('recipe [ours]', PROCKD, dict(SIGNED_OWN, **STAGE2),
     'two-stage, stage 2: KL from the frozen stage-1 branch'),
    # [ours] stage 2 with more of the frozen branch: the target no longer
    # moves, so a heavier KL or a feature term cannot chase it
    'prockd_signed_own_2stage_cached':
    ('recipe [ours]', PROCKD, dict(SIGNED_OWN, **STAGE2_CACHED),
     'two-stage, stage 2 from the cached outputs of the frozen branch'),
    'prockd_signed_own_2stage_kl3': ('recipe [ours]', PROCKD,
                                     dict(SIGNED_OWN, **STAGE2,
                                          **{'model.kl_loss.loss_weight':
                                             3.0}),
                                     'two-stage, stage 2 with KL weight 3'),
    'prockd_signed_own_2stage_kl10':
    ('recipe [ours]', PROCKD,
     dict(SIGNED_OWN, **STAGE2,
          **{'model.kl_loss.loss_weight':
             10.0}), 'two-stage, stage 2 with KL weight 10'),
    'prockd_signed_own_2stage_bfeat':
    ('recipe [ours]', PROCKD,
     dict(SIGNED_OWN, **STAGE2, **{'model.branch_feat_loss': BFEAT}),
     'two-stage, stage 2: KL + PKD from the frozen branch features'),
    'prockd_signed_own_2stage_bfeat_cached':
    ('recipe [ours]', PROCKD,
     dict(SIGNED_OWN, **STAGE2_CACHED, **{'model.branch_feat_loss': BFEAT}),
     'the same, from the cached outputs of the frozen branch'),
    'prockd_signed_own_1run_bfeat_cached':
    ('recipe [ours]', PROCKD,
     dict(SIGNED_OWN, **ONE_RUN_CACHED, **{'model.branch_feat_loss': BFEAT}),
     'the two stages in one run: 400 branch-only iterations, then the '
     'student (KL + branch PKD, cached)'),
    # [ours] session 14: prototype-assignment distillation on top of the
    # flagship's recipe, its branch's assignment started from the
    # prototypes (the control), at the two weights of the cls proxy
    'prockd_signed_own_1run_bfeat_cached_ap':
    ('recipe [ours]', PROCKD,
     dict(SIGNED_OWN, **ONE_RUN_CACHED, **ASSIGN_INIT,
          **{'model.branch_feat_loss': BFEAT}),
     'the one-run recipe, the assignment started from the prototypes'),
    'prockd_signed_own_1run_bfeat_assign1_cached_ap':
    ('recipe [ours]', PROCKD, _with_assign(SIGNED_OWN, ONE_RUN_CACHED, 1.0),
     'the same + prototype-assignment distillation (weight 1)'),
    'prockd_signed_own_1run_bfeat_assign10_cached_ap':
    ('recipe [ours]', PROCKD, _with_assign(SIGNED_OWN, ONE_RUN_CACHED, 10.0),
     'the same + prototype-assignment distillation (weight 10)'),
    'prockd_signed_own_kl0': ('recipe [ours]', PROCKD,
                              dict(SIGNED_OWN, **{'model.kl_loss': None}),
                              'the same without the KL (a control)'),
    'prockd_signed_own_conf':
    ('recipe [ours]', PROCKD,
     dict(SIGNED_OWN, **{'model.kl_loss.weighting': 'confidence'}),
     'signed own-head branch, KL weighted by its confidence'),
    'prockd_signed_own_bfeat': ('recipe [ours]', PROCKD,
                                dict(SIGNED_OWN,
                                     **{'model.branch_feat_loss': BFEAT}),
                                'signed own-head branch, KL + PKD from '
                                'the branch features'),
    'prockd_fpnres_own': ('recipe [ours]', PROCKD, FPN_RES_OWN,
                          'FPN fusion + skip + 3x3 end, own head'),
    'prockd_fpnres_own_kl0': ('recipe [ours]', PROCKD,
                              dict(FPN_RES_OWN, **{'model.kl_loss': None}),
                              'the same without the KL (a control)'),
    # diagnostic, not in the default run (the teacher costs ~4x more): the
    # teacher was trained on 224 px photos and its layer7 grid is 3x3 at
    # the canvas size; run it on the canvas upsampled 2x (192 px)
    # what the frozen teacher's features know: the same RetinaNet on the
    # frozen teacher (stage 1 of probe-then-distil)
    'teacher_probe': ('method', PROBE, KEEP_WEIGHTS,
                      'stage 1: RetinaNet on the frozen teacher (not a '
                      'student)'),
    # [ours] the baseline matched to two-stage ProC-KD with branch PKD: the
    # probe's FPN maps as a PKD target beside its KL
    'probe_kd_pfeat': ('method', PROBE_KD, {
        'model.feat_loss': BFEAT
    }, 'stage 2: KD + PKD from the probe\'s FPN'),
    'probe_kd': ('method', PROBE_KD, {},
                 'stage 2: KD from the stage-1 probe (KL 1, as ProC-KD\'s)'),
    'probe_kd_kl10': ('method', PROBE_KD, {
        'model.kl_loss.loss_weight': 10.0
    }, 'stage 2 with KL weight 10'),
    'probe_kd_conf': ('method', PROBE_KD, {
        'model.kl_loss.weighting': 'confidence'
    }, 'stage 2, KL weighted by the probe\'s confidence [ours]'),
    'teacher_probe_bntrain': ('diagnostic', PROBE, {
        'model.backbone.norm_eval': False
    }, 'the same, the frozen teacher\'s BN normalising with batch statistics'),
    'prockd_teacher2x': ('diagnostic', PROCKD, {
        'model.teacher.input_scale': 2.0
    }, 'teacher sees the canvas upsampled 2x'),
}
# what one command runs by default: the rows of the benchmark's table
# (docs/benchmark.md), about 30 minutes on 2 cores at 3 seeds; every other
# variant is an ablation or a diagnostic that ``--variants`` names
DEFAULT_VARIANTS = [
    'student', EQUAL_TIME, 'feat_mimic', 'inv_proj', 'prockd', EQUAL_TIME_REF,
    'teacher_probe', 'probe_kd'
]
METRICS = ('bbox_mAP', 'bbox_mAP_50')

# ---------------------------------------------- the classification proxy
CLS_STUDENT = 'cls_tiny_fmnist_student.py'
CLS_PROCKD = 'prockd_mobilenetv2_cls_tiny_fmnist.py'
CLS_FEAT = 'featmimic_mobilenetv2_cls_tiny_fmnist.py'
CLS_PROBE = 'probe_mobilenetv2_cls_tiny_fmnist.py'
CLS_PROBE_KD = 'probekd_mobilenetv2_cls_tiny_fmnist.py'
CLS_PROBE_T224 = 'probe224_mobilenetv2_cls_tiny_fmnist.py'
CLS_PROBE_KD_T224 = 'probekd224_mobilenetv2_cls_tiny_fmnist.py'
CLS_EQUAL_TIME_REF = 'prockd_own_area'
# [ours] the classification recipe: the branch has its own head, and the
# teacher layers are standardised and averaged (not sampled) down to the
# student's 2x2 grid
PKD = dict(type='mmprockd.FeatureMimicLoss', loss_weight=6.0)
OWN_AREA = {
    'model.branch_head': 'own',
    'model.learner.downsample': 'area',
    'model.learner.input_norm': True,
}
HINTON = {'model.kl_loss.temperature': 4.0, 'model.kl_loss.loss_weight': 1.0}

MIXUP = dict(augments=[dict(type='Mixup', alpha=1.0)])
MIX_STUDENT = {
    'model.data_preprocessor.batch_augments': MIXUP,
    'model.head.loss.use_soft': True,
}
MIX_STUDENT_OF_KD = {
    'model.student.data_preprocessor.batch_augments': MIXUP,
    'model.student.head.loss.use_soft': True,
}
MIX_DISTILLER = dict(
    MIX_STUDENT_OF_KD, **{
        'model.teacher_cache': None,
        'model.branch_cache': None
    })

# [ours] an unlabelled transfer set: 2000 more Fashion-MNIST images without
# labels (build_fmnist_cls.py --num-unlabelled 2000, meta lines "path -1"),
# as many per batch as labelled ones (proxy_run._add_unlabelled). The
# distillation terms see both, the cross-entropy only the 100 labelled
# images, so what the frozen side predicts off the training set reaches the
# student. Both caches hold every image and flip (2 x 2100).
UNLABELLED = {'unlabelled_ann': 'meta/unlabelled.txt', 'unlabelled_ratio': 1}
UNLABELLED_CACHED = dict(
    UNLABELLED, **{
        'model.teacher_cache.max_items': 5000,
        'model.branch_cache.max_items': 5000
    })
# [ours] the pool labelled by label propagation over the 224 px teacher's
# pooled features (tools/analysis_tools/label_pool.py; proxy_benchmark.py
# writes it before the first row that reads it): 79.9 % right on the
# proxy's pool, where the stage-1 branch is right about 75 % of the time
LP_ANN = 'meta/unlabelled_lp.txt'
LP_LABELLER = dict(config=osp.join(CFG_DIR, CLS_PROCKD), input_scale=3.5)
LABELLED_POOL = {'unlabelled_ann': LP_ANN, 'unlabelled_ratio': 1}
# [ours] the chosen recipe's two stages (224 px teacher, branch PKD, caches)
# given the pool with the propagated labels
LP_STAGE1 = dict(
    OWN_AREA, **STAGE1, **LABELLED_POOL, **{
        'model.teacher.input_scale': 3.5,
        'model.teacher_cache.max_items': 5000
    })
LP_STAGE2 = dict(
    OWN_AREA, **HINTON, **STAGE2_CACHED,
    **dict(UNLABELLED_CACHED, **LABELLED_POOL), **{
        'model.branch_feat_loss': BFEAT,
        'model.teacher.input_scale': 3.5
    })
# [ours] stage 1 on the transfer set too: the branch labels the unlabelled
# images it is sure of (class probability >= 0.95, FixMatch's threshold,
# fixed before any run) and learns from them (PseudoLabelLoss); measured
# offline first: self-training a linear probe on the 224 px teacher's
# pooled features lifted it from 77.6 to 79.8 % on the t10k val
PSEUDO = dict(type='mmprockd.PseudoLabelLoss', threshold=0.95)
PSEUDO_STAGE1 = dict(
    UNLABELLED, **{
        'model.teacher_cache.max_items': 5000,
        'model.branch_pseudo_loss': PSEUDO
    })


def _branch_stop_variants() -> Dict[str, tuple]:
    """[ours] The branch stops training before it memorises the 500 images
    (its training loss is about 0.5 at 100-150 of 500 iterations, the
    linear probe's at the end), and the KD-style KL goes on from that frozen
    branch: probe-then-distil inside one run. With and without PKD."""
    variants = {}
    for pkd in ('', '_pkd'):
        for stop in (100, 150, 250):
            over = dict(OWN_AREA, **HINTON)
            if pkd:
                over['model.feat_loss'] = PKD
            # in the config's 1000 iterations: _set_iters scales it
            over['custom_hooks.0.branch_stop'] = stop * 2
            variants[f'prockd_own_area_kd{pkd}_bstop{stop}'] = (
                'recipe [ours]', CLS_PROCKD, over,
                f'prockd_own_area_kd{pkd}, the branch frozen from '
                f'iteration {stop}')
    # the student learns only from the frozen branch: no KL while the
    # branch is still learning (a probe is trained before stage 2 starts)
    over = dict(OWN_AREA, **HINTON)
    over.update({
        'custom_hooks.0.branch_stop': 200,
        'custom_hooks.0.kl_start': 200
    })
    variants['prockd_own_area_kd_frozen100'] = (
        'recipe [ours]', CLS_PROCKD, over,
        'prockd_own_area_kd, the KL on from iteration 100, from the branch '
        'frozen there')
    return variants


# [ours] session 15: the matched comparison given the propagated labels
# with the same tuning budget on each side. Three candidates per family,
# besides its row as it was; val chooses one per family, then the chosen
# recipe is read against the chosen PKD on test and the holdout (the rule
# fixed before any run). The recipe: KD weight 3, branch PKD weight 3, KD
# temperature 2. PKD: weight 2, weight 18, the teacher at 224 px.
LP_SWEEP_RECIPE = {
    'kd3': {
        'model.kl_loss.loss_weight': 3.0
    },
    'bfeat3': {
        'model.branch_feat_loss': dict(BFEAT, loss_weight=3.0)
    },
    't2': {
        'model.kl_loss.temperature': 2.0
    },
}
LP_SWEEP_PKD = {
    'w2': {
        'model.feat_loss': dict(PKD, loss_weight=2.0)
    },
    'w18': {
        'model.feat_loss': dict(PKD, loss_weight=18.0)
    },
    't224': {
        'model.teacher.input_scale': 3.5
    },
}


def _lp_sweep_variants() -> Dict[str, tuple]:
    """The session-15 sweep rows (``LP_SWEEP_*``); registers the stage-1
    run each recipe row reads."""
    variants = {}
    recipe = 'prockd_own_area_kd_2stage_bfeat_t224_lp_unl'
    for tag, over in LP_SWEEP_RECIPE.items():
        name = f'{recipe}_{tag}'
        NEEDS[name] = NEEDS[recipe]
        NEEDS_KEY[name] = NEEDS_KEY[recipe]
        variants[name] = ('pool labels, tuned [ours]', CLS_PROCKD,
                          dict(LP_STAGE2, **over),
                          f'the chosen recipe given the propagated labels, '
                          f'{tag}')
    pkd = {'model.teacher_cache.max_items': 5000}
    for tag, over in LP_SWEEP_PKD.items():
        variants[f'feat_mimic_lp_unl_{tag}'] = (
            'pool labels, tuned [ours]', CLS_FEAT,
            dict(LABELLED_POOL, **pkd,
                 **over), f'PKD given the propagated labels, {tag}')
    return variants


CLS_VARIANTS: Dict[str, tuple] = {
    'student': ('method', CLS_STUDENT, {}, 'student alone'),
    EQUAL_TIME: ('method', CLS_STUDENT, {},
                 f'student alone, wall-clock time of {CLS_EQUAL_TIME_REF}'),
    'feat_mimic': ('method', CLS_FEAT, {}, 'feature mimic (PKD)'),
    'inv_proj': ('method', CLS_FEAT, {
        'model.feat_loss.projector': 'teacher'
    }, 'inverted projection (Auty et al. 2024) + PKD'),
    'prockd': ('method', CLS_PROCKD, {},
               'ProC-KD paper recipe (K=72, KL 10, shared head)'),
    'prockd_kl0': ('KL weight', CLS_PROCKD, {
        'model.kl_loss': None
    }, 'KL weight 0 (no consistency)'),
    'prockd_own': ('recipe [ours]', CLS_PROCKD, {
        'model.branch_head': 'own'
    }, 'branch has its own copy of the head'),
    'prockd_own_strong': ('recipe [ours]', CLS_PROCKD, OWN,
                          'own head + normalised inputs, 3x3 context'),
    'prockd_area': ('recipe [ours]', CLS_PROCKD, {
        'model.learner.downsample': 'area',
        'model.learner.input_norm': True,
    }, 'shared head, normalised inputs, area downsampling'),
    'prockd_t4': ('recipe [ours]', CLS_PROCKD, {
        'model.kl_loss.temperature': 4.0
    }, 'paper recipe with KL temperature 4'),
    'prockd_own_area': ('recipe [ours]', CLS_PROCKD, OWN_AREA,
                        'own head, normalised inputs, area downsampling'),
    'prockd_own_area_t4':
    ('recipe [ours]', CLS_PROCKD,
     dict(OWN_AREA, **{'model.kl_loss.temperature':
                       4.0}), 'prockd_own_area with KL temperature 4'),
    'prockd_own_area_kl0': ('recipe [ours]', CLS_PROCKD,
                            dict(OWN_AREA,
                                 **{'model.kl_loss':
                                    None}), 'prockd_own_area without the KL'),
    # [ours] the prototype branch on top of PKD: does the branch add
    # anything to what the feature loss alone gives?
    'prockd_pkd': ('recipe [ours]', CLS_PROCKD, {
        'model.feat_loss': PKD
    }, 'paper recipe + PKD (weight 6)'),
    'prockd_own_pkd': ('recipe [ours]', CLS_PROCKD,
                       dict({'model.branch_head': 'own'},
                            **{'model.feat_loss':
                               PKD}), 'own head + PKD (weight 6)'),
    'prockd_own_area_pkd': ('recipe [ours]', CLS_PROCKD,
                            dict(OWN_AREA,
                                 **{'model.feat_loss':
                                    PKD}), 'prockd_own_area + PKD (weight 6)'),
    # the paper's KL weight 10 pulls a PKD student towards a branch that is
    # no better than it (val): a gentler KL
    # what the frozen teacher's features know (stage 1 of probe-then-distil)
    'teacher_probe': ('method', CLS_PROBE, KEEP_WEIGHTS,
                      'stage 1: linear probe on the frozen teacher (not a '
                      'student)'),
    'probe_kd':
    ('method', CLS_PROBE_KD, {}, 'stage 2: KD (T 4) from the stage-1 probe'),
    # the teacher was trained on 224 px photos; at 64 px its layer7 is a
    # 2x2 grid: let it see the images upsampled to 224 px (its features are
    # cached, so this costs one teacher pass per image and flip)
    'feat_mimic_t224': ('teacher input [ours]', CLS_FEAT, {
        'model.teacher.input_scale': 3.5
    }, 'PKD, the teacher sees 224 px'),
    'inv_proj_t224': ('teacher input [ours]', CLS_FEAT, {
        'model.feat_loss.projector': 'teacher',
        'model.teacher.input_scale': 3.5
    }, 'inverted projection + PKD, the teacher sees 224 px'),
    'teacher_probe_t224': ('teacher input [ours]', CLS_PROBE_T224,
                           KEEP_WEIGHTS, 'linear probe, the teacher sees '
                           '224 px (not a student)'),
    'probe_kd_t224': ('teacher input [ours]', CLS_PROBE_KD_T224, {},
                      'KD (T 4) from the 224 px probe'),
    'prockd_t224': ('teacher input [ours]', CLS_PROCKD, {
        'model.teacher.input_scale': 3.5
    }, 'paper recipe, the teacher sees 224 px'),
    'prockd_own_area_t224':
    ('teacher input [ours]', CLS_PROCKD,
     dict(OWN_AREA, **{'model.teacher.input_scale':
                       3.5}), 'prockd_own_area, the teacher sees 224 px'),
    # [ours] the KL as Hinton's KD (T 4, weight 1: 16 x the KL beside the
    # CE), the setting that makes probe-then-distil pay on this proxy
    'prockd_own_area_kd':
    ('recipe [ours]', CLS_PROCKD, dict(OWN_AREA, **HINTON),
     'prockd_own_area, KL as KD: T 4, weight 1'),
    'prockd_own_area_kd_late': (
        'recipe [ours]',
        CLS_PROCKD,
        dict(
            OWN_AREA,
            **HINTON,
            **{
                # in the config's 1000 iterations: _set_iters scales them to
                # the run's (250 and 50 of 500)
                'custom_hooks.0.kl_start': 500,
                'custom_hooks.0.kl_warmup': 100
            }),
        'the same, KL from mid-run (the branch learns first)'),
    'prockd_own_area_kd_pkd': ('recipe [ours]', CLS_PROCKD,
                               dict(OWN_AREA, **HINTON,
                                    **{'model.feat_loss': PKD}),
                               'prockd_own_area_kd + PKD (weight 6)'),
    **_branch_stop_variants(),
    **_lp_sweep_variants(),
    'prockd_own_area_bfeat': ('recipe [ours]', CLS_PROCKD,
                              dict(OWN_AREA,
                                   **{'model.branch_feat_loss': BFEAT}),
                              'prockd_own_area + PKD from the branch'),
    'prockd_own_area_kd_bfeat':
    ('recipe [ours]', CLS_PROCKD,
     dict(OWN_AREA, **HINTON,
          **{'model.branch_feat_loss': dict(BFEAT, loss_weight=6.0)}),
     'prockd_own_area_kd + PKD (weight 6) from '
     'the branch, not the teacher'),
    'prockd_own_area_kd_vlad':
    ('recipe [ours]', CLS_PROCKD,
     dict(OWN_AREA, **HINTON,
          **{'model.learner.assign_init':
             'prototypes'}), 'prockd_own_area_kd, the assignment '
     'initialised from the prototypes'),
    'prockd_own_area_stage1':
    ('recipe [ours]', CLS_PROCKD, dict(OWN_AREA, **STAGE1),
     'two-stage, stage 1: the own-head branch trained (no KL)'),
    'prockd_own_area_kd_2stage':
    ('recipe [ours]', CLS_PROCKD, dict(OWN_AREA, **HINTON, **STAGE2),
     'two-stage, stage 2: KD from the frozen stage-1 branch'),
    'prockd_own_area_kd_2stage_bfeat':
    ('recipe [ours]', CLS_PROCKD,
     dict(OWN_AREA, **HINTON, **STAGE2_CACHED,
          **{'model.branch_feat_loss': BFEAT}),
     'two-stage, stage 2: KD + PKD from the frozen branch features'),
    'prockd_own_area_kd_2stage_bfeat6':
    ('recipe [ours]', CLS_PROCKD,
     dict(OWN_AREA, **HINTON, **STAGE2_CACHED,
          **{'model.branch_feat_loss':
             dict(BFEAT,
                  loss_weight=6.0)}), 'the same, PKD weight 6 (PKD\'s own)'),
    'prockd_own_area_kd_2stage_bfeat3':
    ('recipe [ours]', CLS_PROCKD,
     dict(OWN_AREA, **HINTON, **STAGE2_CACHED,
          **{'model.branch_feat_loss':
             dict(BFEAT, loss_weight=3.0)}), 'the same, PKD weight 3'),
    # the same two stages with the teacher at its own resolution (224 px):
    # does a teacher side that knows more carry more?
    'prockd_own_area_stage1_t224':
    ('teacher input [ours]', CLS_PROCKD,
     dict(OWN_AREA, **STAGE1,
          **{'model.teacher.input_scale':
             3.5}), 'two-stage, stage 1, the teacher sees 224 px'),
    'prockd_own_area_kd_2stage_bfeat_t224':
    ('teacher input [ours]', CLS_PROCKD,
     dict(
         OWN_AREA, **HINTON, **STAGE2_CACHED, **{
             'model.branch_feat_loss': BFEAT,
             'model.teacher.input_scale': 3.5
         }), 'two-stage with branch PKD, the teacher sees 224 px'),
    # [ours] Mixup (alpha 1) in the data preprocessor, so the student and
    # the frozen branch see the same mixed images (Beyer et al. 2022, "a
    # good teacher is patient and consistent"): KD matches the two on new
    # points every step instead of the same 200 views. No cache can serve a
    # mixed image: both caches off (ProtoDistiller refuses them with batch
    # augments). The student alone with the same Mixup is its baseline.
    'student_mix': ('mixup [ours]', CLS_STUDENT, MIX_STUDENT,
                    'student alone, Mixup (alpha 1)'),
    'prockd_own_area_kd_2stage_bfeat_mix':
    ('mixup [ours]', CLS_PROCKD,
     dict(OWN_AREA, **HINTON, **STAGE2, **MIX_DISTILLER,
          **{'model.branch_feat_loss': BFEAT}),
     'two-stage with branch PKD, Mixup seen by student and branch'),
    'feat_mimic_mix': ('mixup [ours]', CLS_FEAT, MIX_DISTILLER,
                       'PKD, Mixup seen by student and teacher'),
    'inv_proj_mix': ('mixup [ours]', CLS_FEAT,
                     dict(MIX_DISTILLER,
                          **{'model.feat_loss.projector':
                             'teacher'}), 'inverted projection, Mixup'),
    'probe_kd_mix': ('mixup [ours]', CLS_PROBE_KD, MIX_STUDENT_OF_KD,
                     'KD (T 4) from the 64 px probe, Mixup'),
    # [ours] the transfer set beyond the labelled images (UNLABELLED)
    'feat_mimic_unl': ('transfer set [ours]', CLS_FEAT, UNLABELLED,
                       'PKD, + 2000 unlabelled images'),
    'inv_proj_unl': ('transfer set [ours]', CLS_FEAT,
                     dict(UNLABELLED,
                          **{'model.feat_loss.projector': 'teacher'}),
                     'inverted projection, + 2000 unlabelled images'),
    # the matched baseline of the recipe with the teacher at 224 px
    'feat_mimic_t224_unl':
    ('transfer set [ours]', CLS_FEAT,
     dict(
         UNLABELLED, **{
             'model.teacher_cache.max_items': 5000,
             'model.teacher.input_scale': 3.5
         }), 'PKD, the teacher sees 224 px, + 2000 unlabelled images'),
    'probe_kd_unl': ('transfer set [ours]', CLS_PROBE_KD, UNLABELLED,
                     'KD (T 4) from the 64 px probe, + 2000 unlabelled '
                     'images'),
    'probe_kd_t224_unl': ('transfer set [ours]', CLS_PROBE_KD_T224, UNLABELLED,
                          'KD (T 4) from the 224 px probe, + '
                          '2000 unlabelled images'),
    'prockd_own_area_kd_2stage_bfeat_unl':
    ('transfer set [ours]', CLS_PROCKD,
     dict(OWN_AREA, **HINTON, **STAGE2_CACHED, **UNLABELLED_CACHED,
          **{'model.branch_feat_loss':
             BFEAT}), 'two-stage with branch PKD, + 2000 unlabelled images'),
    'prockd_own_area_kd_2stage_bfeat_pkd_unl':
    ('transfer set [ours]', CLS_PROCKD,
     dict(OWN_AREA, **HINTON, **STAGE2_CACHED, **UNLABELLED_CACHED, **{
         'model.branch_feat_loss': BFEAT,
         'model.feat_loss': PKD
     }), 'the same + PKD (weight 6) from the teacher'),
    'prockd_own_area_kd_2stage_bfeat_t224_unl':
    ('transfer set [ours]', CLS_PROCKD,
     dict(
         OWN_AREA, **HINTON, **STAGE2_CACHED, **UNLABELLED_CACHED, **{
             'model.branch_feat_loss': BFEAT,
             'model.teacher.input_scale': 3.5
         }), 'the same, the teacher sees 224 px'),
    # [ours] the chosen recipe whose stage-1 branch also self-trains on the
    # unlabelled images (PSEUDO_STAGE1): the same stage 2
    'prockd_own_area_stage1_t224_pl_unl':
    ('transfer set [ours]', CLS_PROCKD,
     dict(OWN_AREA, **STAGE1, **PSEUDO_STAGE1,
          **{'model.teacher.input_scale': 3.5}),
     'two-stage, stage 1, the teacher sees 224 px, the branch self-trains '
     'on the unlabelled images'),
    'prockd_own_area_kd_2stage_bfeat_t224_pl_unl':
    ('transfer set [ours]', CLS_PROCKD,
     dict(
         OWN_AREA, **HINTON, **STAGE2_CACHED, **UNLABELLED_CACHED, **{
             'model.branch_feat_loss': BFEAT,
             'model.teacher.input_scale': 3.5
         }), 'the chosen recipe from the self-trained branch'),
    # [ours] every row given the pool with the labels label_pool.py
    # propagated from the teacher's features (LP_ANN): the student alone
    # (the baseline that needs no distillation), PKD, and the chosen recipe
    # whose stage-1 branch also trains on them
    'student_lp_unl': ('pool labels [ours]', CLS_STUDENT, LABELLED_POOL,
                       'student alone, + 2000 images labelled by label '
                       'propagation over the teacher\'s features'),
    'feat_mimic_lp_unl': ('pool labels [ours]', CLS_FEAT,
                          dict(LABELLED_POOL,
                               **{'model.teacher_cache.max_items':
                                  5000}), 'PKD, + the 2000 propagated labels'),
    'prockd_own_area_stage1_t224_lp_unl':
    ('pool labels [ours]', CLS_PROCKD, LP_STAGE1,
     'two-stage, stage 1, 224 px, the branch also trains on the '
     'propagated labels'),
    'prockd_own_area_kd_2stage_bfeat_t224_lp_unl':
    ('pool labels [ours]', CLS_PROCKD, LP_STAGE2,
     'the chosen recipe from that branch, + the propagated labels'),
    # [ours] the same two with the branch's assignment started from the
    # prototypes, and the candidates that distil that assignment; weight 10
    # was fixed after the first run's log showed the assignment KL at about
    # 0.4 beside a KD term of about 9 (before any accuracy was read), and
    # val chose between the two
    'prockd_own_area_stage1_t224_ap_lp_unl':
    ('pool labels [ours]', CLS_PROCKD, dict(LP_STAGE1, **ASSIGN_INIT),
     'prockd_own_area_stage1_t224_lp_unl, the assignment started '
     'from the prototypes'),
    'prockd_own_area_kd_2stage_bfeat_t224_ap_lp_unl':
    ('pool labels [ours]', CLS_PROCKD, dict(LP_STAGE2, **ASSIGN_INIT),
     'the chosen recipe from that branch, + the propagated labels'),
    'prockd_own_area_kd_2stage_bfeat_assign_t224_ap_lp_unl':
    ('pool labels [ours]', CLS_PROCKD,
     dict(LP_STAGE2, **ASSIGN_INIT,
          **{'model.assign_loss':
             ASSIGN}), 'the same + prototype-assignment distillation'),
    'prockd_own_area_kd_2stage_bfeat_assign10_t224_ap_lp_unl':
    ('pool labels [ours]', CLS_PROCKD,
     dict(LP_STAGE2, **ASSIGN_INIT,
          **{'model.assign_loss': dict(ASSIGN, loss_weight=10.0)}),
     'the same, the assignment KL at weight 10'),
    # the control without an ImageNet teacher: the unlabelled images get
    # the soft labels of the student alone (trained on the 100 labelled
    # images, same seed), i.e. self-training, the semi-supervised baseline
    # a user with unlabelled images has anyway
    'student_kept': ('transfer set [ours]', CLS_STUDENT, KEEP_WEIGHTS,
                     'student alone, weights kept (the self-training '
                     'teacher)'),
    'self_kd_unl': ('transfer set [ours]', CLS_PROBE_KD,
                    dict(UNLABELLED,
                         **{'model.teacher': osp.join(CFG_DIR, CLS_STUDENT)}),
                    'KD (T 4) from the student alone, + 2000 '
                    'unlabelled images (self-training, no ImageNet teacher)'),
    # [ours] not a method: the student alone given the pool's true labels
    # (build_fmnist_cls.py writes them beside the pool, for this row only),
    # in the batches of the *_unl rows: what a perfect labelling of the
    # 2000 images could give this student, the room above the rows that
    # only distil on them
    'student_oracle_unl': ('upper bound [ours]', CLS_STUDENT, {
        'unlabelled_ann': 'meta/unlabelled_oracle.txt',
        'unlabelled_ratio': 1
    }, 'upper bound, not a method: the student alone, the 2000 pool images '
                           'with their true labels'),
    'prockd_own_area_pkd_kl1': ('recipe [ours]', CLS_PROCKD,
                                dict(
                                    OWN_AREA, **{
                                        'model.feat_loss': PKD,
                                        'model.kl_loss.loss_weight': 1.0
                                    }), 'prockd_own_area_pkd, KL weight 1'),
}
CLS_METRICS = ('top1', )

# task -> what differs between the proxies
TASKS = {
    'det':
    dict(
        variants=VARIANTS,
        defaults=DEFAULT_VARIANTS,
        metrics=METRICS,
        scale=100.0,  # CocoMetric gives fractions
        equal_time_ref=EQUAL_TIME_REF,
        work_dir='work_dirs/proxy_benchmark'),
    'cls':
    dict(
        variants=CLS_VARIANTS,
        # the rows of the classification table
        defaults=[
            'student', EQUAL_TIME, 'feat_mimic', 'inv_proj', 'prockd',
            'prockd_own_area', 'prockd_own_area_kd_pkd', 'teacher_probe',
            'probe_kd'
        ],
        metrics=CLS_METRICS,
        scale=1.0,  # mmpretrain's Accuracy gives percent
        equal_time_ref=CLS_EQUAL_TIME_REF,
        work_dir='work_dirs/proxy_cls'),
}

# size presets: data built by build_fmnist_canvas.py, training iterations
SIZES = {
    'reduced':
    dict(
        data='data/fmnist_canvas/reduced/',
        build=dict(
            num_train=1000, num_val=200, canvas=96, min_size=24, max_size=48),
        iters=400,
        batch=8,
        jobs=2),
    # GPU size: untested (no GPU was available when it was written)
    'full':
    dict(
        data='data/fmnist_canvas/full/',
        build=dict(
            num_train=8000, num_val=1000, canvas=160, min_size=32,
            max_size=80),
        iters=1000,
        batch=16,
        jobs=4),
}

CLS_SIZES = {
    'reduced':
    dict(
        # 500 training images: the low-data regime where the frozen
        # teacher's side is better than the student (chosen on val: at 2000
        # images the branch was level with the student, docs/benchmark.md)
        data='data/fmnist_cls_n500/',
        build=dict(
            num_train=500, num_val=1000, num_test=2000, size=64, seed=0),
        iters=500,  # 32 epochs of 500 images at batch 32
        batch=32,
        jobs=2),
}

# ------------------------------------------------ the segmentation proxy
SEG_STUDENT = 'fcn_tiny_fmnist_canvas_seg_student.py'
SEG_PROCKD = 'prockd_mobilenetv2_fcn_tiny_fmnist_canvas_seg.py'
SEG_FEAT = 'featmimic_mobilenetv2_fcn_tiny_fmnist_canvas_seg.py'
SEG_PROBE = 'probe_mobilenetv2_fcn_tiny_fmnist_canvas_seg.py'
SEG_PROBE_KD = 'probekd_mobilenetv2_fcn_tiny_fmnist_canvas_seg.py'
SEG_EQUAL_TIME_REF = 'prockd'
# the segmentation recipe's branch: its own head, the teacher at 2x
OWN_T2X = {'model.branch_head': 'own', 'model.teacher.input_scale': 2.0}
SEG_VARIANTS: Dict[str, tuple] = {
    'student': ('method', SEG_STUDENT, {}, 'student alone'),
    EQUAL_TIME: ('method', SEG_STUDENT, {},
                 f'student alone, wall-clock time of {SEG_EQUAL_TIME_REF}'),
    'feat_mimic': ('method', SEG_FEAT, {}, 'feature mimic (PKD)'),
    'inv_proj': ('method', SEG_FEAT, {
        'model.feat_loss.projector': 'teacher'
    }, 'inverted projection (Auty et al. 2024) + PKD'),
    'prockd': ('method', SEG_PROCKD, {},
               'ProC-KD paper recipe (K=72, KL 1, shared head, stage 4)'),
    'prockd_own': ('recipe [ours]', SEG_PROCKD, {
        'model.branch_head': 'own'
    }, 'branch has its own copy of the head'),
    # [ours] the detection recipe of session 8, unchanged: stage 1 trains
    # the own-head branch (no KL), stage 2 distils the frozen branch (KL +
    # PKD from its features, outputs cached: the decode head reads stage 4
    # only, which the branch replaces) into a fresh student
    'prockd_own_stage1':
    ('recipe [ours]', SEG_PROCKD, dict({'model.branch_head': 'own'}, **STAGE1),
     'two-stage, stage 1: the own-head branch trained (no KL)'),
    'prockd_own_2stage_bfeat':
    ('recipe [ours]', SEG_PROCKD,
     dict({'model.branch_head': 'own'}, **STAGE2_CACHED,
          **{'model.branch_feat_loss':
             BFEAT}), 'two-stage, stage 2: KL + PKD from the frozen branch'),
    'prockd_own_1run_bfeat':
    ('recipe [ours]', SEG_PROCKD,
     dict({'model.branch_head': 'own'}, **ONE_RUN_CACHED,
          **{'model.branch_feat_loss': BFEAT}),
     'the two stages in one run: 400 branch-only iterations, then the '
     'student'),
    # [ours] the same with the teacher on the canvas upsampled 2x (192 px):
    # at 96 px its probe is below the student; does a teacher side that
    # sees its own scale know more, and teach more?
    'prockd_own_1run_bfeat_t2x':
    ('teacher input [ours]', SEG_PROCKD,
     dict({
         'model.branch_head': 'own',
         'model.teacher.input_scale': 2.0
     }, **ONE_RUN_CACHED,
          **{'model.branch_feat_loss':
             BFEAT}), 'the same, the teacher sees the canvas at 2x (192 px)'),
    # [ours] session 14: prototype-assignment distillation on the same
    # recipe, as on detection
    'prockd_own_1run_bfeat_t2x_ap':
    ('teacher input [ours]', SEG_PROCKD,
     dict(OWN_T2X, **ONE_RUN_CACHED, **ASSIGN_INIT,
          **{'model.branch_feat_loss': BFEAT}),
     'prockd_own_1run_bfeat_t2x, the assignment started from the '
     'prototypes'),
    'prockd_own_1run_bfeat_assign1_t2x_ap':
    ('teacher input [ours]', SEG_PROCKD,
     _with_assign(OWN_T2X, ONE_RUN_CACHED, 1.0),
     'the same + prototype-assignment distillation (weight 1)'),
    'prockd_own_1run_bfeat_assign10_t2x_ap':
    ('teacher input [ours]', SEG_PROCKD,
     _with_assign(OWN_T2X, ONE_RUN_CACHED, 10.0),
     'the same + prototype-assignment distillation (weight 10)'),
    # what the frozen teacher's features know (stage 1 of probe-then-distil)
    'teacher_probe': ('method', SEG_PROBE, KEEP_WEIGHTS,
                      'stage 1: FCN head on the frozen teacher (not a '
                      'student)'),
    'probe_kd': ('method', SEG_PROBE_KD, {},
                 'stage 2: KD from the stage-1 probe (KL 1, as ProC-KD\'s)'),
}
SEG_METRICS = ('mIoU', 'mAcc', 'aAcc')
# the detection proxy's canvases (their label maps), schedule and batch
SEG_SIZES = {'reduced': dict(SIZES['reduced'], iters=400, batch=8, jobs=2)}
TASKS['seg'] = dict(
    variants=SEG_VARIANTS,
    # the rows of the segmentation table
    defaults=[
        'student', EQUAL_TIME, 'feat_mimic', 'prockd', 'prockd_own',
        'teacher_probe', 'probe_kd'
    ],
    metrics=SEG_METRICS,
    scale=1.0,  # mmseg's IoUMetric gives percent
    equal_time_ref=SEG_EQUAL_TIME_REF,
    work_dir='work_dirs/proxy_seg')
