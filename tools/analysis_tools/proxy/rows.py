# Copyright (c) mmprockd contributors. All rights reserved.
"""The rows of the accuracy proxy benchmark: one entry per row of the
tables of docs/benchmark.md.

A row is ``name -> dict(what=..., det=(config, overrides), seg=...,
cls=...)``: what it is, and for each proxy that runs it a config file of
``configs/benchmark/`` and the config keys it changes. ``NEEDS`` says which
rows distil another row's finished run; ``RECOMMENDED`` names the recipe we
recommend per proxy; ``TASKS`` gathers, per proxy, its rows, default rows,
metrics and sizes. Every block marked ``[ours]`` is an addition to the
paper's recipe (docs/method.md).
"""
import os.path as osp
from typing import Dict, Tuple

CFG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))),
    'configs', 'benchmark')

# ----------------------------------------------------------- config files
# detection: the Fashion-MNIST canvases and a tiny RetinaNet
STUDENT = 'retinanet_r18-tiny_fpn_400i_fmnist-canvas_student.py'
PROCKD = 'prockd_mobilenetv2_retinanet_r18-tiny_fpn_400i_fmnist-canvas.py'
FEAT = 'pkd_mobilenetv2_retinanet_r18-tiny_fpn_400i_fmnist-canvas.py'
PROBE = 'probe_mobilenetv2_retinanet_fpn_400i_fmnist-canvas.py'
PROBE_KD = 'probekd_mobilenetv2_retinanet_r18-tiny_fpn_400i_fmnist-canvas.py'
# segmentation: the canvases' label maps and a tiny FCN
SEG_STUDENT = 'fcn_r18-tiny-d8_400i_fmnist-canvas_student.py'
SEG_PROCKD = 'prockd_mobilenetv2_fcn_r18-tiny-d8_400i_fmnist-canvas.py'
SEG_FEAT = 'pkd_mobilenetv2_fcn_r18-tiny-d8_400i_fmnist-canvas.py'
SEG_PROBE = 'probe_mobilenetv2_fcn_400i_fmnist-canvas.py'
SEG_PROBE_KD = 'probekd_mobilenetv2_fcn_r18-tiny-d8_400i_fmnist-canvas.py'
# classification: 64 px Fashion-MNIST images and a tiny ResNet
CLS_STUDENT = 'resnet18-tiny_1000i_fmnist-64px_student.py'
CLS_PROCKD = 'prockd_mobilenetv2_resnet18-tiny_1000i_fmnist-64px.py'
CLS_FEAT = 'pkd_mobilenetv2_resnet18-tiny_1000i_fmnist-64px.py'
CLS_PROBE = 'probe_mobilenetv2_linear_1000i_fmnist-64px.py'
CLS_PROBE_KD = 'probekd_mobilenetv2_resnet18-tiny_1000i_fmnist-64px.py'

# ------------------------------------------------------ shared blocks
# a run whose weights another row distils keeps its last checkpoint (the
# other runs keep metrics only)
KEEP_WEIGHTS = {
    'default_hooks.checkpoint':
    dict(type='CheckpointHook', interval=-1, by_epoch=False, save_last=True)
}
INV_PROJ = {'model.feat_loss.projector': 'teacher'}
# [ours] two-stage ProC-KD in two runs. Stage 1: the branch learns (no
# KL, so this run's student is the student alone's) and keeps its weights
STAGE1 = dict({'model.kl_loss': None}, **KEEP_WEIGHTS)
# stage 2: the stage-1 branch, frozen from the first step, teaches a fresh
# student through the KL
STAGE2 = {'custom_hooks.0.branch_stop': 0}
# and the frozen branch's outputs reused from the second epoch on (the
# pipelines are a fixed resize and a flip, in the cache key)
CACHE = {'model.branch_cache': dict(max_items=2000, dtype='fp32')}
STAGE2_CACHED = dict(STAGE2, **CACHE)
# [ours] the two stages in one run (DistillScheduleHook(student_start)):
# 400 iterations in which only the branch learns, then the student phase,
# frozen branch, at the row's schedule (``@ITERS``; run._set_iters)
ONE_RUN_CACHED = dict(
    {
        'custom_hooks.0.student_start': 400,
        'custom_hooks.0.branch_stop': 400
    }, **CACHE)
