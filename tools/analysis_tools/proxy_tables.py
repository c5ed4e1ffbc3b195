# Copyright (c) mmprockd contributors. All rights reserved.
"""The low-data tables of docs/benchmark.md as presets of
``proxy_benchmark.py --table NAME``, and the run names they use."""
from typing import Optional, Tuple

from proxy_variants import SIZES

# the 100 training canvases of the detection and segmentation tables (the
# 1000-canvas proxy's val and test canvases)
CANVAS_N100 = dict(
    data='data/fmnist_canvas/n100/',
    build=dict(SIZES['reduced']['build'], num_train=100))

# 100 labelled Fashion-MNIST images at 64 px and 2000 unlabelled ones
CLS_N100_UNL = dict(
    num_train=100,
    num_val=1000,
    num_test=2000,
    size=64,
    seed=0,
    num_unlabelled=2000)


# ------------------------------------------------ one command per table
def split_run(name: str) -> Tuple[str, Optional[int]]:
    """A run name is a variant, or ``variant@ITERS``: the same variant at
    another schedule, in the same work dir as the rest of its table (the
    student at equal cost, a longer second stage). The run it needs
    (``NEEDS``) is the plain one, at the work dir's schedule.

    Raises:
        ValueError: if ``ITERS`` is not a positive integer.
    """
    variant, sep, iters = name.partition('@')
    if not sep:
        return name, None
    if not iters.isdigit() or int(iters) < 1:
        raise ValueError(f'run name {name!r}: the part after "@" must be a '
                         'positive number of iterations, as in student@800')
    return variant, int(iters)


