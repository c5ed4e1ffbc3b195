# Copyright (c) mmprockd contributors. All rights reserved.
"""Will distillation pay for this teacher, this student and this data?

Trains the recipe's first stage (the prototype branch alone, over the
frozen teacher) and the student alone for the same short budget on the
config's own data, scores both with the config's val metric, and prints
the branch's figure, the student's, the branch's lead with its spread over
seeds, and a verdict (go / marginal / no-go) with its reason. The branch
checkpoint of each seed is kept; the last line is the command that starts
the recipe's student phase from it (``model.branch_ckpt``), so a "go"
wastes nothing.

Usage::

    python tools/analysis_tools/teacher_fit.py CONFIG [--iters 400] \\
        [--seeds 0 1 2] [--train-fraction 0.25] [--jobs 2]

How the verdict was calibrated, and where it is wrong:
docs/benchmark.md ("The teacher-fit check"); a walk-through:
docs/user_guides/teacher_fit.md.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from mmengine.config import Config, DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Teacher-fit check: the prototype branch alone against '
        'the student alone, same short budget, on the config\'s data')
    parser.add_argument('config', help='a ProC-KD (ProtoDistiller) config')
    parser.add_argument(
        '--iters',
        type=int,
        default=400,
        help='training iterations of each run (default 400)')
    parser.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        default=[0, 1, 2],
        help='one branch and one student run per seed (default 0 1 2)')
    parser.add_argument(
        '--train-fraction',
        type=float,
        default=1.0,
        help='train on this random fraction of the training set, the same '
        'images for both runs (default 1: all of it)')
    parser.add_argument(
        '--metric',
        help='the val metric to compare (default: coco/bbox_mAP, mIoU or '
        'accuracy/top1, whichever the evaluator gives, else its first)')
    parser.add_argument(
        '--work-dir',
        help='default: work_dirs/teacher_fit/<config name>; finished runs '
        'there are reused')
    parser.add_argument(
        '--jobs', type=int, default=1, help='runs in parallel (default 1)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, as tools/train.py')
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f'--iters must be at least 1, got {args.iters}')
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    return args


def _work(cfg_path: str, kind: str) -> dict:
    """One run in a fresh process: train, score, write result.json. Its
    output goes to ``run.log`` in its dir (the progress lines are the
    parent's)."""
    from mmprockd.engine.teacher_fit import run_check
    cfg = Config.fromfile(cfg_path)
    log = os.open(
        osp.join(cfg.work_dir, 'run.log'), os.O_WRONLY | os.O_CREAT
        | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    result = run_check(cfg, kind)
    with open(osp.join(cfg.work_dir, 'result.json.tmp'), 'w') as f:
        json.dump(result, f, indent=1)
    os.replace(
        osp.join(cfg.work_dir, 'result.json.tmp'),
        osp.join(cfg.work_dir, 'result.json'))
    return result


def _runs(cfg: Config, args, work_dir: str) -> list:
    """The configs of every (kind, seed) run, written to their dirs."""
    from mmprockd.engine.teacher_fit import (branch_config, run_dir,
                                             student_config_for,
                                             train_indices_for)
    indices = train_indices_for(cfg, args.train_fraction)
    runs = []
    for seed in args.seeds:
        for kind, build in (('branch', branch_config), ('student',
                                                        student_config_for)):
            out = run_dir(work_dir, kind, seed)
            os.makedirs(out, exist_ok=True)
            run_cfg = build(cfg, args.iters, seed, out, indices)
            path = osp.join(out, 'config.py')
            run_cfg.dump(path)
            runs.append((kind, seed, path, out))
    return runs


# the headline metric of each OpenMMLab evaluator we know, in this order;
# another evaluator's first metric otherwise (mmseg's first is aAcc)
PRIMARY = ('coco/bbox_mAP', 'coco/segm_mAP', 'mIoU', 'accuracy/top1')


def _metric_of(results: list, name) -> str:
    keys = list(results[0]['metrics'])
    if name is None:
        known = [k for k in PRIMARY if k in keys]
        return known[0] if known else keys[0]
    if name not in keys:
        sys.exit(f'teacher_fit: --metric {name!r} is not among the val '
                 f'metrics {keys}')
    return name


def report(results: dict, args, config_path: str, cfg: Config,
           wall_s: float) -> str:
    """The per-seed table, the means, the verdict and the stage-2 line."""
    from mmprockd.engine.teacher_fit import stage2_options, verdict
    metric = _metric_of(list(results.values()), args.metric)
    lines = [
        f'| seed | branch {metric} | student {metric} | lead |', '|---|'
        '---|---|---|'
    ]
    branch, student = [], []
    for seed in args.seeds:
        b = results[('branch', seed)]['metrics'][metric]
        s = results[('student', seed)]['metrics'][metric]
        branch.append(b)
        student.append(s)
        lines.append(f'| {seed} | {b:.4f} | {s:.4f} | {b - s:+.4f} |')

    def ms(values):
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return f'{statistics.fmean(values):.4f} ± {std:.4f}'

    lead = [b - s for b, s in zip(branch, student)]
    lines.append(f'| mean ± std | {ms(branch)} | {ms(student)} | '
                 f'{ms(lead)} |')
    word, reason = verdict(branch, student)
    train = sum(r['train_s'] for r in results.values())
    lines += [
        '',
        f'verdict: {word.upper()}: {reason}.',
        f'{len(results)} runs of {args.iters} iterations; training '
        f'{train:.0f} s in all, {wall_s:.0f} s of wall time.',
    ]
    best = max(
        args.seeds, key=lambda s: results[('branch', s)]['metrics'][metric])
    ckpt = results[('branch', best)]['ckpt']
    if ckpt:
        opts = ' '.join(stage2_options(cfg, ckpt))
        lines += [
            f'the branch of seed {best} is kept: {ckpt}',
            'the recipe\'s student phase from it:',
            f'    python tools/train.py {config_path} --cfg-options {opts}',
        ]
    return '\n'.join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    from mmprockd.engine.teacher_fit import TeacherFitError, check_has_branch
    from mmprockd.preflight import InputCheckError, load_config
    if not osp.isfile(args.config):
        sys.exit(f'teacher_fit: config {args.config} does not exist')
    try:
        cfg = load_config(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        check_has_branch(cfg, args.config)
    except (InputCheckError, TeacherFitError) as err:
        sys.exit(str(err))
    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', 'teacher_fit', name)
    try:
        runs = _runs(cfg, args, work_dir)
    except TeacherFitError as err:
        sys.exit(str(err))
    start = time.time()
    results = {}
    todo = []
    for kind, seed, path, out in runs:
        done = osp.join(out, 'result.json')
        if osp.isfile(done):
            with open(done) as f:
                results[(kind, seed)] = json.load(f)
            print(f'[done] {kind} seed {seed}: already in {out}', flush=True)
        else:
            todo.append((kind, seed, path))
    with ProcessPoolExecutor(
            max_workers=args.jobs, mp_context=get_context('spawn')) as pool:
        futures = {}
        for kind, seed, path in todo:
            print(
                f'[start] {kind} seed {seed} ({args.iters} iterations)',
                flush=True)
            futures[pool.submit(_work, path, kind)] = (kind, seed)
        for future, (kind, seed) in futures.items():
            result = future.result()
            results[(kind, seed)] = result
            name = _metric_of([result], args.metric)
            print(
                f'[done] {kind} seed {seed} in {result["train_s"]:.0f} s: '
                f'{name} {result["metrics"][name]:.4f}',
                flush=True)
    print(report(results, args, args.config, cfg, time.time() - start))


if __name__ == '__main__':
    main()