# [ours] PKD from the frozen branch's features to the student's, weight 1
BFEAT = dict(type='mmprockd.BranchMimicLoss', loss_weight=1.0)
# [ours] box distillation: the student's box deltas towards the frozen
# branch's, each anchor weighted by the branch's confidence
BOX = dict(type='mmprockd.BoxDistillLoss', loss_weight=1.0)
# after CrossKD (Wang et al. 2024): the KL and the box loss taken on the
# student's maps through the frozen branch's own head
CROSS_HEAD = {'model.kd_head': 'branch', 'model.box_loss': BOX}
# the control: the frozen teacher left at its random init
RANDOM_TEACHER = {'model.teacher.ckpt': None}
# [ours] prototype-assignment distillation: the student's level, projected,
# assigned over the frozen branch's prototypes like the teacher's tokens;
# its branch starts the assignment from the prototypes (NetVLAD's init)
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


# [ours] the detection branch: the teacher maps fused by an FPN, the
# prototypes added to them (a skip), no ReLU at the augment's end (signed
# features, as the FPN's), and its own copy of the student's head
SIGNED_OWN = {
    'model.learner.fusion': 'fpn',
    'model.branch_head': 'own',
    'model.learner.residual': True,
    'model.augment.out_relu': False
}
DET_TWO_STAGE = dict(SIGNED_OWN, **ONE_RUN_CACHED,
                     **{'model.branch_feat_loss': BFEAT})
# [ours] the segmentation branch: its own head; t2x: the teacher sees the
# canvas upsampled 2x (192 px)
SEG_OWN = {'model.branch_head': 'own'}
OWN_T2X = dict(SEG_OWN, **{'model.teacher.input_scale': 2.0})
SEG_TWO_STAGE_T2X = dict(OWN_T2X, **ONE_RUN_CACHED,
                         **{'model.branch_feat_loss': BFEAT})
# [ours] the classification branch: its own head, the teacher layers
# standardised and averaged down to the student's 2x2 grid; stage 2 is
# Hinton's KD (T 4, weight 1) and branch PKD, outputs cached
PKD = dict(type='mmprockd.FeatureMimicLoss', loss_weight=6.0)
OWN_AREA = {
    'model.branch_head': 'own',
    'model.learner.downsample': 'area',
    'model.learner.input_norm': True,
}
HINTON = {'model.kl_loss.temperature': 4.0, 'model.kl_loss.loss_weight': 1.0}
T224 = {'model.teacher.input_scale': 3.5}  # 64 px -> 224 px
CLS_STAGE2 = dict(OWN_AREA, **HINTON, **STAGE2_CACHED,
                  **{'model.branch_feat_loss': BFEAT})
# [ours] the pool: 2000 more images (build_fmnist_cls.py --num-unlabelled),
# as many per batch as labelled ones (run._add_unlabelled); the
# distillation terms see both, the cross-entropy only labelled ones. The
# caches hold every image and flip
POOL = {'unlabelled_ann': 'meta/unlabelled.txt', 'unlabelled_ratio': 1}
POOL_CACHED = dict(
    POOL, **{
        'model.teacher_cache.max_items': 5000,
        'model.branch_cache.max_items': 5000
    })
# [ours] the pool labelled by label propagation over the 224 px teacher's
# features (label_pool.py; the table writes it before the first row that
# reads it), and the pool with its true labels (a diagnostic, not a method)
LP_ANN = 'meta/unlabelled_lp.txt'
LP_LABELLER = dict(config=osp.join(CFG_DIR, CLS_PROCKD), input_scale=3.5)
POOL_PROPAGATED = {'unlabelled_ann': LP_ANN, 'unlabelled_ratio': 1}
POOL_TRUE = {
    'unlabelled_ann': 'meta/unlabelled_oracle.txt',
    'unlabelled_ratio': 1
}
TEACHER_CACHE = {'model.teacher_cache.max_items': 5000}
# [ours] the two stages given the propagated labels, the teacher at 224 px
STAGE1_PROPAGATED = dict(OWN_AREA, **STAGE1, **POOL_PROPAGATED, **T224,
                         **TEACHER_CACHE)
STAGE2_PROPAGATED = dict(
    OWN_AREA, **HINTON, **STAGE2_CACHED,
    **dict(POOL_CACHED, **POOL_PROPAGATED), **{
        'model.branch_feat_loss': BFEAT,
        'model.teacher.input_scale': 3.5
    })
PKD_PROPAGATED = dict(POOL_PROPAGATED, **TEACHER_CACHE)

# [ours] the tuning candidates of the matched classification comparison,
# three per family, each its row given the propagated labels with one
# setting changed; val chooses one per family
SWEEP_TWO_STAGE = {
    'kd3': {
        'model.kl_loss.loss_weight': 3.0
    },
    'branch_pkd3': {
        'model.branch_feat_loss': dict(BFEAT, loss_weight=3.0)
    },
    'temp2': {
        'model.kl_loss.temperature': 2.0
    },
}
SWEEP_PKD = {
    'w2': {
        'model.feat_loss': dict(PKD, loss_weight=2.0)
    },
    'w18': {
        'model.feat_loss': dict(PKD, loss_weight=18.0)
    },
    't224': T224,
}

