# Copyright (c) mmprockd contributors. All rights reserved.
"""The command line of the accuracy proxy benchmark
(``tools/analysis_tools/proxy_benchmark.py``): parse the flags, build the
data when it is missing, run the missing (row, seed) pairs in worker
processes and print the tables."""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from .report import (aggregate, atomic_write_text, format_table, git_commit,
                     load_results, provenance)
from .rows import LP_ANN, LP_LABELLER, NEEDS, TASKS
from .run import build_cfg, holdout_file, run_one
from .tables import TABLES, split_run

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
TOOLS = osp.join(REPO, 'tools')
ENTRY = osp.join(TOOLS, 'analysis_tools', 'proxy_benchmark.py')
EQUAL_TIME = 'student_equal_time'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Accuracy proxy benchmark: is the student better with '
        'ProC-KD?')
    parser.add_argument(
        '--fmnist',
        help='directory of the Fashion-MNIST IDX files (or the embedded '
        'data/fmnist_mini/fmnist_mini.npz, for the canvases); the data is '
        'built when the data directory has no annotations (default with '
        '--table det_n100_mini: the embedded file)')
    parser.add_argument('--data-root', help='the data (default: preset)')
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
        help='2 iterations, seed 0, paper_recipe only, 16 val images')
    parser.add_argument(
        '--table',
        choices=list(TABLES),
        help='one table of docs/benchmark.md: its task, data, work dir, '
        'rows and 5 seeds (each can still be given); prints val and test')
    parser.add_argument(
        '--variants',
        nargs='+',
        help='the rows (rows.py), or ROW@ITERS for one at another '
        'schedule in the same work dir')
    parser.add_argument(
        '--seeds', type=int, nargs='+', help='default: 0 1 2 (--table: 0-4)')
    parser.add_argument('--iters', type=int, help='default: preset')
    parser.add_argument('--jobs', type=int, help='parallel runs')
    parser.add_argument(
        '--split',
        choices=['val', 'test', 'holdout'],
        default='val',
        help='the split the table shows: val for choosing settings, test '
        'for reporting (every run evaluates both); holdout: a second test '
        'split, where the data has one (build_fmnist_{cls,canvas}.py '
        '--num-holdout)')
    parser.add_argument(
        '--baseline',
        help='the row the paired gains are taken over (e.g. pkd to ask '
        'whether a recipe beats PKD); default: the preset\'s, else student')
    parser.add_argument(
        '--report',
        action='store_true',
        help='print the table of the finished runs, train nothing')
    parser.add_argument(
        '--dump-config',
        nargs=2,
        metavar=('ROW', 'OUT'),
        help='write the config of ROW (ROW@ITERS) for the first seed, with '
        'the table\'s data and schedule, to OUT and train nothing: what '
        'tools/analysis_tools/teacher_fit.py runs on a proxy')
    parser.add_argument(
        '--worker', nargs=2, metavar=('ROW', 'SEED'), help=argparse.SUPPRESS)
    parser.add_argument('--val-subset', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    preset = TABLES[args.table] if args.table else {}
    if preset:
        if args.full:
            parser.error('--table runs at the reduced size: drop --full')
        args.task = preset['task']
        args.work_dir = args.work_dir or preset['work_dir']
        args.data_root = args.data_root or preset['data']
        args.variants = args.variants or list(preset['rows'])
    args.baseline = args.baseline or preset.get('baseline', 'student')
    args.seeds = args.seeds or ([0, 1, 2, 3, 4] if preset else [0, 1, 2])
    task = TASKS[args.task]
    if args.full and 'full' not in task['sizes']:
        parser.error("--full exists for --task det only")
    size = task['sizes']['full' if args.full else 'reduced']
    if preset:  # the table's own data, at the preset's schedule
        size = dict(size, data=preset['data'], build=preset['build'])
        if preset.get('src'):  # built from files the repository holds
            args.fmnist = args.fmnist or osp.join(REPO, preset['src'])
    args.size = size
    args.work_dir = args.work_dir or task['work_dir']
    args.data_root = args.data_root or size['data']
    args.batch = size['batch']
    args.canvas = size['build'].get('canvas')
    names = list(args.variants or [])
    if args.dump_config:
        names.append(args.dump_config[0])
    for name in names:
        try:
            row, iters = split_run(name)
        except ValueError as e:
            parser.error(str(e))
        if row not in task['rows']:
            parser.error(f'row {row!r} does not exist for --task '
                         f'{args.task}; choose from {list(task["rows"])}')
        if iters and row == EQUAL_TIME:
            parser.error(f'{name}: {EQUAL_TIME} sets its own schedule; ask '
                         'for student@ITERS instead')
    if args.smoke:
        args.iters, args.seeds = 2, [0]
        args.variants = args.variants or ['paper_recipe']
        args.val_subset, args.batch = 16, 2
    args.iters = args.iters or size['iters']
    args.jobs = args.jobs or (1 if args.smoke else size['jobs'])
    args.variants = args.variants or list(task['defaults'])
    return args


# ---------------------------------------------------------------- data
def _pool_files(names: Sequence[str]) -> set:
    """The pool annotation files (``unlabelled_ann``) the classification
    runs ``names`` read."""
    rows = TASKS['cls']['rows']
    overrides = [rows[split_run(name)[0]][1] for name in names]
    return {o['unlabelled_ann'] for o in overrides if 'unlabelled_ann' in o}


def ensure_data(args: argparse.Namespace) -> None:
    """Build the data of ``args`` when a split file it needs is missing
    (with ``--fmnist``), and the propagated pool labels when a row reads
    them."""
    anns = [osp.join(args.data_root, 'annotations', 'instances_test.json')]
    if args.size['build'].get('num_holdout') and args.task != 'cls':
        anns.append(osp.join(args.data_root, *holdout_file(args.task)))
    pools = set()
    if args.task == 'cls':  # and the optional splits the preset asks for
        build = args.size['build']
        anns = [
            osp.join(args.data_root, 'meta', f'{split}.txt')
            for split in ('test', 'unlabelled', 'holdout')
            if split == 'test' or build.get(f'num_{split}')
        ]
        # and the pool files the builder writes (the propagated labels
        # are written after the build)
        pools = _pool_files(args.variants)
        anns += [
            osp.join(args.data_root, ann) for ann in sorted(pools)
            if ann != LP_ANN
        ]
    missing = [ann for ann in anns if not osp.isfile(ann)]
    if missing:
        build_data(args, missing)
    if LP_ANN in pools and not osp.isfile(osp.join(args.data_root, LP_ANN)):
        # [ours] the labels label_pool.py propagates, once, before any run
        subprocess.run([
            sys.executable,
            osp.join(TOOLS, 'analysis_tools',
                     'label_pool.py'), LP_LABELLER['config'], args.data_root,
            '--out', LP_ANN, '--input-scale',
            str(LP_LABELLER['input_scale'])
        ],
                       check=True)


def build_data(args: argparse.Namespace, missing: List[str]) -> None:
    """Run the Fashion-MNIST builder of the task with the preset's
    settings."""
    if not args.fmnist:
        raise FileNotFoundError(
            f'proxy_benchmark: no {" or ".join(missing)}; pass --fmnist <dir '
            'of the Fashion-MNIST IDX files> to build the data')
    script = 'build_fmnist_cls.py' if args.task == 'cls' else \
        'build_fmnist_canvas.py'
    cmd = [
        sys.executable,
        osp.join(TOOLS, 'dataset_converters', script), args.fmnist,
        args.data_root
    ]
    for key, value in args.size['build'].items():
        cmd += [f'--{key.replace("_", "-")}', str(value)]
    subprocess.run(cmd, check=True)


# ---------------------------------------------------------------- runs
def _worker_cmd(args: argparse.Namespace,
                name: str,
                seed: int,
                iters: Optional[int] = None) -> List[str]:
    cmd = [
        sys.executable, ENTRY, '--worker', name,
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
    """Iterations that give the student alone the training time of the
    task's ``equal_time_ref`` row: ``iters`` times the ratio of their mean
    training times over the finished runs of this work dir (same machine,
    same load: they run side by side)."""
    done = load_results(args.work_dir)

    def mean_s(row):
        times = [
            r['train_s'] for r in done
            if r['row'] == row and r['iters'] == args.iters
        ]
        if not times:
            raise RuntimeError(
                f'proxy_benchmark: {EQUAL_TIME} needs finished runs of '
                f'{row} at {args.iters} iterations; run them first')
        return statistics.fmean(times)

    ref = TASKS[args.task]['equal_time_ref']
    return round(args.iters * mean_s(ref) / mean_s('student'))


def run_all(args: argparse.Namespace) -> List[dict]:
    """Run the missing (row, seed) pairs, ``--jobs`` at a time, seed by
    seed so that a cut-short run still has every row; a row that distils
    another's run (``NEEDS``) starts after that run of its seed, and the
    student at equal time after the runs it is timed against."""

    def finished(v, s):
        return osp.isfile(
            osp.join(args.work_dir, v, f'seed{s}', 'result.json'))

    def needs(name):  # the plain run of ROW@ITERS's prerequisite
        return NEEDS.get(split_run(name)[0], (None, ))[0]

    wanted = list(args.variants)
    for v in args.variants:
        if needs(v) and needs(v) not in wanted:
            wanted.insert(0, needs(v))
    todo = [(v, s) for s in args.seeds for v in wanted if not finished(v, s)]
    # the equal-time runs last: their budget is measured on the others
    todo.sort(key=lambda vs: vs[0] == EQUAL_TIME)
    ref = TASKS[args.task]['equal_time_ref']

    def ready(v, s):
        if v == EQUAL_TIME:  # its budget needs the runs it matches
            return not any(r[2] in (ref, 'student') for r in running)
        return needs(v) is None or finished(needs(v), s)

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
            iters = split_run(v)[1]
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
                    f'[skipped] {v} seed {s}: {needs(v)} seed {s} '
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
        if r['row'] in args.variants and r['seed'] in args.seeds
    ]


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, dict]:
    """Run (or, with ``--report``, only read) the runs of ``argv``; print
    and write the tables; returns the table of ``--split``."""
    args = parse_args(argv)
    if args.worker:
        name, seed = args.worker[0], int(args.worker[1])
        out_dir = osp.join(args.work_dir, name, f'seed{seed}')
        result = run_one(
            split_run(name)[0], seed, out_dir, args.data_root, args.iters,
            args.batch, args.canvas, args.val_subset, args.task)
        result['row'] = name  # its table row: ROW@ITERS stays apart
        result['commit'] = git_commit()
        atomic_write_text(json.dumps(result), osp.join(out_dir, 'result.json'))
        return {}
    if args.dump_config:
        name, out = args.dump_config
        row, iters = split_run(name)
        ensure_data(args)
        cfg = build_cfg(row, args.seeds[0], osp.join(args.work_dir, name),
                        args.data_root, iters or args.iters, args.batch,
                        args.canvas, args.val_subset, args.task)
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        cfg.dump(out)
        print(f'{name}: config written to {out}')
        return {}
    start = time.time()
    if args.report:
        results = [
            r for r in load_results(args.work_dir)
            if r['row'] in args.variants and r['seed'] in args.seeds
        ]
    else:
        ensure_data(args)
        results = run_all(args)
    head = provenance(sys.argv[1:] if argv is None else argv, results)
    tables = {}
    # a table preset shows both: val for choosing, test for reporting (and
    # the holdout, where the runs evaluated one)
    splits = [args.split]
    if args.table:
        splits = ['val', 'test']
        if any('holdout_metrics' in r for r in results):
            splits.append('holdout')
    for split in splits:
        table = tables[split] = aggregate(
            results, args.task, split=split, baseline=args.baseline)
        text = format_table(table, args.task, args.baseline)
        print(f'split: {split}')
        print(text)
        os.makedirs(args.work_dir, exist_ok=True)
        atomic_write_text(f'{head}\nsplit: {split}\n\n{text}\n',
                          osp.join(args.work_dir, f'table_{split}.md'))
        atomic_write_text(
            json.dumps(table, indent=1),
            osp.join(args.work_dir, f'summary_{split}.json'))
    print(head)
    print(f'wall time {time.time() - start:.0f}s')
    return tables[args.split]
