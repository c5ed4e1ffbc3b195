# Copyright (c) mmprockd contributors. All rights reserved.
"""Accuracy proxy benchmark: is the student better with ProC-KD?

Trains the tiny RetinaNet of ``configs/benchmark/`` on the Fashion-MNIST
canvases (``tools/dataset_converters/build_fmnist_canvas.py``) with every
method and ablation below, at the same budget, for several seeds, and
evaluates each student with mmdet's CocoMetric. Every run is a fresh
process driving mmengine's Runner; its metrics and loss curve are written
to ``<work-dir>/<variant>/seed<k>/result.json``, and finished runs are
skipped when the command is run again. The table (mean and sample std over
seeds) is printed and written to ``<work-dir>/table.md``.

Usage (reduced size, about an hour on 2 CPU cores)::

    python tools/analysis_tools/proxy_benchmark.py \
        --fmnist /tmp/fmnist/usr/share/datasets/fashion-mnist

``--full`` is the GPU size (bigger canvases and data, more iterations);
``--smoke`` is 2 iterations of one ProC-KD run on one seed (tests).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

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
    for v in ('probe_kd', 'probe_kd_kl10', 'probe_kd_conf')
}
# [ours] ProC-KD in two stages: stage 2 starts its frozen branch from the
# stage-1 run's checkpoint (``model.branch_ckpt``, not the teacher's)
NEEDS.update({
    'prockd_signed_own_2stage': 'prockd_signed_own_stage1',
    'prockd_own_area_kd_2stage': 'prockd_own_area_stage1',
})
# the config key a needed run's checkpoint goes to, if not teacher_ckpt
NEEDS_KEY = {
    'prockd_signed_own_2stage': 'model.branch_ckpt',
    'prockd_own_area_kd_2stage': 'model.branch_ckpt',
}
# [ours] stage 1 of two-stage ProC-KD: the branch learns (no KL, so the
# student of this run is the student alone's), and its weights are kept
STAGE1 = dict({'model.kl_loss': None}, **KEEP_WEIGHTS)
# stage 2: the stage-1 branch, frozen from the first step, teaches a fresh
# student through the KL
STAGE2 = {'custom_hooks.0.branch_stop': 0}

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
    'prockd_own_area_pkd_kl1':
    ('recipe [ours]', CLS_PROCKD,
     dict(OWN_AREA, **{
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


def _strip(metrics: dict) -> Dict[str, float]:
    """``coco/bbox_mAP`` -> ``bbox_mAP``."""
    return {k.split('/')[-1]: float(v) for k, v in metrics.items()}


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


# ------------------------------------------------------------- one run
def _set_iters(cfg, iters: int) -> None:
    """Scale the schedule of a benchmark config to ``iters`` iterations."""
    warm = max(1, iters // 10)
    ratio = iters / cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    for sched in cfg.param_scheduler:
        if sched.type == 'LinearLR':
            sched.end = warm
        else:
            sched.begin = min(sched.get('begin', 0), warm)
            sched.end = iters
            sched.T_max = iters - sched.begin
    for hook in cfg.get('custom_hooks', []):
        if hook.type == 'mmprockd.DistillScheduleHook':
            hook.warmup = warm
            for key in ('kl_start', 'kl_warmup', 'branch_stop'):
                if hook.get(key):
                    hook[key] = round(hook[key] * ratio)


def _set_cls_data(cfg, data_root: str, batch: int,
                  val_subset: Optional[int]) -> None:
    """Point a classification or segmentation config at its data; test
    on val first."""
    if not data_root.endswith('/'):
        data_root += '/'
    cfg.train_dataloader.batch_size = batch
    cfg.test_dataloader = cfg.val_dataloader
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = data_root
    if val_subset:
        cfg.test_dataloader.dataset.indices = val_subset
    cfg.test_evaluator = cfg.val_evaluator
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg.val_interval = 10**9


def _set_data(cfg, data_root: str, batch: int, canvas: int,
              val_subset: Optional[int]) -> None:
    """Point a benchmark config at the canvases of one size preset."""
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        for step in loader.dataset.pipeline:
            if step.type == 'Resize':
                step.scale = (canvas, canvas)
    if not data_root.endswith('/'):
        data_root += '/'
    cfg.train_dataloader.batch_size = batch
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = data_root
    if val_subset:
        cfg.test_dataloader.dataset.indices = val_subset
    cfg.test_evaluator.ann_file = data_root + 'annotations/instances_val.json'
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg.val_interval = 10**9


def read_curve(run_dir: str) -> List[dict]:
    """The logged training scalars (``vis_data/scalars.json``) of a run."""
    for root, _, files in os.walk(run_dir):
        if 'scalars.json' in files and root.endswith('vis_data'):
            with open(osp.join(root, 'scalars.json')) as f:
                return [json.loads(line) for line in f if line.strip()]
    return []


def summarise_curve(curve: List[dict], last: int = 3) -> Dict[str, float]:
    """Mean of every loss key over the first and the last ``last`` logs."""
    out: Dict[str, float] = {}
    rows = [r for r in curve if 'iter' in r]
    if not rows:
        return out
    keys = sorted({k for r in rows for k in r if 'loss' in k})
    for tag, part in (('first', rows[:last]), ('last', rows[-last:])):
        for k in keys:
            vals = [r[k] for r in part if k in r]
            if vals:
                out[f'{tag}/{k}'] = sum(vals) / len(vals)
    return out


def build_cfg(variant: str,
              seed: int,
              out_dir: str,
              data_root: str,
              iters: int,
              batch: int,
              canvas: int,
              val_subset: Optional[int],
              task: str = 'det',
              cfg_options: Optional[dict] = None):
    """The config of one run: the variant's file and overrides, the
    schedule, the data, the checkpoint of the run it needs (``NEEDS``), the
    work dir and the seed."""
    from mmengine.config import Config
    _, cfg_file, overrides, _ = TASKS[task]['variants'][variant]
    cfg = Config.fromfile(osp.join(CFG_DIR, cfg_file))
    if overrides:
        cfg.merge_from_dict(overrides)
    _set_iters(cfg, iters)
    if task in ('cls', 'seg'):
        _set_cls_data(cfg, data_root, batch, val_subset)
    else:
        _set_data(cfg, data_root, batch, canvas, val_subset)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if variant in NEEDS:
        cfg.merge_from_dict({
            NEEDS_KEY.get(variant, 'model.teacher_ckpt'):
            needed_checkpoint(
                osp.dirname(osp.dirname(out_dir)), variant, seed)
        })
    cfg.work_dir = out_dir
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.experiment_name = f'{variant}_seed{seed}'
    return cfg


def run_one(variant: str,
            seed: int,
            out_dir: str,
            data_root: str,
            iters: int,
            batch: int,
            canvas: int,
            val_subset: Optional[int],
            task: str = 'det',
            cfg_options: Optional[dict] = None,
            on_done: Optional[Callable] = None) -> dict:
    """Train and test one variant with one seed; returns its result.

    ``cfg_options`` are merged last (e.g. the logging interval);
    ``on_done(runner, result)``, when given, is called at the end, with the
    runner's test loop on the test split (``tools/demo_compare.py`` draws
    its predictions there)."""
    from mmengine.runner import Runner
    cfg = build_cfg(variant, seed, out_dir, data_root, iters, batch, canvas,
                    val_subset, task, cfg_options)
    start = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    train_s = time.time() - start
    metrics = runner.test()  # the val split: for choosing settings
    result = dict(
        variant=variant,
        seed=seed,
        iters=iters,
        train_s=round(train_s, 1),
        metrics=_strip(metrics),
    )
    model = runner.model
    if getattr(model, 'learner', None) is not None and \
            not _shared_norm_head(model):
        result['proto_branch_metrics'] = _test_proto_branch(runner)
    if getattr(model, 'learner', None) is not None:
        result['proto_entropy'] = proto_entropy(runner)
    # the test split: for reporting only (tables show it with --split test)
    _use_split(runner, cfg, 'test')
    result['test_metrics'] = _strip(runner.test())
    curve = read_curve(out_dir)
    result['losses'] = summarise_curve(curve)
    result['curve'] = curve
    if on_done is not None:
        on_done(runner, result)
    return result


def needed_checkpoint(work_dir: str, variant: str, seed: int) -> str:
    """The last checkpoint of the run ``variant`` needs (``NEEDS``)."""
    from mmengine.runner import find_latest_checkpoint
    run_dir = osp.join(work_dir, NEEDS[variant], f'seed{seed}')
    ckpt = find_latest_checkpoint(run_dir) if osp.isdir(run_dir) else None
    if not ckpt:
        raise FileNotFoundError(
            f'proxy_benchmark: {variant} distils the weights of '
            f'{NEEDS[variant]} seed {seed}, but {run_dir} has no checkpoint; '
            f'run {NEEDS[variant]} first (a run of it from before its '
            'weights were kept must be removed and run again)')
    return ckpt


def _use_split(runner, cfg, split: str) -> None:
    """Point the runner's test loop at another split of the data."""
    import copy
    loader = copy.deepcopy(cfg.test_dataloader)
    evaluator = copy.deepcopy(cfg.test_evaluator)
    if 'ann_file' in evaluator:  # detection: COCO json per split
        loader.dataset.ann_file = f'annotations/instances_{split}.json'
        loader.dataset.data_prefix = dict(img=f'{split}/images/')
        evaluator.ann_file = (
            loader.dataset.data_root + f'annotations/instances_{split}.json')
    elif 'seg_map_path' in loader.dataset.get('data_prefix', {}):
        # segmentation: an image and a label-map folder per split
        loader.dataset.data_prefix = dict(
            img_path=f'{split}/images', seg_map_path=f'{split}/masks')
        loader.dataset.pop('indices', None)
    else:  # classification: a list file per split
        loader.dataset.ann_file = f'meta/{split}.txt'
        loader.dataset.pop('indices', None)
    runner._test_dataloader = loader
    runner._test_evaluator = evaluator
    runner._test_loop = dict(type='TestLoop')


