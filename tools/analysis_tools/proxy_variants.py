# Copyright (c) mmprockd contributors. All rights reserved.
"""The rows of the accuracy proxy benchmark (``proxy_benchmark.py``).

Per proxy (det: the Fashion-MNIST canvases and a tiny RetinaNet; cls: 64 px
Fashion-MNIST images and a tiny ResNet; seg: the canvases' label maps and a
tiny FCN), every variant is ``name -> (group, config file in
configs/benchmark/, config overrides, what differs)``; ``TASKS`` gathers
each proxy's variants, default rows, metrics and work dir, and the size
presets say which data and schedule a proxy runs at. The classification
rows are in ``proxy_variants_cls.py``, the blocks every proxy builds on in
``proxy_common.py``. Every row marked
``[ours]`` is an addition to the paper's recipe (docs/method.md).
"""
from typing import Dict

from proxy_common import (ASSIGN_INIT, BFEAT, EQUAL_TIME, KEEP_WEIGHTS,
                          ONE_RUN_CACHED, OWN, STAGE1, STAGE2, STAGE2_CACHED,
                          STRONG, with_assign)
from proxy_variants_cls import CLS_EQUAL_TIME_REF, CLS_METRICS, CLS_VARIANTS

STUDENT = 'retinanet_tiny_fmnist_canvas_student.py'
PROCKD = 'prockd_mobilenetv2_retinanet_tiny_fmnist_canvas.py'
FEAT = 'featmimic_mobilenetv2_retinanet_tiny_fmnist_canvas.py'
AUGNECK = 'prockd_mobilenetv2_retinanet_augneck_tiny_fmnist_canvas.py'
PROBE = 'probe_mobilenetv2_retinanet_tiny_fmnist_canvas.py'
PROBE_KD = 'probekd_mobilenetv2_retinanet_tiny_fmnist_canvas.py'

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

# the student alone trained for the wall-clock time of this recipe
EQUAL_TIME_REF = 'prockd_signed_own'

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
    # the control a reviewer asks for: the same recipe with the frozen
    # teacher left at its random init (no checkpoint). If the ImageNet
    # weights are what pays, this row loses the recipe's gain
    'two_stage_random_teacher':
    ('control [ours]', PROCKD,
     dict(SIGNED_OWN, **ONE_RUN_CACHED, **{
         'model.branch_feat_loss': BFEAT,
         'model.teacher.ckpt': None
     }), 'prockd_signed_own_1run_bfeat_cached with a randomly initialised '
     'frozen teacher'),
    # [ours] prototype-assignment distillation on top of the
    # flagship's recipe, its branch's assignment started from the
    # prototypes (the control), at the two weights of the cls proxy
    'prockd_signed_own_1run_bfeat_cached_ap':
    ('recipe [ours]', PROCKD,
     dict(SIGNED_OWN, **ONE_RUN_CACHED, **ASSIGN_INIT,
          **{'model.branch_feat_loss': BFEAT}),
     'the one-run recipe, the assignment started from the prototypes'),
    'prockd_signed_own_1run_bfeat_assign1_cached_ap':
    ('recipe [ours]', PROCKD, with_assign(SIGNED_OWN, ONE_RUN_CACHED, 1.0),
     'the same + prototype-assignment distillation (weight 1)'),
    'prockd_signed_own_1run_bfeat_assign10_cached_ap':
    ('recipe [ours]', PROCKD, with_assign(SIGNED_OWN, ONE_RUN_CACHED, 10.0),
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
    # [ours] the detection recipe, unchanged: stage 1 trains
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
    # the control: the same recipe, the frozen teacher at its random init
    'two_stage_t2x_random_teacher':
    ('control [ours]', SEG_PROCKD,
     dict(OWN_T2X, **ONE_RUN_CACHED, **{
         'model.branch_feat_loss': BFEAT,
         'model.teacher.ckpt': None
     }), 'prockd_own_1run_bfeat_t2x with a randomly initialised frozen '
     'teacher'),
    # [ours] prototype-assignment distillation on the same
    # recipe, as on detection
    'prockd_own_1run_bfeat_t2x_ap':
    ('teacher input [ours]', SEG_PROCKD,
     dict(OWN_T2X, **ONE_RUN_CACHED, **ASSIGN_INIT,
          **{'model.branch_feat_loss': BFEAT}),
     'prockd_own_1run_bfeat_t2x, the assignment started from the '
     'prototypes'),
    'prockd_own_1run_bfeat_assign1_t2x_ap':
    ('teacher input [ours]', SEG_PROCKD,
     with_assign(OWN_T2X, ONE_RUN_CACHED, 1.0),
     'the same + prototype-assignment distillation (weight 1)'),
    'prockd_own_1run_bfeat_assign10_t2x_ap':
    ('teacher input [ours]', SEG_PROCKD,
     with_assign(OWN_T2X, ONE_RUN_CACHED, 10.0),
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
