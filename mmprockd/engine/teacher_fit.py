"""[ours] Will distillation pay for this teacher, student and data? The
teacher-fit check: the recipe's first stage (the prototype branch alone,
over the frozen teacher) and the student alone, trained for the same short
budget on the config's own data and scored with its own val metric.

The branch is a network trained on the student's task over the teacher's
features; when it does the task no better than the student, the teacher's
features have nothing the student lacks, and on our proxies the two-stage
recipe then gains nothing (docs/benchmark.md, "Before you spend GPU-days").
The command is ``tools/analysis_tools/teacher_fit.py``; this module builds
the two configs, runs one of them and gives the verdict.
"""
import copy
import math
import os.path as osp
import random
import statistics
import time
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

# the verdict's thresholds, fixed on the proxy cases docs/benchmark.md
# names ("The teacher-fit check"): the branch's mean lead over the student,
# relative to the student's mean, and in units of the lead's spread
GO_LEAD = 0.25
MARGINAL_LEAD = 0.10
MIN_SIGMAS = 2.0


class TeacherFitError(ValueError):
    """A config the check cannot run, with the key and the fix."""


def _distill_hook(cfg: Config) -> Optional[dict]:
    hooks = [
        h for h in cfg.get('custom_hooks', []) or []
        if h.get('type') in ('mmprockd.DistillScheduleHook',
                             'DistillScheduleHook')
    ]
    return hooks[0] if hooks else None


def check_has_branch(cfg: Config, path: str = 'the config') -> None:
    """Refuse a config whose model has no prototype branch to train.

    Raises:
        TeacherFitError: naming ``model.type`` or ``model.learner``.
    """
    model = cfg.get('model', {})
    kind = str(model.get('type', ''))
    if kind.split('.')[-1] != 'ProtoDistiller':
        raise TeacherFitError(
            f'teacher_fit: {path} builds model.type={kind!r}; the check '
            'trains the prototype branch of a ProtoDistiller. Give it a '
            'ProC-KD config (e.g. configs/det/'
            'prockd_swin-t_retinanet_r50_fpn_36e_coco.py, or your config '
            "that inherits mmprockd::_base_/recipes/two_stage_det.py)")
    if model.get('learner') is None:
        raise TeacherFitError(
            f'teacher_fit: {path} has model.learner=None: the model has no '
            'prototype branch to train')