# ------------------------------------------------------------- the rows
ROWS: Dict[str, dict] = {
    # the methods, on every proxy
    'student':
    dict(
        what='the student alone',
        det=(STUDENT, {}),
        seg=(SEG_STUDENT, {}),
        cls=(CLS_STUDENT, {})),
    'student_equal_time':
    dict(
        what='the student alone, for the training time of the proxy\'s '
        '``equal_time_ref`` row (measured in the same work dir)',
        det=(STUDENT, {}),
        seg=(SEG_STUDENT, {}),
        cls=(CLS_STUDENT, {})),
    'pkd':
    dict(
        what='PKD feature mimic (Cao et al. 2022), weight 6',
        det=(FEAT, {}),
        seg=(SEG_FEAT, {}),
        cls=(CLS_FEAT, {})),
    'inverted_projection':
    dict(
        what='PKD with the projector on the teacher\'s side (Auty et al. '
        '2024)',
        det=(FEAT, INV_PROJ),
        seg=(SEG_FEAT, INV_PROJ),
        cls=(CLS_FEAT, INV_PROJ)),
    'paper_recipe':
    dict(
        what='ProC-KD, the paper\'s recipe (branch trained beside the '
        'student, shared head)',
        det=(PROCKD, {}),
        seg=(SEG_PROCKD, {}),
        cls=(CLS_PROCKD, {})),
    'probe':
    dict(
        what='the task head trained on the frozen teacher (not a student; '
        'stage 1 of probe-then-distil)',
        det=(PROBE, KEEP_WEIGHTS),
        seg=(SEG_PROBE, KEEP_WEIGHTS),
        cls=(CLS_PROBE, KEEP_WEIGHTS)),
    'probe_kd':
    dict(
        what='probe-then-distil: KD from the frozen probe',
        det=(PROBE_KD, {}),
        seg=(SEG_PROBE_KD, {}),
        cls=(CLS_PROBE_KD, {})),
    # [ours] two-stage ProC-KD and its ablations
    'two_stage':
    dict(
        what='two-stage ProC-KD in one run: 400 branch-only iterations, '
        'then the frozen branch teaches the student (KL + branch PKD)',
        det=(PROCKD, DET_TWO_STAGE),
        seg=(SEG_PROCKD,
             dict(SEG_OWN, **ONE_RUN_CACHED,
                  **{'model.branch_feat_loss': BFEAT}))),
    'two_stage_box':
    dict(
        what='two_stage + box distillation from the branch, weighted by its '
        'confidence',
        det=(PROCKD, dict(DET_TWO_STAGE, **{'model.box_loss': BOX}))),
    'two_stage_cross_head':
    dict(
        what='two_stage, the KL and box distillation taken on the '
        'student\'s maps through the branch\'s head (after CrossKD)',
        det=(PROCKD, dict(DET_TWO_STAGE, **CROSS_HEAD))),
    'two_stage_random_teacher':
    dict(
        what='two_stage with a randomly initialised frozen teacher (the '
        'control)',
        det=(PROCKD, dict(DET_TWO_STAGE, **RANDOM_TEACHER))),
    'two_stage_t2x':
    dict(
        what='two_stage, the teacher sees the canvas at 2x (192 px)',
        seg=(SEG_PROCKD, SEG_TWO_STAGE_T2X)),
    'two_stage_t2x_random_teacher':
    dict(
        what='two_stage_t2x with a randomly initialised frozen teacher '
        '(the control)',
        seg=(SEG_PROCKD, dict(SEG_TWO_STAGE_T2X, **RANDOM_TEACHER))),
    'two_stage_assign_init':
    dict(
        what='two_stage, the assignment started from the prototypes (the '
        'control of the two rows below)',
        det=(PROCKD,
             dict(SIGNED_OWN, **ONE_RUN_CACHED, **ASSIGN_INIT,
                  **{'model.branch_feat_loss': BFEAT}))),
    'two_stage_assign1':
    dict(
        what='two_stage_assign_init + prototype-assignment distillation, '
        'weight 1',
        det=(PROCKD, with_assign(SIGNED_OWN, ONE_RUN_CACHED, 1.0))),
    'two_stage_assign10':
    dict(
        what='the same, weight 10',
        det=(PROCKD, with_assign(SIGNED_OWN, ONE_RUN_CACHED, 10.0))),
    'two_stage_t2x_assign_init':
    dict(
        what='two_stage_t2x, the assignment started from the prototypes '
        '(the control of the two rows below)',
        seg=(SEG_PROCKD,
             dict(OWN_T2X, **ONE_RUN_CACHED, **ASSIGN_INIT,
                  **{'model.branch_feat_loss': BFEAT}))),
    'two_stage_t2x_assign1':
    dict(
        what='two_stage_t2x_assign_init + prototype-assignment '
        'distillation, weight 1',
        seg=(SEG_PROCKD, with_assign(OWN_T2X, ONE_RUN_CACHED, 1.0))),
    'two_stage_t2x_assign10':
    dict(
        what='the same, weight 10',
        seg=(SEG_PROCKD, with_assign(OWN_T2X, ONE_RUN_CACHED, 10.0))),
    'cotrained_branch':
    dict(
        what='the two_stage branch trained beside the student, the paper\'s '
        'schedule (KL on from the start)',
        det=(PROCKD, SIGNED_OWN)),
    'two_stage_stage1':
    dict(
        what='two-stage ProC-KD in two runs, stage 1: the branch alone '
        '(no KL), its weights kept',
        det=(PROCKD, dict(SIGNED_OWN, **STAGE1)),
        cls=(CLS_PROCKD, dict(OWN_AREA, **STAGE1))),
    'two_runs_kl_only':
    dict(
        what='stage 2 of two_stage_stage1: the KL from the frozen branch',
        det=(PROCKD, dict(SIGNED_OWN, **STAGE2))),
    'two_runs':
    dict(
        what='stage 2 of two_stage_stage1: the KL and branch PKD, outputs '
        'cached',
        det=(PROCKD,
             dict(SIGNED_OWN, **STAGE2_CACHED,
                  **{'model.branch_feat_loss': BFEAT})),
        cls=(CLS_PROCKD, CLS_STAGE2)),
    'probe_kd_pkd':
    dict(
        what='probe_kd + PKD from the probe\'s FPN maps',
        det=(PROBE_KD, {
            'model.feat_loss': BFEAT
        })),
    # [ours] classification with the pool
    'pkd_pool':
    dict(what='PKD + the unlabelled pool', cls=(CLS_FEAT, POOL)),
    'pkd_pool_propagated':
    dict(
        what='PKD + the pool with labels propagated from the teacher\'s '
        'features',
        cls=(CLS_FEAT, PKD_PROPAGATED)),
    'pkd_pool_true_labels':
    dict(
        what='PKD + the pool with its true labels (a diagnostic)',
        cls=(CLS_FEAT, dict(PKD_PROPAGATED, **POOL_TRUE))),
    'student_pool_propagated':
    dict(
        what='the student alone + the pool with propagated labels',
        cls=(CLS_STUDENT, POOL_PROPAGATED)),
    'student_pool_true_labels':
    dict(
        what='the student alone + the pool with its true labels (the room '
        'above, not a method)',
        cls=(CLS_STUDENT, POOL_TRUE)),
    'two_stage_pool':
    dict(
        what='stage 2 of two_stage_stage1 (KD + branch PKD) + the '
        'unlabelled pool',
        cls=(CLS_PROCKD, dict(CLS_STAGE2, **POOL_CACHED))),
    'two_stage_t224_stage1':
    dict(
        what='two_stage_stage1, the teacher sees 224 px',
        cls=(CLS_PROCKD, dict(OWN_AREA, **STAGE1, **T224))),
    'two_stage_t224_pool':
    dict(
        what='stage 2 of two_stage_t224_stage1 + the unlabelled pool',
        cls=(CLS_PROCKD, dict(CLS_STAGE2, **POOL_CACHED, **T224))),
    'two_stage_t224_stage1_pool_propagated':
    dict(
        what='two_stage_t224_stage1, the branch also trains on the pool '
        'with propagated labels',
        cls=(CLS_PROCKD, STAGE1_PROPAGATED)),
    'two_stage_t224_pool_propagated':
    dict(
        what='stage 2 of two_stage_t224_stage1_pool_propagated + that pool',
        cls=(CLS_PROCKD, STAGE2_PROPAGATED)),
    'two_stage_t224_stage1_pool_true_labels':
    dict(
        what='two_stage_t224_stage1_pool_propagated given the true labels '
        '(a diagnostic)',
        cls=(CLS_PROCKD, dict(STAGE1_PROPAGATED, **POOL_TRUE))),
    'two_stage_t224_pool_true_labels':
    dict(
        what='two_stage_t224_pool_propagated given the true labels (a '
        'diagnostic)',
        cls=(CLS_PROCKD, dict(STAGE2_PROPAGATED, **POOL_TRUE))),
    **{
        f'two_stage_t224_pool_propagated_{tag}':
        dict(
            what=f'two_stage_t224_pool_propagated, tuned: {tag}',
            cls=(CLS_PROCKD, dict(STAGE2_PROPAGATED, **over)))
        for tag, over in SWEEP_TWO_STAGE.items()
    },
    **{
        f'pkd_pool_propagated_{tag}':
        dict(
            what=f'pkd_pool_propagated, tuned: {tag}',
            cls=(CLS_FEAT, dict(PKD_PROPAGATED, **over)))
        for tag, over in SWEEP_PKD.items()
    },
}

