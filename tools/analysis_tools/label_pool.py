# Copyright (c) mmprockd contributors. All rights reserved.
"""[ours] Label an unlabelled classification pool from the frozen teacher's
features, by label propagation.

On the classification proxy with unlabelled images (docs/benchmark.md),
what caps every distillation row is that nothing labels the pool well: the
same student given the pool's true labels is well above PKD given the
pool. The frozen ImageNet teacher's features cluster the
classes better than the few labels alone can say. This tool writes labels
for the pool from them:

1. every labelled and pool image goes once through the config's test
   pipeline, the student's data preprocessor and the frozen teacher
   (``model.teacher``, at its ``input_scale`` or ``--input-scale``); each
   of its layers is averaged over space and the vectors concatenated;
2. the features are standardised per dimension and L2-normalised; a
   ``k``-nearest-neighbour graph by cosine similarity, weighted by the
   similarity cubed (Iscen et al., "Label Propagation for Deep
   Semi-supervised Learning", CVPR 2019), symmetrised and normalised as
   ``D^-1/2 W D^-1/2``;
3. the labels spread over the graph as in Zhou et al., "Learning with
   Local and Global Consistency" (NeurIPS 2003): ``Z <- alpha W Z + Y``
   for ``iters`` steps from the one-hot labels ``Y``; each pool image
   takes its arg max.

Written here because none of our dependencies has it: scikit-learn's
``LabelSpreading`` would mean a new dependency, and its k-NN kernel has no
similarity weighting. The output has the pool's lines in the pool's order,
each with a label; it
is written atomically and may not be either input. The graph is dense:
memory grows with the square of the images (about 18 MB for 2100), so more
than ``MAX_IMAGES`` are refused. Usage::

    python tools/analysis_tools/label_pool.py \
      configs/benchmark/prockd_mobilenetv2_resnet18-tiny_1000i_fmnist-64px.py \
        data/fmnist_cls_n100_unl_t10kval --input-scale 3.5
"""
import argparse
import copy
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_IMAGES = 20000


def propagate(feats: Tensor,
              labels: Tensor,
              num_classes: int,
              k: int = 10,
              alpha: float = 0.99,
              iters: int = 20) -> Tensor:
    """Labels for every row of ``feats`` whose ``labels`` entry is -1.

    Args:
        feats (Tensor): ``(N, D)`` features, labelled and unlabelled rows.
        labels (Tensor): ``(N,)`` class indices, -1 for unlabelled rows.
        num_classes (int): the number of classes.
        k (int): neighbours per row in the graph (itself excluded).
        alpha (float): in (0, 1): how far labels spread.
        iters (int): propagation steps.

    Returns:
        Tensor: ``(M,)`` class indices of the ``M`` unlabelled rows, in
        their order.
    """
    n = feats.shape[0]
    if not 0 < k < n:
        raise ValueError(f'label_pool: k must be in [1, {n - 1}] for {n} '
                         f'images, got {k}')
    if not 0 < alpha < 1:
        raise ValueError(f'label_pool: alpha must be in (0, 1), got {alpha}')
    known = labels >= 0
    if not known.any():
        raise ValueError('label_pool: no labelled image to propagate from')
    x = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    x = F.normalize(x, dim=1)
    sim = x @ x.T
    sim.fill_diagonal_(-2.)  # never one's own neighbour
    val, idx = sim.topk(k, dim=1)
    w = torch.zeros_like(sim).scatter_(1, idx, val.clamp(min=0)**3)
    w = (w + w.T) / 2
    d = w.sum(1).clamp(min=1e-12).rsqrt()
    w = d[:, None] * w * d[None]
    y = torch.zeros(n, num_classes)
    y[known.nonzero()[:, 0], labels[known]] = 1.
    z = y.clone()
    for _ in range(iters):
        z = alpha * (w @ z) + y
    return z[~known].argmax(1)