def _shared_norm_head(model) -> bool:
    """Whether the branch runs the student's own heads and they hold
    batch-norm statistics. Those are the student's: the branch's pass does
    not update them (it would leak into the deployed student), so the head
    would normalise the branch's features with the wrong statistics at
    test time and the branch's figure would mean nothing (on the seg proxy
    it is the score of predicting background everywhere)."""
    from torch.nn.modules.batchnorm import _NormBase
    if model.branch_student is not None:
        return False
    return any(
        isinstance(m, _NormBase) and m.track_running_stats
        for m in model.iface.logit_head.modules())


def proto_entropy(runner, max_batches: int = 8) -> Dict[str, List[float]]:
    """How specialised the prototypes are after training, on the first
    ``max_batches`` batches of the runner's test loader (the val split
    here), per prototype level: ``assign_location`` and ``attn_location``,
    the mean entropy of a position's assignment (the learner's NetVLAD
    assignment, the augment's attention) over the K prototypes, divided by
    log K (1: spread evenly, 0: one prototype per position); and
    ``assign_usage`` / ``attn_usage``, the entropy of the prototypes'
    shares of the whole mass, divided by log K (1: all used alike)."""
    from mmprockd.models.necks.prototype_stats import (assignment_entropy,
                                                       usage_entropy)
    model = runner.model
    model.eval()
    acc: Dict[tuple, list] = {}
    for i, batch in enumerate(runner.test_dataloader):
        if i >= max_batches:
            break
        data = model.data_preprocessor(batch, False)
        assigns, attns = model.prototype_assignments(data['inputs'])
        for kind, maps in (('assign', assigns), ('attn', attns)):
            for level, a in enumerate(maps):
                ent, mass = assignment_entropy(a)
                total = acc.setdefault((kind, level), [0.0, 0, 0.0])
                total[0] += float(ent.sum())
                total[1] += ent.numel()
                total[2] = total[2] + mass
    out: Dict[str, List[float]] = {}
    for (kind, _), (ent_sum, count, mass) in sorted(acc.items()):
        out.setdefault(f'{kind}_location',
                       []).append(round(ent_sum / count, 4))
        out.setdefault(f'{kind}_usage',
                       []).append(round(usage_entropy(mass), 4))
    return out