def _short_schedule(iters: int) -> List[dict]:
    """A linear warm-up over the first tenth, then a cosine to the end."""
    warm = max(1, iters // 10)
    return [
        dict(
            type='LinearLR',
            start_factor=0.001,
            by_epoch=False,
            begin=0,
            end=warm),
        dict(
            type='CosineAnnealingLR',
            by_epoch=False,
            begin=warm,
            end=iters,
            T_max=max(1, iters - warm),
            eta_min=0.0)
    ]


def _common(cfg: Config, iters: int, seed: int, work_dir: str,
            train_indices: Optional[List[int]]) -> Config:
    """The budget, schedule, seed, data and evaluation both runs share."""
    cfg = copy.deepcopy(cfg)
    # no val inside the loop, not even its last one: the run scores itself
    # once, after (run_check)
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop',
        max_iters=iters,
        val_interval=10**9,
        val_begin=iters + 1)
    cfg.param_scheduler = _short_schedule(iters)
    if cfg.get('val_dataloader') is None:
        # a config that evaluates on its test loop only
        cfg.val_dataloader = cfg.test_dataloader
        cfg.val_evaluator = cfg.test_evaluator
    cfg.val_cfg = dict(type='ValLoop')
    if train_indices is not None:
        cfg.train_dataloader.dataset.indices = train_indices
    cfg.default_hooks = dict(
        cfg.get('default_hooks', {}),
        logger=dict(type='LoggerHook', interval=max(1, iters // 10)),
        checkpoint=dict(
            type='CheckpointHook',
            interval=iters,
            by_epoch=False,
            max_keep_ckpts=1))
    cfg.log_processor = dict(cfg.get('log_processor', {}), by_epoch=False)
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.work_dir = work_dir
    cfg.resume = False
    cfg.load_from = None
    return cfg


def branch_config(cfg: Config,
                  iters: int,
                  seed: int,
                  work_dir: str,
                  train_indices: Optional[List[int]] = None) -> Config:
    """The recipe's first stage for ``iters`` iterations: only the
    prototype branch trains (``DistillScheduleHook(student_start)`` past
    the end; the student stays as built), with its own head
    (``branch_head='own'``, the two-stage recipe's), and its checkpoint
    kept for ``branch_ckpt``."""
    check_has_branch(cfg)
    out = _common(cfg, iters, seed, work_dir, train_indices)
    out.model.branch_head = 'own'
    out.model.branch_ckpt = None
    out.model.student_ckpt = None
    out.custom_hooks = [
        dict(
            type='mmprockd.DistillScheduleHook',
            by_epoch=False,
            warmup=max(1, iters // 10),
            student_start=iters + 1)
    ]
    out.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel', find_unused_parameters=True)
    return out


def student_config_for(cfg: Config,
                       iters: int,
                       seed: int,
                       work_dir: str,
                       train_indices: Optional[List[int]] = None) -> Config:
    """The student alone, on the same budget, schedule, data and seed."""
    from .student_export import student_config
    check_has_branch(cfg)
    out = _common(student_config(cfg), iters, seed, work_dir, train_indices)
    out.custom_hooks = []
    out.pop('model_wrapper_cfg', None)
    out.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False)
    return out


def train_indices_for(cfg: Config,
                      fraction: float,
                      seed: int = 0) -> Optional[List[int]]:
    """A random ``fraction`` of the training set's indices (sorted; the
    same for both runs and every seed), or None for all of it.

    Raises:
        TeacherFitError: a fraction outside (0, 1], or a training dataset
            that takes no ``indices`` (a dataset wrapper).
    """
    if not 0 < fraction <= 1:
        raise TeacherFitError(
            f'teacher_fit: --train-fraction must be in (0, 1], got '
            f'{fraction}')
    if fraction == 1:
        return None
    from mmengine.dataset import BaseDataset
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    dataset = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
    if not isinstance(dataset, BaseDataset):
        raise TeacherFitError(
            'teacher_fit: --train-fraction needs a train_dataloader.dataset '
            f'that takes indices (an mmengine BaseDataset); this config '
            f'has {type(dataset).__name__}. Drop --train-fraction, or set '
            'indices on the inner dataset yourself')
    n = len(dataset)
    keep = max(1, round(n * fraction))
    return sorted(random.Random(seed).sample(range(n), keep))


def run_check(cfg: Config, kind: str) -> Dict:
    """Train one run of the check (``kind`` ``'branch'`` or
    ``'student'``) and score it on the val split: the branch in the
    student's place (:func:`evaluate_branch`), or the student itself.
    Returns its metrics, training seconds and last checkpoint."""
    from mmengine.runner import Runner, find_latest_checkpoint

    from .branch_eval import evaluate_branch
    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    train_s = time.time() - start
    if kind == 'branch':
        metrics = evaluate_branch(runner)
    else:
        metrics = {k: float(v) for k, v in runner.val().items()}
    ckpt = find_latest_checkpoint(cfg.work_dir) if kind == 'branch' else None
    return dict(
        kind=kind, metrics=metrics, train_s=round(train_s, 1), ckpt=ckpt)


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def verdict(branch: Sequence[float],
            student: Sequence[float]) -> Tuple[str, str]:
    """``('go' | 'marginal' | 'no-go', reason)`` from the paired values of
    one higher-is-better metric, per seed.

    The lead is ``branch - student`` per seed; ``rel`` its mean over the
    student's mean. go: ``rel >= GO_LEAD`` and the mean lead is more than
    ``MIN_SIGMAS`` times its std. no-go: ``rel < MARGINAL_LEAD`` or no lead
    past its spread. marginal: between.
    """
    if len(branch) != len(student) or not branch:
        raise ValueError('verdict: needs one branch and one student value '
                         f'per seed, got {len(branch)} and {len(student)}')
    lead = [b - s for b, s in zip(branch, student)]
    mean, std = _mean_std(lead)
    base = statistics.fmean(student)
    if base:
        rel = mean / abs(base)
    else:  # a student that scored 0: any lead is all the lead
        rel = math.copysign(math.inf, mean) if mean else 0.0
    clear = mean > MIN_SIGMAS * std
    figures = (f'the branch leads the student by {mean:+.4f} ± {std:.4f} '
               f'({rel:+.0%} of the student\'s {base:.4f})')
    if len(lead) < 2 and rel >= MARGINAL_LEAD:
        return 'marginal', (f'{figures}, from one seed: its spread is '
                            'unknown. Run at least 3 seeds (--seeds 0 1 2)')
    if rel >= GO_LEAD and clear:
        return 'go', (f'{figures}: at least {GO_LEAD:.0%} and past '
                      f'{MIN_SIGMAS:g}x its spread. On our proxies a lead '
                      'like this gave the two-stage recipe its gain')
    if rel < MARGINAL_LEAD or mean <= MIN_SIGMAS * std:
        why = (f'under {MARGINAL_LEAD:.0%}' if rel < MARGINAL_LEAD else
               f'not past {MIN_SIGMAS:g}x its spread')
        return 'no-go', (f'{figures}: {why}. The teacher\'s features do '
                         'the task no better than the student; on our '
                         'proxies the recipe then gained nothing over the '
                         'student given the same time')
    return 'marginal', (f'{figures}: between {MARGINAL_LEAD:.0%} and '
                        f'{GO_LEAD:.0%}. Try a longer budget (--iters) or '
                        'the teacher at a larger input (teacher.input_scale)'
                        ' before the full run')


def stage2_options(cfg: Config, ckpt: str) -> List[str]:
    """The ``--cfg-options`` that start the recipe's student phase from
    the check's branch: ``branch_ckpt``, the branch frozen from the first
    step, the student from its first step, and, for the one-run recipe,
    the run shortened by its branch phase."""
    opts = [f'model.branch_ckpt={ckpt}', 'model.branch_head=own']
    hooks = cfg.get('custom_hooks', []) or []
    for i, hook in enumerate(hooks):
        if hook.get('type') not in ('mmprockd.DistillScheduleHook',
                                    'DistillScheduleHook'):
            continue
        opts.append(f'custom_hooks.{i}.branch_stop=0')
        start = hook.get('student_start') or 0
        if start:
            opts.append(f'custom_hooks.{i}.student_start=0')
            loop = cfg.get('train_cfg', {})
            for key in ('max_epochs', 'max_iters'):
                if loop.get(key):
                    opts.append(f'train_cfg.{key}={loop[key] - start}')
            if loop.get('val_begin'):
                opts.append(
                    f'train_cfg.val_begin={max(1, loop.val_begin - start)}')
    return opts


def run_dir(work_dir: str, kind: str, seed: int) -> str:
    """Where one run of the check writes."""
    return osp.join(work_dir, kind, f'seed{seed}')
