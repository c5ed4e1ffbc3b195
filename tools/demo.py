# Copyright (c) mmprockd contributors. All rights reserved.
"""The main job: does a frozen ImageNet teacher make a small detector better?

On canvases composed from the embedded Fashion-MNIST items
(``data/fmnist_mini/``; 100 training canvases, 400 test canvases, 10
classes) this trains a tiny mmdet RetinaNet three ways, each through
mmengine's Runner, at every seed:

* ``student``: alone, for ``--iters`` iterations (400);
* ``student_more_time``: alone, for ``--more-iters`` (1000), which takes
  at least as long as the recipe (the baseline a user would pick; the table
  says so if it trained for less time than the recipe);
* ``two_stage``: the recommended recipe, two-stage ProC-KD [ours], in one
  run: ``--branch-iters`` (300) in which only the prototype branch learns
  over the frozen ImageNet MobileNetV2, then ``--distill-iters`` (600) in
  which the frozen branch teaches the student from its init (the detection
  flagship ``configs/prockd_retinanet_coco.py`` at proxy size).

The defaults are the shortest schedules at which the recipe still beat the
student given more time on the val split, at 5 seeds (docs/user_guides/
demo.md): a 200-iteration branch phase, or a 450-iteration student phase,
loses the gain. The rows ``student``, ``student@1600`` and ``two_stage``
of ``--table det_n100_mini`` in docs/benchmark.md are the same rows at the
benchmark's longer schedule.

For one seed every row starts from the same student init and sees the same
data order, so each gain is paired. It prints a progress line per run, then
the table of test mAP with the paired gain over each baseline (mean ± std
over the seeds), and writes into the work dir:

* ``table.md`` and ``results.json``;
* ``boxes.png``: the same test canvases with the boxes of the three
  students of the first seed (ground truth in green);
* ``curves.png``: the students' detection loss against their own
  iterations, and the branch's in its phase;
* ``prototypes.png``: where the branch's prototypes attend on test canvases
  (the augment's attention at the finest prototype level).

Usage (about 6 minutes on 2 CPU cores; docs/user_guides/demo.md)::

    python tools/demo.py [--work-dir work_dirs/demo] [--seeds 0 1 2]
        [--iters 400] [--branch-iters 300] [--distill-iters 600]
        [--more-iters 1000] [--batch 8] [--jobs 2] [--split test|val]

It is a small proxy: the full tables (5 seeds, a validation split for
choosing, the controls) are in docs/benchmark.md. Finished runs with the
same settings are reused. ``--num-test N`` (the first N test canvases) and
a few iterations per row make the smoke test.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

NPZ = osp.join(ROOT, 'data', 'fmnist_mini', 'fmnist_mini.npz')
DATA = osp.join(ROOT, 'data', 'fmnist_canvas', 'n100_mini')
# the canvases of the detection tables (docs/benchmark.md)
SPLITS = dict(num_train=100, num_val=200, num_test=400)
BUILD = dict(SPLITS, canvas=96, min_size=24, max_size=48)
BATCH = 8
# row -> (proxy benchmark row, the option that sets its student's
# iterations, legend, what the student learns from)
ROWS = {
    'student': ('student', 'iters', 'student alone', 'the boxes'),
    'student_more_time':
    ('student', 'more_iters', 'student alone, given more time',
     'the boxes, for at least the recipe\'s time'),
    'two_stage':
    ('two_stage', 'distill_iters', 'two-stage ProC-KD',
     'the boxes + the frozen branch (KL and PKD from its features)'),
}
RECIPE = 'two_stage'
LOG_INTERVAL = 10
NUM_SHOW = 4  # test canvases in boxes.png and prototypes.png
SCORE_THR = 0.3


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--iters',
        type=int,
        default=400,
        help='iterations of the student alone')
    parser.add_argument(
        '--branch-iters',
        type=int,
        default=300,
        help='iterations of the recipe\'s branch phase')
    parser.add_argument(
        '--distill-iters',
        type=int,
        default=600,
        help='iterations of the recipe\'s student phase')
    parser.add_argument(
        '--more-iters',
        type=int,
        default=1000,
        help='iterations of the student given more time; its training '
        'time must be at least the recipe\'s (the table says if not)')
    parser.add_argument(
        '--batch', type=int, default=BATCH, help='training batch size')
    parser.add_argument('--jobs', type=int, default=2, help='parallel runs')
    parser.add_argument(
        '--data-root',
        default=DATA,
        help='the canvases; built from the embedded items when it has no '
        'annotations')
    parser.add_argument(
        '--num-test',
        type=int,
        help='evaluate on the first N test canvases only (smoke tests)')
    parser.add_argument(
        '--split',
        choices=['test', 'val'],
        default='test',
        help='the split the table reports: test, or val (200 canvases) to '
        'choose settings on; each run then also scores val')
    parser.add_argument('--worker', nargs='+', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.iters, args.branch_iters, args.distill_iters, args.more_iters,
           args.batch, args.jobs, args.num_test or 1) < 1:
        parser.error('--iters, --branch-iters, --distill-iters, '
                     '--more-iters, --batch, --jobs and --num-test must be '
                     '>= 1')
    if len(set(args.seeds)) != len(args.seeds) or len(args.seeds) < 2:
        parser.error('--seeds needs at least two different seeds (the '
                     'gain is a mean ± std over them)')
    return args


def settings(args: argparse.Namespace, row: str, seed: int) -> dict:
    """What a finished run must match to be reused."""
    return dict(
        row=row,
        seed=seed,
        iters=student_iters(args, row),
        branch_iters=args.branch_iters if row == RECIPE else None,
        batch=args.batch,
        num_test=args.num_test,
        val=args.split == 'val',
        data_root=osp.abspath(args.data_root))


def student_iters(args: argparse.Namespace, row: str) -> int:
    """The iterations in which ``row``'s student trains."""
    return getattr(args, ROWS[row][1])


