# Copyright (c) mmprockd contributors. All rights reserved.
"""The classification example: a small classifier with and without a teacher.

On the embedded Fashion-MNIST subset (``data/fmnist_mini/``: 500 training,
1000 val and 2000 test images of 10 classes) this trains the same tiny
mmpretrain classifier three times, from the same random init and seed,
each through mmengine's Runner (``analysis_tools.proxy.run.run_one``):

* ``student``: alone, on the labels;
* ``pkd``: with the PKD feature-mimic loss towards a frozen ImageNet
  MobileNetV2
  (``configs/benchmark/pkd_mobilenetv2_resnet18-tiny_1000i_fmnist-64px.py``);
* ``prockd``: with ProC-KD, the paper's recipe
  (``configs/benchmark/prockd_mobilenetv2_resnet18-tiny_1000i_fmnist-64px.py``).

Two runs at a time, one thread each (``OMP_NUM_THREADS=1``, which also makes
the numbers repeat exactly on a CPU). Then it prints the side-by-side table
(val and test top-1, and the gain over the student alone as it is) and
writes into the work dir:

* ``table.md`` and ``results.json``;
* ``curves.png``: the student's cross-entropy of every run against the
  iteration, from each run's ``vis_data/scalars.json`` (mmpretrain's
  ``analyze_logs.py plot_curve``);
* ``predictions.png``: the three students on the same test images, true
  label above, each prediction green (right) or red (wrong), drawn with
  mmengine's ``Visualizer``;
* ``prototypes.png``: where ProC-KD's learned prototypes fire on one test
  item of each class (``visualize_prototypes.py``); the run's full
  checkpoint ``prockd/final.pth`` is kept for that tool.

Usage (6 minutes on 2 CPU cores, docs/user_guides/demo.md)::

    python tools/demo_compare.py [--work-dir work_dirs/demo_compare]
        [--seed 0] [--iters 500] [--jobs 2]

Finished runs with the same settings are reused when the command is run
again; ``--limit N`` (first N images of every split) and ``--iters 2``
make the smoke test of ``tests/test_tools/test_demo_compare.py``.
"""
import argparse
import contextlib
import hashlib
import importlib.util
import io
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

