# Copyright (c) mmprockd contributors. All rights reserved.
"""The tables of docs/benchmark.md as presets of ``proxy_benchmark.py
--table NAME``: each one command that builds its data when missing, runs
every row with no result yet (5 seeds) and prints val, test and holdout.

A run name is a row of ``rows.ROWS``, or ``ROW@ITERS``: the same row at
another schedule (for a one-run two-stage row, ITERS student iterations),
in the same work dir as the rest of its table.
"""
from typing import Optional, Tuple

from .rows import CANVAS_REDUCED

# the 100 training canvases of the detection and segmentation tables (the
# 1000-canvas proxy's val and test canvases)
CANVAS_N100 = dict(
    data='data/fmnist_canvas/n100/',
    build=dict(CANVAS_REDUCED['build'], num_train=100))

# 100 labelled Fashion-MNIST images at 64 px, a pool of 2000 unlabelled
# ones; val from t10k, and a holdout of 7000 more t10k items
CLS_N100_POOL = dict(
    num_train=100,
    num_val=1000,
    num_test=2000,
    size=64,
    seed=0,
    num_unlabelled=2000,
    num_holdout=7000,
    val_source='t10k')


def split_run(name: str) -> Tuple[str, Optional[int]]:
    """``ROW`` -> ``(ROW, None)``; ``ROW@ITERS`` -> ``(ROW, ITERS)``. The
    run a row needs (``rows.NEEDS``) is the plain one, at the work dir's
    schedule.

    Raises:
        ValueError: if ``ITERS`` is not a positive integer.
    """
    row, sep, iters = name.partition('@')
    if not sep:
        return name, None
    if not iters.isdigit() or int(iters) < 1:
        raise ValueError(f'run name {name!r}: the part after "@" must be a '
                         'positive number of iterations, as in student@800')
    return row, int(iters)


TABLES = {
    # student@1600 is the student at equal time; the *assign* rows are
    # the ablation of prototype-assignment distillation
    'det_n100':
    dict(
        task='det',
        **CANVAS_N100,
        work_dir='work_dirs/table_det_n100',
        rows=[
            'student', 'student@800', 'student@1200', 'student@1600', 'pkd',
            'inverted_projection', 'paper_recipe', 'probe', 'probe_kd',
            'probe_kd_pkd@800', 'two_stage_stage1', 'two_runs@800',
            'two_stage@800', 'two_stage_assign_init@800',
            'two_stage_assign1@800', 'two_stage_assign10@800',
            'two_stage_random_teacher@800'
        ]),
    # the same proxy on canvases composed from the embedded items
    # (data/fmnist_mini: no apt, no --fmnist)
    'det_n100_mini':
    dict(
        task='det',
        data='data/fmnist_canvas/n100_mini/',
        src='data/fmnist_mini/fmnist_mini.npz',
        build=CANVAS_N100['build'],
        work_dir='work_dirs/table_det_n100_mini',
        baseline='student@1600',
        rows=['student', 'student@1600', 'paper_recipe', 'two_stage@800']),
    # the classification table: train, unlabelled and test as the other
    # classification data dirs, file for file
    'cls_n100_unl_t10kval':
    dict(
        task='cls',
        data='data/fmnist_cls_n100_unl_t10kval/',
        build=CLS_N100_POOL,
        work_dir='work_dirs/table_cls_n100_unl_t10kval',
        rows=[
            'student', 'student@2000', 'student@3000', 'pkd',
            'inverted_projection', 'paper_recipe', 'probe', 'probe_kd',
            'pkd_pool', 'two_stage_stage1', 'two_stage_pool',
            'two_stage_t224_stage1', 'two_stage_t224_pool',
            'student_pool_propagated', 'pkd_pool_propagated',
            'two_stage_t224_stage1_pool_propagated',
            'two_stage_t224_pool_propagated',
            'two_stage_t224_pool_propagated_kd3',
            'two_stage_t224_pool_propagated_branch_pkd3',
            'two_stage_t224_pool_propagated_temp2', 'pkd_pool_propagated_w2',
            'pkd_pool_propagated_w18', 'pkd_pool_propagated_t224',
            'student_pool_true_labels', 'pkd_pool_true_labels',
            'two_stage_t224_stage1_pool_true_labels',
            'two_stage_t224_pool_true_labels'
        ]),
    # the segmentation ablations on the label maps of the 100 canvases
    'seg_n100':
    dict(
        task='seg',
        **CANVAS_N100,
        work_dir='work_dirs/table_seg_n100',
        rows=[
            'student', 'student@800', 'student@1600', 'pkd',
            'inverted_projection', 'paper_recipe', 'probe', 'probe_kd',
            'two_stage@800', 'student@2400', 'two_stage@1600',
            'two_stage_t2x@800', 'two_stage_t2x@1600'
        ]),
    # the segmentation table: the n100 canvases file for file, and a
    # holdout of 1000 fresh canvases; student@3200 is the student at equal
    # time
    'seg_n100_holdout':
    dict(
        task='seg',
        data='data/fmnist_canvas/n100_holdout/',
        build=dict(CANVAS_N100['build'], num_holdout=1000),
        work_dir='work_dirs/table_seg_n100_holdout',
        rows=[
            'student', 'student@2400', 'two_stage_t2x@1600', 'student@3200',
            'two_stage_t2x@2400', 'pkd@2400', 'inverted_projection@2400',
            'probe', 'probe_kd@2400', 'paper_recipe@2400',
            'two_stage_t2x_assign_init@2400', 'two_stage_t2x_assign1@2400',
            'two_stage_t2x_assign10@2400', 'two_stage@2400',
            'two_stage_t2x_random_teacher@2400'
        ]),
}
