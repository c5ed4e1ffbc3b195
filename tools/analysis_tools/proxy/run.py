# Copyright (c) mmprockd contributors. All rights reserved.
"""One run of the accuracy proxy benchmark.

A row of ``rows.ROWS`` and a seed become a config (:func:`build_cfg`),
which mmengine's Runner trains and tests on the val split and then on the
test split (:func:`run_one`); the prototype branch is evaluated on its own
and its assignment entropy measured when the run has one. The driver
(``cli.py``) runs each in a fresh process (``--worker``).
"""
import copy
import json
import os
import os.path as osp
import time
from typing import Callable, Dict, List, Optional

from .rows import CFG_DIR, NEEDS, TASKS


def _strip(metrics: dict) -> Dict[str, float]:
    """``coco/bbox_mAP`` -> ``bbox_mAP``."""
    return {k.split('/')[-1]: float(v) for k, v in metrics.items()}


# ------------------------------------------------------------- one run
def _scaled_schedule(schedulers: list, iters: int) -> list:
    """A benchmark config's schedule (a linear warm-up, then one decay)
    scaled to ``iters`` iterations: the warm-up over the first tenth."""
    warm = max(1, iters // 10)
    scaled = []
    for sched in schedulers:
        sched = copy.deepcopy(sched)
        if sched.type == 'LinearLR':
            sched.end = warm
        else:
            sched.begin = min(sched.get('begin', 0), warm)
            sched.end = iters
            sched.T_max = iters - sched.begin
        scaled.append(sched)
    return scaled


def _set_iters(cfg, iters: int) -> None:
    """Scale the schedule of a benchmark config to ``iters`` iterations.

    [ours] A config whose ``DistillScheduleHook`` has ``student_start=S``
    (two-stage ProC-KD in one run) keeps its branch phase at S iterations,
    the length of the two-run recipe's stage 1, with stage 1's schedule;
    the student phase that follows gets ``iters`` iterations and the
    schedule of a run of that length (``student_schedule``), as stage 2."""
    warm = max(1, iters // 10)
    ratio = iters / cfg.train_cfg.max_iters
    hooks = [
        h for h in cfg.get('custom_hooks', [])
        if h.type == 'mmprockd.DistillScheduleHook'
    ]
    start = hooks[0].get('student_start', 0) if hooks else 0
    total = start + iters
    cfg.train_cfg.max_iters = total
    cfg.train_cfg.val_interval = total
    if start:
        hooks[0].student_schedule = _scaled_schedule(cfg.param_scheduler,
                                                     iters)
        cfg.param_scheduler = _scaled_schedule(cfg.param_scheduler, start)
        hooks[0].warmup = max(1, start // 10)
        hooks[0].student_warmup = warm
        hooks[0].branch_stop = start
        return
    cfg.param_scheduler = _scaled_schedule(cfg.param_scheduler, iters)
    for hook in hooks:
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
    if cfg.get('unlabelled_ann'):
        _add_unlabelled(cfg, batch)
    if val_subset:
        cfg.test_dataloader.dataset.indices = val_subset
    cfg.test_evaluator = cfg.val_evaluator
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg.val_interval = 10**9


def _add_unlabelled(cfg, batch: int) -> None:
    """[ours] Train on the labelled images and an unlabelled transfer set
    (``cfg.unlabelled_ann``, lines ``path -1``): every batch holds
    ``batch`` labelled images, as the student alone's, and
    ``unlabelled_ratio`` times as many unlabelled ones (mmdet's
    ``MultiSourceSampler`` over an mmengine ``ConcatDataset``). The labelled
    part is drawn in the student alone's order: both samplers take
    ``torch.randperm`` from a generator seeded with the run's seed."""
    ratio = int(cfg.get('unlabelled_ratio', 1))
    labelled = cfg.train_dataloader.dataset
    path = osp.join(labelled.data_root, cfg.unlabelled_ann)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'proxy_benchmark: this row trains on an unlabelled set, but '
            f'{path} does not exist; build it with '
            'tools/dataset_converters/build_fmnist_cls.py ... '
            '--num-unlabelled 2000 (the other arguments as for the data)')
    unlabelled = copy.deepcopy(labelled)
    unlabelled.ann_file = cfg.unlabelled_ann
    total = batch * (1 + ratio)
    cfg.train_dataloader.batch_size = total
    cfg.train_dataloader.sampler = dict(
        type='mmdet.MultiSourceSampler',
        batch_size=total,
        source_ratio=[1, ratio])
    cfg.train_dataloader.dataset = dict(
        type='ConcatDataset', datasets=[labelled, unlabelled])


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


def build_cfg(row: str,
              seed: int,
              out_dir: str,
              data_root: str,
              iters: int,
              batch: int,
              canvas: int,
              val_subset: Optional[int],
              task: str = 'det',
              cfg_options: Optional[dict] = None,
              overrides: Optional[dict] = None):
    """The config of one run: the row's file and overrides, the schedule,
    the data, the checkpoint of the run it needs (``NEEDS``), the work dir
    and the seed. ``overrides`` are merged after the row's and before the
    schedule is scaled (a branch phase of another length); ``cfg_options``
    last."""
    from mmengine.config import Config
    cfg_file, row_overrides = TASKS[task]['rows'][row]
    cfg = Config.fromfile(osp.join(CFG_DIR, cfg_file))
    for extra in (row_overrides, overrides):
        if extra:
            cfg.merge_from_dict(extra)
    _set_iters(cfg, iters)
    if task in ('cls', 'seg'):
        _set_cls_data(cfg, data_root, batch, val_subset)
    else:
        _set_data(cfg, data_root, batch, canvas, val_subset)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if row in NEEDS:
        cfg.merge_from_dict({
            NEEDS[row][1]:
            needed_checkpoint(osp.dirname(osp.dirname(out_dir)), row, seed)
        })
    cfg.work_dir = out_dir
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.experiment_name = f'{row}_seed{seed}'
    return cfg


def run_one(row: str,
            seed: int,
            out_dir: str,
            data_root: str,
            iters: int,
            batch: int,
            canvas: int,
            val_subset: Optional[int],
            task: str = 'det',
            cfg_options: Optional[dict] = None,
            on_done: Optional[Callable] = None,
            overrides: Optional[dict] = None,
            val: bool = True) -> dict:
    """Train and test one row with one seed; returns its result.

    ``overrides`` and ``cfg_options`` are merged as :func:`build_cfg` says
    (e.g. the logging interval); ``on_done(runner, result)``, when given, is
    called at the end, with the runner's test loop on the test split
    (``tools/demo.py`` and ``tools/demo_compare.py`` draw their predictions
    there). ``val=False`` skips the val split (a demo that only reports):
    the branch, when the run has one, is then measured on the test split
    (``proto_branch_test_metrics``)."""
    from mmengine.runner import Runner
    cfg = build_cfg(row, seed, out_dir, data_root, iters, batch, canvas,
                    val_subset, task, cfg_options, overrides)
    start = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    train_s = time.time() - start
    result = dict(row=row, seed=seed, iters=iters, train_s=round(train_s, 1))
    model = runner.model
    branch = getattr(model, 'learner', None) is not None and \
        not _shared_norm_head(model)
    if val:
        # the val split: for choosing settings
        result['metrics'] = _strip(runner.test())
        if branch:
            result['proto_branch_metrics'] = _test_proto_branch(runner)
        if getattr(model, 'learner', None) is not None:
            result['proto_entropy'] = proto_entropy(runner)
    # the test split: for reporting only (tables show it with --split test)
    _use_split(runner, cfg, 'test')
    result['test_metrics'] = _strip(runner.test())
    if branch and not val:
        result['proto_branch_test_metrics'] = _test_proto_branch(runner)
    # [ours] a second test split, when the data has one
    # (build_fmnist_{cls,canvas}.py --num-holdout): --split holdout
    if osp.isfile(osp.join(data_root, *holdout_file(task))):
        _use_split(runner, cfg, 'holdout')
        result['holdout_metrics'] = _strip(runner.test())
    curve = read_curve(out_dir)
    result['losses'] = summarise_curve(curve)
    result['curve'] = curve
    if on_done is not None:
        on_done(runner, result)
    return result


def holdout_file(task: str) -> tuple:
    """Where a data dir of ``task`` lists its holdout split."""
    if task == 'cls':
        return ('meta', 'holdout.txt')
    return ('annotations', 'instances_holdout.json')


def needed_checkpoint(work_dir: str, row: str, seed: int) -> str:
    """The last checkpoint of the run ``row`` needs (``NEEDS``)."""
    from mmengine.runner import find_latest_checkpoint
    needed = NEEDS[row][0]
    run_dir = osp.join(work_dir, needed, f'seed{seed}')
    ckpt = find_latest_checkpoint(run_dir) if osp.isdir(run_dir) else None
    if not ckpt:
        raise FileNotFoundError(
            f'proxy_benchmark: {row} distils the weights of {needed} seed '
            f'{seed}, but {run_dir} has no checkpoint; run {needed} first')
    return ckpt


def _use_split(runner, cfg, split: str) -> None:
    """Point the runner's test loop at another split of the data."""
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
    """The metrics of the prototype branch (teacher -> learner -> augment
    -> the branch's head: the student's, or its own copy with
    ``branch_head='own'``) on the runner's test loop: how well the teacher
    side alone does the task."""
    from mmprockd.engine import branch_as_student
    with branch_as_student(runner.model):
        metrics = runner.test()
    return _strip(metrics)