# the low-data tables of docs/benchmark.md, each one command:
# ``proxy_benchmark.py --table NAME --fmnist DIR`` builds the data if it is
# missing, runs every row that has no result yet (5 seeds) and prints the
# val and the test table. Rows: the student alone (and at equal cost), PKD,
# the inverted projection, probe-then-distil, the paper recipe and the
# two-stage recipe [ours] (its stage 1 is a row of its own)
TABLES = {
    # 100 training canvases; the recipe's stage 2 runs 800 iterations; the
    # student at 800 / 1200 / 1600 is the equal-cost row; the three *_ap
    # rows are prototype-assignment distillation; the last row is the
    # recipe with a randomly initialised frozen teacher (the control)
    'det_n100':
    dict(
        task='det',
        **CANVAS_N100,
        work_dir='work_dirs/table_det_n100',
        variants=[
            'student', 'student@800', 'student@1200', 'student@1600',
            'feat_mimic', 'inv_proj', 'prockd', 'teacher_probe', 'probe_kd',
            'probe_kd_pfeat@800', 'prockd_signed_own_stage1',
            'prockd_signed_own_2stage_bfeat_cached@800',
            'prockd_signed_own_1run_bfeat_cached@800',
            'prockd_signed_own_1run_bfeat_cached_ap@800',
            'prockd_signed_own_1run_bfeat_assign1_cached_ap@800',
            'prockd_signed_own_1run_bfeat_assign10_cached_ap@800',
            'two_stage_random_teacher@800'
        ]),
    # the detection flagship's recipe against the student given more time,
    # on canvases composed from the embedded items (data/fmnist_mini, no
    # apt, no --fmnist)
    'det_n100_mini':
    dict(
        task='det',
        data='data/fmnist_canvas/n100_mini/',
        src='data/fmnist_mini/fmnist_mini.npz',
        build=CANVAS_N100['build'],
        work_dir='work_dirs/table_det_n100_mini',
        baseline='student@1600',
        variants=[
            'student', 'student@1600', 'prockd',
            'prockd_signed_own_1run_bfeat_cached@800'
        ]),
    # 100 labelled images and 2000 unlabelled ones, and a holdout: the 8000
    # t10k items that test does not hold (the other splits are
    # data/fmnist_cls_n100's, file for file)
    'cls_n100_unl':
    dict(
        task='cls',
        data='data/fmnist_cls_n100_unl/',
        build=dict(CLS_N100_UNL, num_holdout=8000),
        work_dir='work_dirs/table_cls_n100_unl',
        variants=[
            'student', 'student@2000', 'feat_mimic', 'inv_proj', 'prockd',
            'teacher_probe', 'probe_kd', 'feat_mimic_unl', 'inv_proj_unl',
            'probe_kd_unl', 'self_kd_unl', 'prockd_own_area_stage1',
            'prockd_own_area_kd_2stage_bfeat',
            'prockd_own_area_kd_2stage_bfeat_unl'
        ]),
    # the same images with val drawn from t10k (between test and the
    # holdout, which keeps the last 7000 of cls_n100_unl's 8000):
    # train, unlabelled and test are cls_n100_unl's, file for file. Its
    # own data dir and work dir, so that no run mixes the two vals
    'cls_n100_unl_t10kval':
    dict(
        task='cls',
        data='data/fmnist_cls_n100_unl_t10kval/',
        build=dict(CLS_N100_UNL, num_holdout=7000, val_source='t10k'),
        work_dir='work_dirs/table_cls_n100_unl_t10kval',
        # after the first eleven: the room above (the pool's true labels,
        # an upper bound), a branch that labels the pool itself, and the
        # rows given the labels label_pool.py propagates over the pool;
        # prototype-assignment distillation and its control; three tuning
        # candidates per family, the recipe and PKD, given the propagated
        # labels; PKD and the recipe given the pool's true labels (a
        # diagnostic)
        variants=[
            'student', 'student@2000', 'student@3000', 'feat_mimic',
            'inv_proj', 'prockd', 'teacher_probe', 'probe_kd',
            'feat_mimic_unl', 'inv_proj_unl', 'probe_kd_unl',
            'prockd_own_area_stage1', 'prockd_own_area_kd_2stage_bfeat_unl',
            'feat_mimic_t224_unl', 'prockd_own_area_stage1_t224',
            'prockd_own_area_kd_2stage_bfeat_t224_unl', 'student_oracle_unl',
            'prockd_own_area_stage1_t224_pl_unl', 'student_lp_unl',
            'feat_mimic_lp_unl', 'prockd_own_area_stage1_t224_lp_unl',
            'prockd_own_area_kd_2stage_bfeat_t224_lp_unl',
            'prockd_own_area_stage1_t224_ap_lp_unl',
            'prockd_own_area_kd_2stage_bfeat_t224_ap_lp_unl',
            'prockd_own_area_kd_2stage_bfeat_assign_t224_ap_lp_unl',
            'prockd_own_area_kd_2stage_bfeat_assign10_t224_ap_lp_unl',
            'prockd_own_area_kd_2stage_bfeat_t224_lp_unl_kd3',
            'prockd_own_area_kd_2stage_bfeat_t224_lp_unl_bfeat3',
            'prockd_own_area_kd_2stage_bfeat_t224_lp_unl_t2',
            'feat_mimic_lp_unl_w2', 'feat_mimic_lp_unl_w18',
            'feat_mimic_lp_unl_t224', 'feat_mimic_oracle_unl',
            'prockd_own_area_stage1_t224_oracle_unl',
            'prockd_own_area_kd_2stage_bfeat_t224_oracle_unl'
        ]),
    # the label maps of the 100 training canvases
    'seg_n100':
    dict(
        task='seg',
        **CANVAS_N100,
        work_dir='work_dirs/table_seg_n100',
        variants=[
            'student', 'student@800', 'student@1600', 'feat_mimic', 'inv_proj',
            'prockd', 'teacher_probe', 'probe_kd', 'prockd_own_stage1',
            'prockd_own_2stage_bfeat@800', 'prockd_own_1run_bfeat@800',
            'student@2400', 'prockd_own_1run_bfeat@1600',
            'prockd_own_1run_bfeat_t2x@800', 'prockd_own_1run_bfeat_t2x@1600'
        ]),
    # the segmentation winner chosen on val, checked on 1000
    # fresh canvases (the same train, val and test canvases as n100, file
    # for file, and a holdout composed by a stream of its own)
    'seg_n100_holdout':
    dict(
        task='seg',
        data='data/fmnist_canvas/n100_holdout/',
        build=dict(CANVAS_N100['build'], num_holdout=1000),
        work_dir='work_dirs/table_seg_n100_holdout',
        # from 'student@3200' on: a longer student phase against a longer
        # student, and the other methods at its length; the three *_ap rows
        # (prototype-assignment distillation); the recipe with the teacher
        # at 1x (the Cityscapes flagship has no 2x lever); last, the recipe
        # with a randomly initialised frozen teacher (the control)
        variants=[
            'student', 'student@2400', 'prockd_own_1run_bfeat_t2x@1600',
            'student@3200', 'prockd_own_1run_bfeat_t2x@2400',
            'feat_mimic@2400', 'inv_proj@2400', 'teacher_probe',
            'probe_kd@2400', 'prockd@2400',
            'prockd_own_1run_bfeat_t2x_ap@2400',
            'prockd_own_1run_bfeat_assign1_t2x_ap@2400',
            'prockd_own_1run_bfeat_assign10_t2x_ap@2400',
            'prockd_own_1run_bfeat@2400', 'two_stage_t2x_random_teacher@2400'
        ]),
}