# row -> (the row whose finished run of the same seed it distils, the
# config key that run's last checkpoint goes to)
TEACHER, BRANCH = 'model.teacher_ckpt', 'model.branch_ckpt'
NEEDS: Dict[str, Tuple[str, str]] = {
    'probe_kd': ('probe', TEACHER),
    'probe_kd_pkd': ('probe', TEACHER),
    'two_runs_kl_only': ('two_stage_stage1', BRANCH),
    'two_runs': ('two_stage_stage1', BRANCH),
    'two_stage_pool': ('two_stage_stage1', BRANCH),
    'two_stage_t224_pool': ('two_stage_t224_stage1', BRANCH),
    'two_stage_t224_pool_true_labels':
    ('two_stage_t224_stage1_pool_true_labels', BRANCH),
    **{
        name: ('two_stage_t224_stage1_pool_propagated', BRANCH)
        for name in ROWS if name.startswith('two_stage_t224_pool_propagated')
    },
}

# the recipe we recommend, per proxy (docs/benchmark.md says why)
RECOMMENDED = dict(
    det='two_stage', seg='two_stage_t2x', cls='pkd_pool_propagated')

# ------------------------------------------------------------ per proxy
# size presets: the data the builders write, iterations, batch, parallel
# runs. ``full`` is the GPU size of the detection proxy (untested: no GPU
# was available when it was written)
CANVAS_REDUCED = dict(
    data='data/fmnist_canvas/reduced/',
    build=dict(
        num_train=1000, num_val=200, canvas=96, min_size=24, max_size=48),
    iters=400,
    batch=8,
    jobs=2)