def read_ann(path: str) -> List[Tuple[str, int]]:
    """The ``path label`` lines of an mmpretrain annotation file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'label_pool: no annotation file {path}')
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f'label_pool: {path} line {n}: expected '
                                 f'"path label", got {line.strip()!r}')
            rows.append((parts[0], int(parts[1])))
    return rows


def teacher_features(cfg, data_root: str, ann_file: str,
                     input_scale: Optional[float]) -> Tensor:
    """``(N, D)``: the frozen teacher's layers, each averaged over space,
    for the images of ``ann_file`` in its order (test pipeline)."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS, init_default_scope

    import mmprockd  # noqa: F401  (registers FrozenTeacher)
    from mmprockd.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model
    teacher_cfg = copy.deepcopy(model_cfg.get('teacher'))
    if teacher_cfg is None:
        raise KeyError('label_pool: the config has no model.teacher (a '
                       'distiller config with a FrozenTeacher)')
    if input_scale is not None:
        teacher_cfg['input_scale'] = input_scale
    teacher = MODELS.build(teacher_cfg).eval()
    student = model_cfg.get('student', model_cfg)
    pre_cfg = student.get('data_preprocessor') or \
        model_cfg.get('data_preprocessor')
    preprocessor = MODELS.build(pre_cfg)
    dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset.update(data_root=data_root, ann_file=ann_file, test_mode=True)
    dataset.pop('indices', None)
    dataset = DATASETS.build(dataset)
    out = []
    with torch.no_grad():
        for i in range(0, len(dataset), 64):
            batch = pseudo_collate(
                [dataset[j] for j in range(i, min(i + 64, len(dataset)))])
            inputs = preprocessor(batch, False)['inputs']
            maps = teacher.from_student_input(inputs, preprocessor)
            out.append(torch.cat([m.mean((2, 3)) for m in maps], 1))
    return torch.cat(out)


def label_pool(config: str,
               data_root: str,
               labelled: str = 'meta/train.txt',
               pool: str = 'meta/unlabelled.txt',
               out: str = 'meta/unlabelled_lp.txt',
               input_scale: Optional[float] = None,
               k: int = 10,
               alpha: float = 0.99,
               iters: int = 20,
               num_classes: int = 10) -> str:
    """Write labels for the pool (see the module docstring); returns the
    output's path. Paths of the annotation files are relative to
    ``data_root``."""
    from mmengine.config import Config
    paths = {
        n: osp.join(data_root, p)
        for n, p in dict(labelled=labelled, pool=pool, out=out).items()
    }
    for name in ('labelled', 'pool'):
        if osp.abspath(paths['out']) == osp.abspath(paths[name]):
            raise ValueError(f'label_pool: --out {out} is the {name} '
                             'annotation file, an input of this tool')
    lab_rows, pool_rows = read_ann(paths['labelled']), read_ann(paths['pool'])
    if len(lab_rows) + len(pool_rows) > MAX_IMAGES:
        raise ValueError(
            f'label_pool: {len(lab_rows)} + {len(pool_rows)} images; the '
            f'dense graph takes at most {MAX_IMAGES}')
    bad = [y for _, y in lab_rows if not 0 <= y < num_classes]
    if bad:
        raise ValueError(f'label_pool: {labelled} holds labels {bad[:5]} '
                         f'outside 0..{num_classes - 1}')
    cfg = Config.fromfile(config)
    feats = torch.cat([
        teacher_features(cfg, data_root, labelled, input_scale),
        teacher_features(cfg, data_root, pool, input_scale)
    ])
    labels = torch.tensor([y for _, y in lab_rows] + [-1] * len(pool_rows))
    pred = propagate(feats, labels, num_classes, k, alpha, iters)
    text = ''.join(f'{p} {int(y)}\n' for (p, _), y in zip(pool_rows, pred))
    tmp = paths['out'] + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, paths['out'])
    counts = torch.bincount(pred, minlength=num_classes).tolist()
    print(f'label_pool: {len(pool_rows)} pool images labelled from '
          f'{len(lab_rows)} -> {paths["out"]} (per class {counts})')
    return paths['out']


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Label an unlabelled classification pool by label '
        'propagation over the frozen teacher\'s features')
    parser.add_argument(
        'config',
        help='a distiller config with '
        'model.teacher (a FrozenTeacher)')
    parser.add_argument('data_root', help='the data set root')
    parser.add_argument('--labelled', default='meta/train.txt')
    parser.add_argument('--pool', default='meta/unlabelled.txt')
    parser.add_argument('--out', default='meta/unlabelled_lp.txt')
    parser.add_argument(
        '--input-scale',
        type=float,
        help='the teacher\'s input scale (default: the config\'s)')
    parser.add_argument('--k', type=int, default=10)
    parser.add_argument('--alpha', type=float, default=0.99)
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--num-classes', type=int, default=10)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    label_pool(args.config, args.data_root, args.labelled, args.pool, args.out,
               args.input_scale, args.k, args.alpha, args.iters,
               args.num_classes)


if __name__ == '__main__':
    main()