NPZ = osp.join(ROOT, 'data', 'fmnist_mini', 'fmnist_mini.npz')
# run -> (the proxy benchmark's row, what the student learns from[,
# its config file])
RUNS = {
    'student': ('student', 'the labels alone'),
    'pkd': ('pkd', 'labels + PKD feature mimic of the teacher'),
    'prockd': ('paper_recipe', 'labels + ProC-KD prototypes (paper recipe)',
               'prockd_mobilenetv2_resnet18-tiny_1000i_fmnist-64px.py'),
}
LEGEND = {'student': 'student alone', 'pkd': 'PKD', 'prockd': 'ProC-KD'}
# the slowest first: the two others share the second slot
ORDER = ('prockd', 'student', 'pkd')
SIZE = 64  # px, the classification proxy's image side
BATCH = 32
LOG_INTERVAL = 10  # iterations per point of the curves
GREEN, RED, BLACK = (0, 150, 0), (210, 0, 0), (0, 0, 0)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_compare')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--iters',
        type=int,
        default=500,
        help='training iterations of every run (500: 32 epochs of the 500 '
        'training images at batch 32)')
    parser.add_argument('--jobs', type=int, default=2, help='parallel runs')
    parser.add_argument(
        '--limit',
        type=int,
        help='use the first N images of every split (smoke tests)')
    parser.add_argument(
        '--num-show',
        type=int,
        default=16,
        help='test images in predictions.png')
    parser.add_argument('--worker', choices=list(RUNS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.iters < 1 or args.jobs < 1 or args.num_show < 1 or (
            args.limit is not None and args.limit < 1):
        parser.error('--iters, --jobs, --num-show and --limit must be >= 1')
    args.data_root = osp.join(args.work_dir, 'data')
    return args


def sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def settings(args: argparse.Namespace) -> dict:
    """What a finished run must match to be reused."""
    return dict(
        npz=sha256(NPZ), limit=args.limit, iters=args.iters, seed=args.seed)


# ---------------------------------------------------------------- data
def ensure_data(args: argparse.Namespace) -> None:
    """The 64 px PNGs and mmpretrain list files of the embedded subset,
    built by ``build_fmnist_cls.py`` unless already there."""
    from dataset_converters.build_fmnist_cls import build_from_npz
    stamp = osp.join(args.data_root, 'SOURCE.json')
    want = dict(npz=sha256(NPZ), limit=args.limit, size=SIZE)
    if osp.isfile(stamp) and osp.isfile(
            osp.join(args.data_root, 'meta', 'test.txt')):
        with open(stamp) as f:
            if json.load(f) == want:
                return
    counts = build_from_npz(NPZ, args.data_root, SIZE, args.limit)
    with open(stamp, 'w') as f:
        json.dump(want, f)
    print(f'data: {counts} images ({SIZE} px) from {osp.relpath(NPZ)} '
          f'-> {args.data_root}')


# ------------------------------------------------------------ a worker
def worker(args: argparse.Namespace) -> None:
    """Train, test and keep the predictions of one run (a subprocess)."""
    # isort: off
    import mmprockd  # noqa: F401  (its compat fixes first)
    # isort: on
    from analysis_tools.proxy.report import atomic_write_text
    from analysis_tools.proxy.run import run_one
    run = args.worker
    out_dir = osp.join(args.work_dir, run)

    def on_done(runner, result):
        result['predictions'] = predict(runner)
        if run == 'prockd':  # student and learner, for the heat maps
            runner.save_checkpoint(
                out_dir,
                'final.pth',
                save_optimizer=False,
                save_param_scheduler=False)

    result = run_one(
        RUNS[run][0],
        args.seed,
        out_dir,
        args.data_root,
        args.iters,
        BATCH,
        None,
        None,
        task='cls',
        cfg_options={
            'default_hooks.logger.interval': LOG_INTERVAL,
            'log_processor.window_size': LOG_INTERVAL,
        },
        on_done=on_done)
    result.update(run=run, settings=settings(args))
    atomic_write_text(json.dumps(result), osp.join(out_dir, 'result.json'))


def predict(runner) -> List[List]:
    """``[file name, true label, predicted label]`` of every test image
    (the runner's test loop is on the test split)."""
    import torch
    model = runner.model
    model.eval()
    rows = []
    with torch.no_grad():
        for data in runner.test_loop.dataloader:
            for sample in model.test_step(data):
                rows.append([
                    osp.basename(sample.img_path),
                    int(sample.gt_label[0]),
                    int(sample.pred_label[0])
                ])
    return rows


def class_mosaic(args: argparse.Namespace):
    """The first test image of every class, side by side at the trained
    size: ``(uint8 RGB (H, W, 3), float tensor (1, 3, H, W), classes)``."""
    import numpy as np
    import torch
    from dataset_converters.build_fmnist_cls import CLASSES
    from PIL import Image
    first: Dict[int, str] = {}
    with open(osp.join(args.data_root, 'meta', 'test.txt')) as f:
        for line in f:
            name, label = line.split()
            first.setdefault(int(label), name)
    labels = sorted(first)
    cols = min(4, len(labels))
    rows = math.ceil(len(labels) / cols)
    photo = np.zeros((rows * SIZE, cols * SIZE, 3), np.uint8)
    for i, label in enumerate(labels):
        img = Image.open(osp.join(args.data_root, first[label]))
        r, c = divmod(i, cols)
        photo[r * SIZE:(r + 1) * SIZE, c * SIZE:(c + 1) * SIZE] = \
            np.asarray(img.convert('RGB'))
    # (H, W, 3) -> (1, 3, H, W)
    tensor = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
    return photo, tensor, [CLASSES[k] for k in labels]


def draw_prototypes(args: argparse.Namespace, out: str) -> None:
    """``visualize_prototypes.py``'s heat maps of the trained ProC-KD
    learner (``prockd/final.pth``) on :func:`class_mosaic`."""
    from analysis_tools.visualize_prototypes import (build_distiller,
                                                     draw_grid, prototype_maps,
                                                     save_atomic)
    from mmengine.config import Config
    run_dir = osp.join(args.work_dir, 'prockd')
    # the config as the run used it, dumped by its Runner
    cfg = Config.fromfile(osp.join(run_dir, RUNS['prockd'][2]))
    model = build_distiller(cfg, osp.join(run_dir, 'final.pth'))
    photo, rgb, _ = class_mosaic(args)
    maps = prototype_maps(model, rgb, 0)
    num = min(7, len(maps))  # with the photo: two rows of four
    title = (f'ProC-KD: the {num} heaviest of {len(maps)} prototypes on one '
             f'test image per class ({SIZE} px, as trained; '
             f'{maps.shape[-2]}x{maps.shape[-1]} grid)')
    save_atomic(draw_grid(photo, maps, num, title), out)


# --------------------------------------------------------------- driver
def run_all(args: argparse.Namespace) -> Dict[str, dict]:
    """The missing runs, ``--jobs`` at a time, one thread each; returns
    every run's result."""
    want = settings(args)
    todo = []
    for run in ORDER:
        path = osp.join(args.work_dir, run, 'result.json')
        if osp.isfile(path):
            with open(path) as f:
                if json.load(f).get('settings') == want:
                    print(f'[reuse] {run}: {path}', flush=True)
                    continue
        todo.append(run)
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    running: List[tuple] = []
    failed = []
    while todo or running:
        while todo and len(running) < args.jobs:
            run = todo.pop(0)
            run_dir = osp.join(args.work_dir, run)
            os.makedirs(run_dir, exist_ok=True)
            log_path = osp.join(run_dir, 'stdout.log')
            log = open(log_path, 'w')
            cmd = [
                sys.executable,
                osp.abspath(__file__), '--worker', run, '--work-dir',
                args.work_dir, '--seed',
                str(args.seed), '--iters',
                str(args.iters)
            ]
            if args.limit:
                cmd += ['--limit', str(args.limit)]
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append((proc, log, run, log_path, time.time()))
            print(
                f'[start] {run}: {RUNS[run][1]} (log: {log_path})', flush=True)
        time.sleep(0.5)
        for item in list(running):
            proc, log, run, log_path, t0 = item
            if proc.poll() is None:
                continue
            log.close()
            running.remove(item)
            if proc.returncode:
                failed.append(run)
                with open(log_path) as f:
                    tail = f.read()[-3000:]
                print(
                    f'[FAILED rc={proc.returncode}] {run}; the end of '
                    f'{log_path}:\n{tail}',
                    flush=True)
            else:
                print(f'[done] {run} in {time.time() - t0:.0f} s', flush=True)
    if failed:
        raise RuntimeError(f'demo_compare: runs {failed} failed')
    results = {}
    for run in RUNS:
        with open(osp.join(args.work_dir, run, 'result.json')) as f:
            results[run] = json.load(f)
    return results


def format_table(results: Dict[str, dict], args: argparse.Namespace) -> str:
    """The side-by-side table: val and test top-1 of each run and its gain
    over the student alone, signed."""
    base = results['student']
    counts = {}
    with open(osp.join(args.data_root, 'SOURCE.json')) as f:
        limit = json.load(f)['limit']
    for split in ('train', 'val', 'test'):
        with open(osp.join(args.data_root, 'meta', f'{split}.txt')) as f:
            counts[split] = sum(1 for _ in f)
    lines = [
        f'Fashion-MNIST (10 classes, chance 10 %), embedded subset: '
        f'{counts["train"]} train / {counts["val"]} val / {counts["test"]} '
        f'test images{" (--limit)" if limit else ""}, {SIZE} px; '
        f'{args.iters} iterations, batch {BATCH}, seed {args.seed}',
        '',
        '| run | the student learns from | val top-1 | gain (val) | '
        'test top-1 | gain (test) | train s |',
        '|---|---|---|---|---|---|---|',
    ]
    for run, (_, desc, *_) in RUNS.items():
        r = results[run]
        val, test = r['metrics']['top1'], r['test_metrics']['top1']
        if run == 'student':
            gains = ['-', '-']
        else:
            gains = [
                f'{val - base["metrics"]["top1"]:+.1f}',
                f'{test - base["test_metrics"]["top1"]:+.1f}'
            ]
        lines.append(f'| {run} | {desc} | {val:.1f} | {gains[0]} | '
                     f'{test:.1f} | {gains[1]} | {r["train_s"]:.0f} |')
    lines += [
        '', 'One seed: a gain needs paired seeds to be told from noise. '
        'The five-seed classification table (python '
        'tools/analysis_tools/proxy_benchmark.py --task cls) is in '
        'docs/benchmark.md.'
    ]
    return '\n'.join(lines)


# ------------------------------------------------------------- pictures
def _analyze_logs():
    """mmpretrain's ``tools/analysis_tools/analyze_logs.py`` (shipped in
    the wheel under ``mmpretrain/.mim``), or None."""
    import mmpretrain
    path = osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'analysis_tools',
        'analyze_logs.py')
    if not osp.isfile(path):
        return None
    spec = importlib.util.spec_from_file_location('mmpretrain_analyze_logs',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def draw_curves(args: argparse.Namespace, out: str) -> None:
    """The student's cross-entropy of every run against the iteration, in
    one plot: mmpretrain's ``analyze_logs.py plot_curve`` on each run's
    ``vis_data/scalars.json`` (a distiller logs it as ``student.loss``)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mmpretrain.utils import load_json_log
    key = 'student cross-entropy'
    logs, dicts = [], []
    for run in RUNS:
        found = [
            osp.join(root, 'scalars.json')
            for root, _, files in os.walk(osp.join(args.work_dir, run))
            if root.endswith('vis_data') and 'scalars.json' in files
        ]
        log = max(found, key=osp.getmtime)
        log_dict = load_json_log(log)
        for row in log_dict['train']:
            row[key] = row.get('student.loss', row['loss'])
        logs.append(log)
        dicts.append(log_dict)
    legend = [LEGEND[run] for run in RUNS]
    tool = _analyze_logs()
    plt.figure(figsize=(8, 4.5))
    if tool is not None:
        cli = argparse.Namespace(json_logs=logs, keys=[key])
        with contextlib.redirect_stdout(io.StringIO()):  # its progress
            tool.plot_curve_helper(dicts, [key], cli, legend)
    else:  # an mmpretrain without its tools: the same plot
        for log_dict, label in zip(dicts, legend):
            rows = log_dict['train']
            plt.plot([r['step'] for r in rows], [r[key] for r in rows],
                     label=label,
                     linewidth=0.75)
        plt.xlabel('Iters')
        plt.legend()
    plt.yscale('log')
    plt.ylabel(f'{key} (training batch, mean of {LOG_INTERVAL} iters)')
    plt.title(f'Training curves, seed {args.seed}')
    plt.grid(True, which='both', alpha=0.3)
    plt.tight_layout()
    plt.savefig(out, dpi=100)
    plt.close()


def draw_predictions(results: Dict[str, dict], args: argparse.Namespace,
                     out: str) -> None:
    """The first ``--num-show`` test images, the true label above each and
    every run's prediction below it (green right, red wrong), drawn with
    mmengine's ``Visualizer``."""
    import numpy as np
    from dataset_converters.build_fmnist_cls import CLASSES
    from mmengine.visualization import Visualizer
    from PIL import Image
    preds = {run: results[run]['predictions'] for run in RUNS}
    num = min(args.num_show, len(preds['student']))
    tile, line = 2 * SIZE, 15
    cell_w, head, foot = tile + 48, line + 6, line * len(RUNS) + 8
    cell_h = head + tile + foot
    cols = min(8, num)
    rows = math.ceil(num / cols)
    top = 2 * line
    canvas = np.full((top + rows * cell_h, cols * cell_w, 3), 255, np.uint8)
    texts, positions, colors = [], [], []
    for i in range(num):
        name, true, _ = preds['student'][i]
        r, c = divmod(i, cols)
        x0, y0 = c * cell_w, top + r * cell_h
        img = Image.open(osp.join(args.data_root, 'test', name))
        img = img.convert('RGB').resize((tile, tile), Image.BILINEAR)
        ix = x0 + (cell_w - tile) // 2
        canvas[y0 + head:y0 + head + tile, ix:ix + tile] = np.asarray(img)
        texts.append(f'true: {CLASSES[true]}')
        positions.append([x0 + 4, y0 + 3])
        colors.append(BLACK)
        for k, run in enumerate(RUNS):
            pname, ptrue, pred = preds[run][i]
            assert (pname, ptrue) == (name, true), 'runs saw other images'
            texts.append(f'{LEGEND[run]}: {CLASSES[pred]}')
            positions.append([x0 + 4, y0 + head + tile + 4 + k * line])
            colors.append(GREEN if pred == true else RED)
    wrong = {run: sum(p[1] != p[2] for p in preds[run][:num]) for run in RUNS}
    texts.append(f'The first {num} test images. Green: right, red: wrong '
                 '(' + ', '.join(f'{LEGEND[run]} {wrong[run]} wrong'
                                 for run in RUNS) + ')')
    positions.append([4, 6])
    colors.append(BLACK)
    vis = Visualizer(name=f'demo_compare_{os.getpid()}')
    vis.set_image(canvas)
    vis.draw_texts(
        texts,
        np.array(positions),
        colors=colors,
        font_sizes=9,
        vertical_alignments='top',
        horizontal_alignments='left')
    Image.fromarray(vis.get_image()).save(out)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, dict]:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    start = time.time()
    os.makedirs(args.work_dir, exist_ok=True)
    ensure_data(args)
    results = run_all(args)
    from analysis_tools.proxy.report import atomic_write_text
    text = format_table(results, args)
    atomic_write_text(text + '\n', osp.join(args.work_dir, 'table.md'))
    summary = {
        run:
        dict(
            val_top1=r['metrics']['top1'],
            test_top1=r['test_metrics']['top1'],
            train_s=r['train_s'],
            settings=r['settings'])
        for run, r in results.items()
    }
    atomic_write_text(
        json.dumps(summary, indent=1), osp.join(args.work_dir, 'results.json'))
    pictures = {
        name: osp.join(args.work_dir, f'{name}.png')
        for name in ('curves', 'predictions', 'prototypes')
    }
    draw_curves(args, pictures['curves'])
    draw_predictions(results, args, pictures['predictions'])
    draw_prototypes(args, pictures['prototypes'])
    print()
    print(text)
    print()
    for name, path in pictures.items():
        print(f'{name}: {path}')
    print(f'wall time {time.time() - start:.0f} s')
    return summary


if __name__ == '__main__':
    main()