def _test_proto_branch(runner) -> Dict[str, float]:
    """CocoMetric of the prototype branch (teacher -> learner -> augment ->
    the branch's head: the student's, or its own copy with
    ``branch_head='own'``): how well the teacher side alone detects."""
    model = runner.model
    student = model.student
    heads = model.branch_student or student
    own = student.extract_feat
    cls = model.iface.family == 'cls'

    def branch_feat(inputs, *args, **kwargs):
        # the maps the branch replaces: FPN levels, or a classifier's
        # backbone maps (then the heads' own neck pools the branch's)
        feats = tuple(student.backbone(inputs)) if cls else own(inputs)
        feats = model.prototype_branch(model._teacher_features(inputs), feats)
        if cls and heads.with_neck:
            return heads.neck(feats)
        return feats

    heads.extract_feat = branch_feat
    model._modules['student'] = heads
    try:
        metrics = runner.test()
    finally:
        model._modules['student'] = student
        del heads.extract_feat
    return _strip(metrics)


# --------------------------------------------------------- aggregation
def _metrics_of(result: dict, split: str) -> Dict[str, float]:
    return result.get('metrics' if split == 'val' else 'test_metrics', {})


def aggregate(results: Sequence[dict],
              metrics: Sequence[str] = METRICS,
              split: str = 'val',
              baseline: str = 'student',
              variants: Optional[Dict[str, tuple]] = None) -> Dict[str, dict]:
    """Mean and sample std (0 for one seed) of each metric per variant, in
    the order of ``VARIANTS`` (unknown variants last), on one split; and
    the paired gain over ``baseline``: per seed that both ran, the
    variant's metric minus the baseline's, then mean and std."""
    by_var: Dict[str, List[dict]] = {}
    for r in results:
        by_var.setdefault(r['variant'], []).append(r)
    variants = VARIANTS if variants is None else variants
    order = [v for v in variants if v in by_var]
    order += sorted(v for v in by_var if v not in variants)
    table = {}
    for v in order:
        rows = sorted(by_var[v], key=lambda r: r['seed'])
        entry = dict(seeds=[r['seed'] for r in rows])
        entry['train_s'] = statistics.fmean(r['train_s'] for r in rows)
        for m in metrics:
            vals = [
                _metrics_of(r, split)[m] for r in rows
                if m in _metrics_of(r, split)
            ]
            if not vals:
                continue
            entry[m] = dict(
                mean=statistics.fmean(vals),
                std=statistics.stdev(vals) if len(vals) > 1 else 0.0,
                values=vals)
            base = {
                r['seed']: _metrics_of(r, split).get(m)
                for r in by_var.get(baseline, [])
            }
            gains = [
                _metrics_of(r, split)[m] - base[r['seed']] for r in rows if
                base.get(r['seed']) is not None and m in _metrics_of(r, split)
            ]
            if gains and v != baseline:
                entry[m]['gain'] = dict(
                    mean=statistics.fmean(gains),
                    std=statistics.stdev(gains) if len(gains) > 1 else 0.0,
                    n=len(gains))
        branch = [
            r['proto_branch_metrics'][metrics[0]] for r in rows
            if metrics[0] in r.get('proto_branch_metrics', {})
        ]
        if branch:
            entry['branch'] = statistics.fmean(branch)
        entropy = [r['proto_entropy'] for r in rows if 'proto_entropy' in r]
        if entropy:  # mean over levels, then over seeds
            entry['entropy'] = {
                k: statistics.fmean(statistics.fmean(e[k]) for e in entropy)
                for k in ('assign_location', 'attn_location')
            }
        table[v] = entry
    return table