def run_dir(args: argparse.Namespace, row: str, seed: int) -> str:
    return osp.join(args.work_dir, row, f'seed{seed}')


def ensure_data(data_root: str) -> None:
    """The canvases of ``--table det_n100_mini``, built from the embedded
    items unless already there."""
    if osp.isfile(osp.join(data_root, 'annotations', 'instances_test.json')):
        return
    from dataset_converters.build_fmnist_canvas import build
    print(
        f'data: composing canvases from {osp.relpath(NPZ, ROOT)}', flush=True)
    build(NPZ, data_root, **BUILD)


# ------------------------------------------------------------- a worker
def overrides(row: str, iters: int) -> dict:
    """The recipe's branch phase at ``iters`` iterations (the proxy
    row's is 400); the student phase follows."""
    if row != RECIPE:
        return {}
    return {
        'custom_hooks.0.student_start': iters,
        'custom_hooks.0.branch_stop': iters
    }


def claim(out_dir: str) -> bool:
    """Take the run of ``out_dir`` for this worker: True if no other worker
    has (its ``started`` file is created here, atomically)."""
    os.makedirs(out_dir, exist_ok=True)
    try:
        os.close(
            os.open(
                osp.join(out_dir, 'started'), os.O_CREAT | os.O_EXCL
                | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def worker(args: argparse.Namespace) -> None:
    """Train and test the runs ``ROW:SEED`` it is given, in their order,
    one after the other in this process (one import of the stack),
    skipping those another worker has claimed."""
    # isort: off
    import mmprockd  # noqa: F401  (its compat fixes first)
    # isort: on
    from analysis_tools.proxy.report import atomic_write_text
    from analysis_tools.proxy.run import run_one
    for item in args.worker:
        row, seed = item.split(':')
        seed = int(seed)
        out_dir = run_dir(args, row, seed)
        if not claim(out_dir):
            continue
        proxy_row = ROWS[row][0]

        def on_done(runner, result, row=row, seed=seed):
            if seed == args.seeds[0]:
                result['boxes'] = predict(runner)
                if row == RECIPE:
                    result['attention'] = attention(runner)

        cfg_options = {
            'default_hooks.logger.interval': LOG_INTERVAL,
            'log_processor.window_size': LOG_INTERVAL,
        }
        if args.num_test:
            cfg_options['test_dataloader.dataset.indices'] = args.num_test
        result = run_one(
            proxy_row,
            seed,
            out_dir,
            args.data_root,
            student_iters(args, row),
            args.batch,
            BUILD['canvas'],
            None,
            task='det',
            cfg_options=cfg_options,
            on_done=on_done,
            overrides=overrides(row, args.branch_iters),
            val=args.split == 'val')
        result.update(settings=settings(args, row, seed))
        atomic_write_text(json.dumps(result), osp.join(out_dir, 'result.json'))


def predict(runner) -> List[dict]:
    """The boxes (score >= ``SCORE_THR``) of the first ``NUM_SHOW`` test
    canvases."""
    import torch
    model = runner.model
    model.eval()
    rows = []
    with torch.no_grad():
        for data in runner.test_loop.dataloader:
            for sample in model.test_step(data):
                pred = sample.pred_instances
                keep = pred.scores >= SCORE_THR
                rows.append(
                    dict(
                        img=osp.basename(sample.img_path),
                        bboxes=pred.bboxes[keep].tolist(),
                        scores=pred.scores[keep].tolist(),
                        labels=pred.labels[keep].tolist()))
                if len(rows) == NUM_SHOW:
                    return rows
    return rows


def attention(runner, num_protos: int = 3) -> dict:
    """The augment's attention over the prototypes at the finest
    prototype level on the first ``NUM_SHOW`` test canvases: the
    ``num_protos`` prototypes with the most attention mass, ``(NUM_SHOW,
    num_protos, h, w)``."""
    import torch
    model = runner.model
    model.eval()
    batch = next(iter(runner.test_loop.dataloader))
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        _, attns = model.prototype_assignments(data['inputs'][:NUM_SHOW])
    attn = attns[0]  # (N, K, h, w), sums to 1 over K
    top = attn.sum(dim=(0, 2, 3)).argsort(descending=True)[:num_protos]
    return dict(
        prototypes=top.tolist(),
        num_prototypes=attn.shape[1],
        maps=attn[:, top].tolist(),
        imgs=[osp.basename(s.img_path) for s in batch['data_samples']])


# --------------------------------------------------------------- driver
def plan(args: argparse.Namespace) -> List[str]:
    """The missing runs, heaviest first (in student iterations; a run's
    build and test cost about 80, a branch iteration 0.8, a distilled
    student's 1.15, measured on the proxy). Every worker gets the whole
    list and takes the next run no other worker has taken, so the short
    runs fill the end."""
    cost = dict(
        student=args.iters + 80,
        student_more_time=args.more_iters + 80,
        two_stage=0.8 * args.branch_iters + 1.15 * args.distill_iters + 160)
    todo = []
    for seed in args.seeds:
        for row in ROWS:
            path = osp.join(run_dir(args, row, seed), 'result.json')
            if osp.isfile(path):
                with open(path) as f:
                    stored = json.load(f).get('settings') or {}
                # a run that scored val scored test too
                if settings(args, row,
                            seed) in (stored, dict(stored, val=False)):
                    print(f'[reuse] {row} seed {seed}', flush=True)
                    continue
            todo.append((row, seed))
    todo.sort(key=lambda rs: -cost[rs[0]])
    return [f'{row}:{seed}' for row, seed in todo]


def run_all(args: argparse.Namespace) -> Dict[str, Dict[int, dict]]:
    """Run the missing runs, ``--jobs`` at a time, a line per run as it
    starts and ends; returns ``{row: {seed: result}}``."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    todo = plan(args)
    for item in todo:  # what an interrupted or other run left there
        row, seed = item.split(':')
        for name in ('started', 'result.json'):
            path = osp.join(run_dir(args, row, int(seed)), name)
            if osp.isfile(path):
                os.remove(path)
    procs = []
    for i in range(min(args.jobs, len(todo))):
        log_path = osp.join(args.work_dir, f'worker{i}.log')
        cmd = [
            sys.executable,
            osp.abspath(__file__), '--work-dir', args.work_dir, '--iters',
            str(args.iters), '--branch-iters',
            str(args.branch_iters), '--distill-iters',
            str(args.distill_iters), '--more-iters',
            str(args.more_iters), '--batch',
            str(args.batch), '--seeds', *map(str, args.seeds), '--data-root',
            args.data_root, '--worker', *todo
        ]
        if args.num_test:
            cmd += ['--num-test', str(args.num_test)]
        cmd += ['--split', args.split]
        log = open(log_path, 'w')
        procs.append((subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT,
            env=env), log, log_path))
    started, done = set(), set()
    key = metric_keys(args)[0]
    t0 = time.time()
    while True:
        alive = [p for p, *_ in procs if p.poll() is None]
        for item in todo:
            row, seed = item.split(':')
            path = run_dir(args, row, int(seed))
            if item not in started and osp.isfile(osp.join(path, 'started')):
                started.add(item)
                print(f'[start] {ROWS[row][2]}, seed {seed}', flush=True)
            if item not in done and osp.isfile(osp.join(path, 'result.json')):
                done.add(item)
                with open(osp.join(path, 'result.json')) as f:
                    r = json.load(f)
                print(
                    f'[done]  {ROWS[row][2]}, seed {seed}: {args.split} mAP '
                    f'{100 * r[key]["bbox_mAP"]:.1f}, trained '
                    f'in {r["train_s"]:.0f} s ({time.time() - t0:.0f} s '
                    'so far)',
                    flush=True)
        if not alive:
            break
        time.sleep(0.5)
    for proc, log, log_path in procs:
        log.close()
        if proc.returncode:
            with open(log_path) as f:
                tail = f.read()[-3000:]
            raise RuntimeError(
                f'demo: a worker failed (rc={proc.returncode}); the end of '
                f'{log_path}:\n{tail}')
    results: Dict[str, Dict[int, dict]] = {}
    for row in ROWS:
        for seed in args.seeds:
            with open(osp.join(run_dir(args, row, seed), 'result.json')) as f:
                results.setdefault(row, {})[seed] = json.load(f)
    return results


def metric_keys(args: argparse.Namespace) -> tuple:
    """Where a run's result holds the student's and the branch's metrics
    on the ``--split`` the table reports."""
    if args.split == 'val':
        return 'metrics', 'proto_branch_metrics'
    return 'test_metrics', 'proto_branch_test_metrics'


def mean_std(values: Sequence[float]) -> str:
    return f'{statistics.fmean(values):+.1f} ± {statistics.stdev(values):.1f}'


def summarise(results: Dict[str, Dict[int, dict]],
              args: argparse.Namespace) -> dict:
    """Per row: mAP on ``--split`` per seed, train seconds, and the
    paired gain over each student row (per seed: row minus baseline)."""
    student_key, branch_key = metric_keys(args)

    def score(r):
        return 100 * r[student_key]['bbox_mAP']

    out = {}
    for row in ROWS:
        maps = [score(results[row][s]) for s in args.seeds]
        out[row] = dict(
            mAP=[round(m, 1) for m in maps],
            train_s=[results[row][s]['train_s'] for s in args.seeds],
            gain={
                base: [
                    round(m - score(results[base][s]), 1)
                    for m, s in zip(maps, args.seeds)
                ]
                for base in ('student', 'student_more_time')
                if list(ROWS).index(base) < list(ROWS).index(row)
            })
        branch = [
            results[row][s].get(branch_key, {}).get('bbox_mAP')
            for s in args.seeds
        ]
        if all(b is not None for b in branch):
            out[row]['branch_mAP'] = [round(100 * b, 1) for b in branch]
    return out


def format_table(summary: dict, args: argparse.Namespace) -> str:
    """The table: mAP on ``--split`` (mean ± std over the seeds), the
    paired gain over the student alone and over the student given more
    time, and the mean training time; then whether the recipe's gain
    passes twice its std."""
    n = len(args.seeds)
    lines = [
        f'Detection on 96 px canvases of Fashion-MNIST items (10 classes), '
        f'{BUILD["num_train"]} training canvases, '
        f'{args.num_test or BUILD[f"num_{args.split}"]} {args.split} '
        'canvases; tiny RetinaNet student, '
        f'frozen ImageNet MobileNetV2 teacher; seeds '
        f'{" ".join(map(str, args.seeds))} (paired)',
        '',
        f'| row | iterations | the student learns from | {args.split} mAP | '
        'gain over the student alone | gain over the student given more '
        'time | train s |',
        '|---|---|---|---|---|---|---|',
    ]
    for row, (_, _, legend, desc) in ROWS.items():
        s = summary[row]
        its = f'{student_iters(args, row)}'
        if row == RECIPE:
            its = f'{args.branch_iters} branch + {its} student'
        gains = [
            mean_std(s['gain'][b]) if b in s['gain'] else '-'
            for b in ('student', 'student_more_time')
        ]
        lines.append(f'| {legend} | {its} | {desc} | '
                     f'{statistics.fmean(s["mAP"]):.1f} ± '
                     f'{statistics.stdev(s["mAP"]):.1f} | {gains[0]} | '
                     f'{gains[1]} | {statistics.fmean(s["train_s"]):.0f} |')
    more_s = statistics.fmean(summary['student_more_time']['train_s'])
    recipe_s = statistics.fmean(summary[RECIPE]['train_s'])
    if more_s < recipe_s:
        lines += [
            '',
            f'Note: the student given more time trained {more_s:.0f} s, less '
            f'than the recipe\'s {recipe_s:.0f} s: raise --more-iters for an '
            'equal-time comparison.'
        ]
    gain = summary[RECIPE]['gain']['student_more_time']
    mean, std = statistics.fmean(gain), statistics.stdev(gain)
    verdict = 'passes' if mean > 2 * std else 'does not pass'
    lines += [
        '',
        f'Two-stage ProC-KD minus the student given more time, per seed: '
        f'{", ".join(f"{g:+.1f}" for g in gain)}; mean {mean:+.1f}, '
        f'{verdict} twice its std ({2 * std:.1f}) over {n} seeds.',
    ]
    if 'branch_mAP' in summary[RECIPE]:
        branch = summary[RECIPE]['branch_mAP']
        lines.append(
            f'The frozen branch itself (teacher, prototypes and its own '
            f'head): {statistics.fmean(branch):.1f} {args.split} mAP.')
    lines.append(
        'A small CPU proxy, not COCO: the full tables (5 seeds, a val '
        'split for choosing, PKD, the paper recipe, a random-teacher '
        'control) are in docs/benchmark.md.')
    return '\n'.join(lines)


# ------------------------------------------------------------- pictures
def _load_rgb(data_root: str, name: str):
    """A test canvas as uint8 RGB ``(H, W, 3)``."""
    import numpy as np
    from PIL import Image
    path = osp.join(data_root, 'test', 'images', name)
    return np.asarray(Image.open(path).convert('RGB'))


def _ground_truth(data_root: str) -> Dict[str, list]:
    """``{file name: [([x0, y0, x1, y1], class index), ...]}`` of the
    test canvases."""
    with open(osp.join(data_root, 'annotations', 'instances_test.json')) as f:
        coco = json.load(f)
    names = {im['id']: im['file_name'] for im in coco['images']}
    boxes: Dict[str, list] = {}
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        boxes.setdefault(names[ann['image_id']], []).append(
            ([x, y, x + w, y + h], ann['category_id'] - 1))
    return boxes


def draw_boxes(results: Dict[str, Dict[int, dict]], args: argparse.Namespace,
               out: str) -> None:
    """A row per student of the first seed, a column per test canvas: the
    ground truth in green, the student's boxes in red with class and
    score, drawn with mmengine's ``Visualizer``."""
    import numpy as np
    from dataset_converters.build_fmnist_canvas import CLASSES
    from mmengine.visualization import Visualizer
    from PIL import Image
    seed, scale, pad, head = args.seeds[0], 3, 6, 22
    gt = _ground_truth(args.data_root)
    preds = {row: results[row][seed]['boxes'] for row in ROWS}
    names = [p['img'] for p in preds['student']]
    tile = BUILD['canvas'] * scale
    width = len(names) * (tile + pad) + pad
    height = len(ROWS) * (tile + head + pad) + head
    vis = Visualizer(name=f'demo_boxes_{os.getpid()}')
    canvas = np.full((height, width, 3), 255, np.uint8)
    placed = []  # (x0, y0, row, image name)
    for r, row in enumerate(ROWS):
        for c, name in enumerate(names):
            x0 = pad + c * (tile + pad)
            y0 = head + r * (tile + head + pad) + head
            img = Image.fromarray(_load_rgb(args.data_root, name)).resize(
                (tile, tile), Image.NEAREST)
            canvas[y0:y0 + tile, x0:x0 + tile] = np.asarray(img)
            placed.append((x0, y0, row, c))
    vis.set_image(canvas)
    for r, row in enumerate(ROWS):
        found = sum(len(p['bboxes']) for p in preds[row])
        vis.draw_texts(
            f'{ROWS[row][2]} (test mAP '
            f'{100 * results[row][seed]["test_metrics"]["bbox_mAP"]:.1f}, '
            f'{found} boxes with score >= {SCORE_THR})',
            np.array([pad, head + r * (tile + head + pad) + 4]),
            colors='black',
            font_sizes=10)
    for x0, y0, row, c in placed:
        pred = preds[row][c]
        for box, _ in gt.get(names[c], []):
            vis.draw_bboxes(
                np.array(box) * scale + [x0, y0, x0, y0],
                edge_colors=(0, 170, 0),
                line_widths=2)
        for box, score, label in zip(pred['bboxes'], pred['scores'],
                                     pred['labels']):
            xy = np.array(box) * scale + [x0, y0, x0, y0]
            vis.draw_bboxes(xy, edge_colors=(220, 0, 0), line_widths=1)
            vis.draw_texts(
                f'{CLASSES[label]} {score:.2f}',
                xy[:2] + [2, 1],
                colors=(220, 0, 0),
                font_sizes=7)
    vis.draw_texts(
        f'The first {len(names)} test canvases, seed {seed}. Green: ground '
        'truth; red: the student\'s boxes.',
        np.array([pad, 4]),
        colors='black',
        font_sizes=10)
    Image.fromarray(vis.get_image()).save(out)


def _curve(args: argparse.Namespace, row: str) -> List[dict]:
    from analysis_tools.proxy.run import read_curve
    return [
        r for r in read_curve(run_dir(args, row, args.seeds[0])) if 'iter' in r
    ]


def draw_curves(args: argparse.Namespace, out: str) -> None:
    """The student's detection loss (classification + box) of each row
    against the student's own iterations, seed ``--seeds[0]``; and the
    branch's in the recipe's branch phase."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for row in ROWS:
        xs, ys = [], []
        for r in _curve(args, row):
            keys = [
                k for k in ('loss_cls', 'loss_bbox', 'student.loss_cls',
                            'student.loss_bbox') if k in r
            ]
            if not keys:  # the branch phase: the student does not train
                continue
            start = args.branch_iters if row == RECIPE else 0
            xs.append(r['iter'] - start)
            ys.append(sum(r[k] for k in keys))
        ax.plot(xs, ys, label=ROWS[row][2], linewidth=0.9)
    ax.set_yscale('log')
    ax.set_xlabel('the student\'s iterations')
    ax.set_ylabel(f'detection loss (mean of {LOG_INTERVAL} iterations)')
    ax.set_title('The students')
    ax.legend()
    ax.grid(True, which='both', alpha=0.3)
    xs, ys = [], []
    for r in _curve(args, RECIPE):
        if r['iter'] <= args.branch_iters and 'distill.proto.loss_cls' in r:
            xs.append(r['iter'])
            ys.append(r['distill.proto.loss_cls'] +
                      r.get('distill.proto.loss_bbox', 0.0))
    bx.plot(xs, ys, color='tab:green', linewidth=0.9)
    bx.set_yscale('log')
    bx.set_xlabel('iterations of the branch phase')
    bx.set_title('The prototype branch over the frozen teacher')
    bx.grid(True, which='both', alpha=0.3)
    fig.suptitle(f'Training curves, seed {args.seeds[0]}')
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def draw_prototypes(results: Dict[str, Dict[int, dict]],
                    args: argparse.Namespace, out: str) -> None:
    """A row per test canvas: the canvas, then the attention of the
    heaviest prototypes over it."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    att = results[RECIPE][args.seeds[0]]['attention']
    maps = np.array(att['maps'])  # (N, P, h, w)
    num, protos = maps.shape[:2]
    fig, axes = plt.subplots(
        num, protos + 1, figsize=(2 * (protos + 1), 2 * num), squeeze=False)
    for i in range(num):
        img = _load_rgb(args.data_root, att['imgs'][i])
        axes[i][0].imshow(img)
        for j in range(protos):
            axes[i][j + 1].imshow(img)
            axes[i][j + 1].imshow(
                maps[i, j],
                cmap='magma',
                alpha=0.6,
                vmin=0,
                vmax=maps[i, j].max(),
                extent=(0, img.shape[1], img.shape[0], 0),
                interpolation='bilinear')
            if i == 0:
                axes[i][j + 1].set_title(
                    f'prototype {att["prototypes"][j]}', fontsize=9)
        for ax in axes[i]:
            ax.axis('off')
    axes[0][0].set_title('test canvas', fontsize=9)
    fig.suptitle(
        f'Where the branch\'s prototypes attend (the {protos} of '
        f'{att["num_prototypes"]} with the most attention)\neach map from 0 '
        f'to its own maximum ({maps.max():.2f} at most; spread evenly: '
        f'{1 / att["num_prototypes"]:.3f})',
        fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    start = time.time()
    os.makedirs(args.work_dir, exist_ok=True)
    ensure_data(args.data_root)
    results = run_all(args)
    from analysis_tools.proxy.report import atomic_write_text
    summary = summarise(results, args)
    text = format_table(summary, args)
    atomic_write_text(text + '\n', osp.join(args.work_dir, 'table.md'))
    atomic_write_text(
        json.dumps(summary, indent=1), osp.join(args.work_dir, 'results.json'))
    pictures = {
        name: osp.join(args.work_dir, f'{name}.png')
        for name in ('boxes', 'curves', 'prototypes')
    }
    draw_boxes(results, args, pictures['boxes'])
    draw_curves(args, pictures['curves'])
    draw_prototypes(results, args, pictures['prototypes'])
    print()
    print(text)
    print()
    for name, path in pictures.items():
        print(f'{name}: {path}')
    print(f'wall time {time.time() - start:.0f} s')
    return summary


if __name__ == '__main__':
    main()