SIZES = {
    'det':
    dict(
        reduced=CANVAS_REDUCED,
        full=dict(
            data='data/fmnist_canvas/full/',
            build=dict(
                num_train=8000,
                num_val=1000,
                canvas=160,
                min_size=32,
                max_size=80),
            iters=1000,
            batch=16,
            jobs=4)),
    'seg':
    dict(reduced=CANVAS_REDUCED),
    # 500 training images at 64 px, 32 epochs at batch 32
    'cls':
    dict(
        reduced=dict(
            data='data/fmnist_cls_n500/',
            build=dict(
                num_train=500, num_val=1000, num_test=2000, size=64, seed=0),
            iters=500,
            batch=32,
            jobs=2)),
}


def _rows_of(task: str) -> Dict[str, Tuple[str, dict]]:
    """The rows ``task`` runs, in the order of ``ROWS``: name -> (config
    file, overrides)."""
    return {name: row[task] for name, row in ROWS.items() if task in row}


# the rows one command runs without --variants or --table
METHODS = [
    'student', 'student_equal_time', 'pkd', 'inverted_projection',
    'paper_recipe', 'probe', 'probe_kd'
]
TASKS = {
    'det':
    dict(
        rows=_rows_of('det'),
        sizes=SIZES['det'],
        metrics=('bbox_mAP', 'bbox_mAP_50'),
        scale=100.0,  # CocoMetric gives fractions
        equal_time_ref='cotrained_branch',
        defaults=METHODS[:5] + ['cotrained_branch'] + METHODS[5:],
        work_dir='work_dirs/proxy_benchmark'),
    'seg':
    dict(
        rows=_rows_of('seg'),
        sizes=SIZES['seg'],
        metrics=('mIoU', 'mAcc', 'aAcc'),
        scale=1.0,  # mmseg's IoUMetric gives percent
        equal_time_ref='paper_recipe',
        defaults=METHODS[:3] + METHODS[4:],
        work_dir='work_dirs/proxy_seg'),
    'cls':
    dict(
        rows=_rows_of('cls'),
        sizes=SIZES['cls'],
        metrics=('top1', ),
        scale=1.0,  # mmpretrain's Accuracy gives percent
        equal_time_ref='paper_recipe',
        defaults=METHODS,
        work_dir='work_dirs/proxy_cls'),
}