def format_table(table: Dict[str, dict],
                 metrics: Sequence[str] = METRICS,
                 variants: Optional[Dict[str, tuple]] = None,
                 scale: float = 100.0,
                 baseline: str = 'student') -> str:
    """Markdown table; metrics in percent as ``mean ± std``, the paired
    gain over the student alone (``+mean ± std``) beside the first one,
    the mean training time, the prototype branch's val metric and how
    specialised its prototypes are (``proto_entropy``)."""
    head = [
        'variant', 'group', 'what differs', 'seeds', metrics[0],
        'paired gain' if baseline == 'student' else f'gain over {baseline}'
    ] + list(metrics[1:]) + [
        'train s', 'branch (val)', 'entropy / log K (assign, attn)'
    ]
    lines = [
        '| ' + ' | '.join(head) + ' |',
        '|' + '---|' * len(head),
    ]
    for v, entry in table.items():
        group, _, _, desc = (VARIANTS if variants is None else variants).get(
            v, ('?', None, None, v))
        cells = [v, group, desc, str(len(entry['seeds']))]
        for i, m in enumerate(metrics):
            if m in entry:
                cells.append(f'{scale * entry[m]["mean"]:.1f} ± '
                             f'{scale * entry[m]["std"]:.1f}')
            else:
                cells.append('-')
            if i == 0:
                gain = entry.get(m, {}).get('gain')
                cells.append(f'{scale * gain["mean"]:+.1f} ± '
                             f'{scale * gain["std"]:.1f}' if gain else '-')
        cells.append(f'{entry["train_s"]:.0f}')
        cells.append(f'{scale * entry["branch"]:.1f}' if 'branch' in
                     entry else '-')
        ent = entry.get('entropy')
        cells.append(f'{ent["assign_location"]:.2f}, '
                     f'{ent["attn_location"]:.2f}' if ent else '-')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def load_results(work_dir: str) -> List[dict]:
    """Every ``result.json`` under ``work_dir``."""
    out = []
    for root, _, files in os.walk(work_dir):
        if 'result.json' in files:
            with open(osp.join(root, 'result.json')) as f:
                out.append(json.load(f))
    return out


# -------------------------------------------------------------- driver
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--fmnist',
        help='directory of the Fashion-MNIST IDX files; the canvases are '
        'built when the data directory has no annotations')
    parser.add_argument('--data-root', help='canvas data (default: preset)')
    parser.add_argument(
        '--task',
        choices=list(TASKS),
        default='det',
        help='det: the canvases and a tiny RetinaNet; cls: 64 px '
        'Fashion-MNIST images and a tiny ResNet classifier; seg: the '
        'canvases\' label maps and a tiny FCN')
    parser.add_argument('--work-dir', help='default: the task\'s')
    parser.add_argument('--full', action='store_true', help='GPU size')
    parser.add_argument(
        '--smoke',
        action='store_true',
        help='2 iterations, seed 0, prockd only, 16 val images')
    parser.add_argument(
        '--variants',
        nargs='+',
        choices=sorted({v
                        for t in TASKS.values()
                        for v in t['variants']}))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--iters', type=int, help='default: preset')
    parser.add_argument('--jobs', type=int, help='parallel runs')
    parser.add_argument(
        '--split',
        choices=['val', 'test'],
        default='val',
        help='the split the table shows: val for choosing settings, test '
        'for reporting (every run evaluates both)')
    parser.add_argument(
        '--baseline',
        default='student',
        help='the variant the paired gains are taken over (e.g. feat_mimic '
        'to ask whether a recipe beats PKD)')
    parser.add_argument(
        '--report',
        action='store_true',
        help='print the table of the finished runs, train nothing')
    parser.add_argument(
        '--worker',
        nargs=2,
        metavar=('VARIANT', 'SEED'),
        help=argparse.SUPPRESS)
    parser.add_argument('--val-subset', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    task = TASKS[args.task]
    if args.full and args.task != 'det':
        parser.error('--full exists for --task det only')
    size = dict(
        det=SIZES, cls=CLS_SIZES,
        seg=SEG_SIZES)[args.task]['full' if args.full else 'reduced']
    args.size = size
    args.work_dir = args.work_dir or task['work_dir']
    args.data_root = args.data_root or size['data']
    args.batch = size['batch']
    args.canvas = size['build'].get('canvas')
    unknown = set(args.variants or []) - set(task['variants'])
    if unknown:
        parser.error(f'variants {sorted(unknown)} do not exist for --task '
                     f'{args.task}; choose from {list(task["variants"])}')
    if args.smoke:
        args.iters, args.seeds = 2, [0]
        args.variants = args.variants or ['prockd']
        args.val_subset, args.batch = 16, 2
    args.iters = args.iters or size['iters']
    args.jobs = args.jobs or (1 if args.smoke else size['jobs'])
    args.variants = args.variants or list(task['defaults'])
    return args


def _ensure_data(args: argparse.Namespace) -> None:
    ann = osp.join(args.data_root, 'annotations', 'instances_test.json')
    if args.task == 'cls':
        ann = osp.join(args.data_root, 'meta', 'test.txt')
    if osp.isfile(ann):
        return
    if not args.fmnist:
        raise FileNotFoundError(
            f'proxy_benchmark: no canvases at {args.data_root}; pass '
            '--fmnist <dir of the Fashion-MNIST IDX files>')
    sys.path.insert(
        0, osp.join(osp.dirname(osp.dirname(__file__)), 'dataset_converters'))
    if args.task == 'cls':
        from build_fmnist_cls import build
    else:
        from build_fmnist_canvas import build
    build(args.fmnist, args.data_root, **args.size['build'])


def _worker_cmd(args: argparse.Namespace,
                variant: str,
                seed: int,
                iters: Optional[int] = None):
    cmd = [
        sys.executable,
        osp.abspath(__file__), '--worker', variant,
        str(seed), '--work-dir', args.work_dir, '--data-root', args.data_root,
        '--iters',
        str(iters or args.iters), '--task', args.task
    ]
    if args.full:
        cmd.append('--full')
    if args.smoke:
        cmd.append('--smoke')
    return cmd


def equal_time_iters(args: argparse.Namespace) -> int:
    """Iterations that give the student alone the training time of
    ``EQUAL_TIME_REF``: ``iters`` times the ratio of their mean training
    times over the finished runs of this work dir (same machine, same
    load: they run side by side)."""
    done = load_results(args.work_dir)

    def mean_s(variant):
        times = [
            r['train_s'] for r in done
            if r['variant'] == variant and r['iters'] == args.iters
        ]
        if not times:
            raise RuntimeError(
                f'proxy_benchmark: {EQUAL_TIME} needs finished runs of '
                f'{variant} at {args.iters} iterations; run them first')
        return statistics.fmean(times)

    ref = TASKS[args.task]['equal_time_ref']
    return round(args.iters * mean_s(ref) / mean_s('student'))


def run_all(args: argparse.Namespace) -> List[dict]:
    """Run the missing (variant, seed) pairs, ``--jobs`` at a time, seed by
    seed so that a cut-short run still has every method."""

    def finished(v, s):
        return osp.isfile(
            osp.join(args.work_dir, v, f'seed{s}', 'result.json'))

    wanted = list(args.variants)
    # a variant's prerequisite runs (NEEDS) run too, before it
    for v in args.variants:
        if v in NEEDS and NEEDS[v] not in wanted:
            wanted.insert(0, NEEDS[v])
    todo = [(v, s) for s in args.seeds for v in wanted if not finished(v, s)]
    # the equal-time runs last: their budget is measured on the others
    todo.sort(key=lambda vs: vs[0] == EQUAL_TIME)
    ref = TASKS[args.task]['equal_time_ref']

    def ready(v, s):
        if v == EQUAL_TIME:  # its budget needs the runs it matches
            return not any(r[2] in (ref, 'student') for r in running)
        return v not in NEEDS or finished(NEEDS[v], s)

    budget: Dict[str, int] = {}
    env = dict(os.environ)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    env.setdefault('OMP_NUM_THREADS', str(threads))
    running: List[tuple] = []
    while todo or running:
        while todo and len(running) < args.jobs:
            pick = next((i for i, (v, s) in enumerate(todo) if ready(v, s)),
                        None)
            if pick is None:
                break  # what is left waits for the running ones
            v, s = todo.pop(pick)
            iters = None
            if v == EQUAL_TIME:
                if 'iters' not in budget:
                    budget['iters'] = equal_time_iters(args)
                iters = budget['iters']
            run_dir = osp.join(args.work_dir, v, f'seed{s}')
            os.makedirs(run_dir, exist_ok=True)
            log = open(osp.join(run_dir, 'stdout.log'), 'w')
            proc = subprocess.Popen(
                _worker_cmd(args, v, s, iters),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env)
            running.append((proc, log, v, s, time.time()))
            print(
                f'[start] {v} seed {s}' +
                (f' ({iters} iterations)' if iters else ''),
                flush=True)
        if todo and not running:  # what is left waits for failed runs
            for v, s in todo:
                print(
                    f'[skipped] {v} seed {s}: {NEEDS.get(v)} seed {s} '
                    'did not finish',
                    flush=True)
            break
        time.sleep(1)
        for item in list(running):
            proc, log, v, s, t0 = item
            if proc.poll() is None:
                continue
            log.close()
            running.remove(item)
            state = 'done' if proc.returncode == 0 else \
                f'FAILED rc={proc.returncode}'
            print(
                f'[{state}] {v} seed {s} in {time.time() - t0:.0f}s',
                flush=True)
    return [
        r for r in load_results(args.work_dir)
        if r['variant'] in args.variants and r['seed'] in args.seeds
    ]


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, dict]:
    args = parse_args(argv)
    if args.worker:
        variant, seed = args.worker[0], int(args.worker[1])
        out_dir = osp.join(args.work_dir, variant, f'seed{seed}')
        result = run_one(variant, seed, out_dir, args.data_root, args.iters,
                         args.batch, args.canvas, args.val_subset, args.task)
        atomic_write_text(json.dumps(result), osp.join(out_dir, 'result.json'))
        return {}
    start = time.time()
    if args.report:
        results = [
            r for r in load_results(args.work_dir)
            if r['variant'] in args.variants and r['seed'] in args.seeds
        ]
    else:
        _ensure_data(args)
        results = run_all(args)
    task = TASKS[args.task]
    table = aggregate(
        results,
        task['metrics'],
        split=args.split,
        baseline=args.baseline,
        variants=task['variants'])
    text = format_table(table, task['metrics'], task['variants'],
                        task['scale'], args.baseline)
    print(f'split: {args.split}')
    print(text)
    print(f'wall time {time.time() - start:.0f}s')
    os.makedirs(args.work_dir, exist_ok=True)
    atomic_write_text(text + '\n',
                      osp.join(args.work_dir, f'table_{args.split}.md'))
    atomic_write_text(
        json.dumps(table, indent=1),
        osp.join(args.work_dir, f'summary_{args.split}.json'))
    return table


def atomic_write_text(text: str, path: str) -> None:
    """Write through a temporary file and a rename."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == '__main__':
    main()
