# Copyright (c) mmprockd contributors. All rights reserved.
"""Build the Fashion-MNIST classification proxy (mmpretrain CustomDataset).

Each 28x28 Fashion-MNIST item is upscaled to ``size x size`` by **bilinear**
interpolation (PIL) and written as an RGB PNG (the grey value in all three
channels). Bilinear, not nearest: the images feed an ImageNet teacher and
there are no boxes to keep exact, so blocky edges would only add an
artefact that natural images lack.

Splits, each balanced over the classes of its source (per-class counts
differ by at most one; a remainder goes to the lowest labels) and a function
of the counts and ``--seed`` only:

* ``val`` (for choosing settings) and ``train`` come from the IDX train
  split and share no item. For every class, one seeded permutation of its
  items gives ``val`` its first items and ``train`` the next ones, so
  ``val`` does not depend on ``--num-train`` and a smaller ``train`` is a
  subset of a larger one (same seed);
* ``test`` (for reporting, never for choosing) comes from t10k;
* ``unlabelled`` (only with ``--num-unlabelled N``): a transfer set [ours],
  further items of the IDX train split that neither ``train`` nor ``val``
  holds (the next ones of every class's permutation, so ``train`` and
  ``val`` are the same with or without it). Its meta lines carry the label
  -1, which mmprockd's distillers read as "no label": the distillation
  terms use these images, the task loss does not. Beside it,
  ``meta/unlabelled_oracle.txt`` holds the same lines with the items' true
  labels, for one analysis row only (the student given the labels the pool
  lacks: how much a perfect labelling of the pool could give); no method
  reads it;
* ``holdout`` (only with ``--num-holdout N``): a second test split [ours],
  further items of t10k that ``test`` does not hold (the next ones of every
  class's permutation, so ``test`` is the same with or without it), with
  their labels. It is for a final check on images nobody has looked at:
  once ``test`` has been read many times, small differences between two
  methods on it are no longer a fresh measurement.

``--val-source t10k`` [ours] draws ``val`` from t10k instead: the items
after ``test`` in every class's permutation, before ``holdout``, so val,
test and holdout are disjoint, ``test`` is unchanged and ``holdout`` is the
tail of the one built without it. The IDX train items ``val`` would have
taken stay unused, so ``train`` and ``unlabelled`` are file for file the
same. Its reason: on the classification proxy with unlabelled images, a
val drawn like the training images favoured one method over another by
about 2 points against both t10k splits (docs/benchmark.md).

File order within a split is shuffled (seeded), so names do not follow the
classes. Output::

    <out>/{train,val,test}/000000.png          RGB, size x size
    <out>/meta/{train,val,test}.txt            lines "train/000000.png 3"
    <out>/meta/unlabelled.txt                  lines "unlabelled/000000.png -1"
    <out>/meta/unlabelled_oracle.txt           the same with the true labels
    <out>/meta/holdout.txt                     lines "holdout/000000.png 3"

The meta files are written last (through a temporary file and a rename),
after every image, and the old ones are removed before any image is
written: an interrupted build leaves no meta file that points at a partial
split. Usage::

    apt-get download dataset-fashion-mnist && dpkg -x *.deb /tmp/fmnist
    python tools/dataset_converters/build_fmnist_cls.py \
        /tmp/fmnist/usr/share/datasets/fashion-mnist data/fmnist_cls

The embedded subset (``data/fmnist_mini/fmnist_mini.npz``, no apt needed):
``--npz`` writes the selection of the arguments, 28x28 uint8 items in file
order, as one compact file (byte-for-byte reproducible), and ``src`` may be
such a file instead of the IDX directory; then the selection is the file's
(``--num-*`` and ``--seed`` do not apply) and ``--limit N`` keeps the first
``N`` items of every split::

    python tools/dataset_converters/build_fmnist_cls.py \
        /tmp/fmnist/usr/share/datasets/fashion-mnist \
        data/fmnist_mini/fmnist_mini.npz --npz \
        --num-train 500 --num-val 1000 --num-test 2000 --seed 0
    python tools/dataset_converters/build_fmnist_cls.py \
        data/fmnist_mini/fmnist_mini.npz data/fmnist_cls_n500
"""
import argparse
import io
import os
import os.path as osp
import re
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

if __package__:  # imported as tools/dataset_converters (tools/demo*.py)
    from .build_fmnist_canvas import CLASSES, load_split
else:  # run as a script: its directory is on sys.path
    from build_fmnist_canvas import CLASSES, load_split

SPLITS = ('train', 'val', 'test')
# the optional transfer set, written with this label in its meta lines
UNLABELLED_SPLIT, UNLABELLED = 'unlabelled', -1
# [ours] the pool's true labels, for the upper-bound row only
ORACLE_META = 'unlabelled_oracle'
HOLDOUT_SPLIT = 'holdout'
VAL_SOURCES = ('train', 't10k')
EXTRA_SPLITS = (UNLABELLED_SPLIT, HOLDOUT_SPLIT)
_NAME = re.compile(r'^\d{6}\.png$')


def per_class_counts(num: int, classes: Sequence[int]) -> Dict[int, int]:
    """Split ``num`` over ``classes`` (sorted): counts differ by at most
    one, the remainder going to the lowest labels."""
    classes = sorted(int(c) for c in classes)
    base, rest = divmod(num, len(classes))
    return {c: base + (i < rest) for i, c in enumerate(classes)}


def select(labels: np.ndarray, nums: Sequence[int],
           rng: np.random.Generator) -> List[np.ndarray]:
    """Class-balanced, disjoint draws of ``nums[0], nums[1], ...`` items.

    For every class, one permutation of its items is drawn; part 0 takes the
    first items of each class, part 1 the next ones, and so on.

    Returns:
        list[np.ndarray]: the indices (into ``labels``) of every part,
        sorted.

    Raises:
        ValueError: when a class has fewer items than the parts ask of it.
    """
    classes = np.unique(labels)
    counts = [per_class_counts(n, classes) for n in nums]
    parts: List[list] = [[] for _ in nums]
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        need = sum(cnt[int(c)] for cnt in counts)
        if need > len(idx):
            raise ValueError(f'build_fmnist_cls: class {int(c)} has '
                             f'{len(idx)} items, {need} are needed for '
                             f'{list(nums)} images')
        start = 0
        for part, cnt in zip(parts, counts):
            part.extend(idx[start:start + cnt[int(c)]])
            start += cnt[int(c)]
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def to_image(item: np.ndarray, size: int) -> Image.Image:
    """A 28x28 uint8 item as a ``size x size`` RGB image (bilinear)."""
    gray = Image.fromarray(np.ascontiguousarray(item, dtype=np.uint8))
    if gray.size != (size, size):
        gray = gray.resize((size, size), Image.BILINEAR)
    return gray.convert('RGB')


def write_items(images: np.ndarray, labels: np.ndarray, out_dir: str,
                split: str, size: int) -> List[str]:
    """Write ``images`` (in their order) as ``<split>/000000.png``... and
    return the meta lines; PNGs left by an earlier, larger build are
    removed."""
    folder = osp.join(out_dir, split)
    os.makedirs(folder, exist_ok=True)
    lines, names = [], set()
    for i, (item, label) in enumerate(zip(images, labels)):
        name = f'{i:06d}.png'
        to_image(item, size).save(osp.join(folder, name))
        names.add(name)
        lines.append(f'{split}/{name} {int(label)}')
    for stale in os.listdir(folder):
        if _NAME.match(stale) and stale not in names:
            os.remove(osp.join(folder, stale))
    return lines


def write_split(images: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                out_dir: str, split: str, size: int,
                rng: np.random.Generator) -> List[str]:
    """Write the images of one split in a seeded order and return its meta
    lines; PNGs left by an earlier, larger build are removed."""
    order = indices[rng.permutation(len(indices))]
    return write_items(images[order], labels[order], out_dir, split, size)


# split -> (images, labels, source indices), items in file order
Plan = Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]]


def plan(src: str,
         num_train: int = 2000,
         num_val: int = 1000,
         num_test: int = 2000,
         seed: int = 0,
         num_unlabelled: int = 0,
         num_holdout: int = 0,
         val_source: str = 'train') -> Plan:
    """The items of every split, in file order, as :func:`build` writes
    them: ``{split: (images (N, 28, 28) uint8, labels (N,), indices (N,))}``
    where ``indices`` point into the IDX file the split comes from (train
    for ``train``, ``val`` and ``unlabelled``, t10k for ``test`` and
    ``holdout``). ``unlabelled`` and ``holdout`` are there only when their
    count is > 0; the labels of ``unlabelled`` are the items' true ones
    (the meta file does not carry them).

    Raises:
        ValueError: a negative count or seed, a class with too few items,
            or a ``val_source`` other than ``'train'`` and ``'t10k'``.
    """
    if val_source not in VAL_SOURCES:
        raise ValueError(f'build_fmnist_cls: val_source must be one of '
                         f'{VAL_SOURCES}, got {val_source!r}')
    nums = dict(
        train=num_train,
        val=num_val,
        test=num_test,
        unlabelled=num_unlabelled,
        holdout=num_holdout)
    if min(nums.values()) < 0 or seed < 0:
        raise ValueError(f'build_fmnist_cls: counts and seed must be >= 0, '
                         f'got {nums} and seed {seed}')
    train_images, train_labels = load_split(src, 'train')
    test_images, test_labels = load_split(src, 't10k')
    # one stream per source and per file order, so that no draw shifts
    # another (e.g. val stays put when num_train changes)
    # the unlabelled part comes after the others in every class's
    # permutation: asking for it leaves train and val as they are
    val_idx, train_idx, unl_idx = select(train_labels,
                                         [num_val, num_train, num_unlabelled],
                                         np.random.default_rng([seed, 0]))
    # the holdout likewise after the test items of every class, and a val
    # from t10k between the two (the IDX val items then stay unused)
    val_src = (train_images, train_labels, val_idx)
    if val_source == 't10k':
        test_idx, val_idx, holdout_idx = select(
            test_labels, [num_test, num_val, num_holdout],
            np.random.default_rng([seed, 1]))
        val_src = (test_images, test_labels, val_idx)
    else:
        test_idx, holdout_idx = select(test_labels, [num_test, num_holdout],
                                       np.random.default_rng([seed, 1]))
    sources = dict(
        train=(train_images, train_labels, train_idx),
        val=val_src,
        test=(test_images, test_labels, test_idx),
        unlabelled=(train_images, train_labels, unl_idx),
        holdout=(test_images, test_labels, holdout_idx))
    out = {}
    for k, split in enumerate(SPLITS + EXTRA_SPLITS):
        if split in EXTRA_SPLITS and not nums[split]:
            continue
        images, labels, idx = sources[split]
        rng = np.random.default_rng([seed, 2 + k])
        order = idx[rng.permutation(len(idx))]
        out[split] = (images[order], labels[order], order)
    return out


def write_all(items: Plan, out: str, size: int) -> Dict[str, int]:
    """Write every split of ``items`` under ``out``: the old meta files are
    removed first, the new ones written last (temporary file + rename).
    An ``unlabelled`` split is written with the label -1 in its meta lines
    (and its true labels in ``meta/unlabelled_oracle.txt``); old meta
    files of a split that ``items`` lacks are removed."""
    if size < 28:
        raise ValueError(f'build_fmnist_cls: size must be >= 28 (the '
                         f'Fashion-MNIST items are 28x28), got {size}')
    meta_dir = osp.join(out, 'meta')
    os.makedirs(meta_dir, exist_ok=True)
    for split in SPLITS + EXTRA_SPLITS + (ORACLE_META, ):
        path = osp.join(meta_dir, f'{split}.txt')
        if osp.exists(path):
            os.remove(path)
    splits = [s for s in SPLITS + EXTRA_SPLITS if s in items]
    meta = {}
    for split in splits:
        images, labels, _ = items[split]
        if split == UNLABELLED_SPLIT:
            true_labels, labels = labels, np.full(len(images), UNLABELLED)
        meta[split] = write_items(images, labels, out, split, size)
        if split == UNLABELLED_SPLIT:
            meta[ORACLE_META] = [
                f'{line.split()[0]} {int(y)}'
                for line, y in zip(meta[split], true_labels)
            ]
    for split in meta:
        path = osp.join(meta_dir, f'{split}.txt')
        with open(path + '.tmp', 'w') as f:
            f.write(''.join(line + '\n' for line in meta[split]))
        os.replace(path + '.tmp', path)
    return {split: len(meta[split]) for split in splits}


def build(src: str,
          out: str,
          num_train: int = 2000,
          num_val: int = 1000,
          num_test: int = 2000,
          size: int = 64,
          seed: int = 0,
          num_unlabelled: int = 0,
          num_holdout: int = 0,
          val_source: str = 'train') -> Dict[str, int]:
    """Build the three splits under ``out``.

    Args:
        src (str): directory of the Fashion-MNIST IDX files (gzipped or not).
        out (str): output directory.
        num_train (int): training images, from the IDX train split.
        num_val (int): validation images, other items of the train split.
        num_test (int): test images, from t10k.
        size (int): side of the square output images, at least 28.
        seed (int): the only source of randomness (>= 0).
        num_unlabelled (int): images of the ``unlabelled`` transfer set,
            other items of the train split (0: no such split).
        num_holdout (int): images of the ``holdout`` test split, other
            items of t10k (0: no such split).
        val_source (str): ``'train'`` (default) draws ``val`` from the IDX
            train split, ``'t10k'`` from t10k, between ``test`` and
            ``holdout`` [ours].

    Returns:
        dict: ``{'train': n, 'val': n, 'test': n}`` (and ``'unlabelled'``,
        ``'holdout'``), the images written.

    Raises:
        ValueError: for a size below 28, a negative count or seed, or a
            class with too few items.
    """
    if size < 28:
        raise ValueError(f'build_fmnist_cls: size must be >= 28 (the '
                         f'Fashion-MNIST items are 28x28), got {size}')
    return write_all(
        plan(src, num_train, num_val, num_test, seed, num_unlabelled,
             num_holdout, val_source), out, size)


# ------------------------------------------------- the embedded subset
NPZ_KEYS = ('images', 'labels', 'index')


def export_npz(items: Plan, path: str) -> str:
    """Write ``items`` (see :func:`plan`) as one compressed ``.npz``: per
    split ``<split>_images`` (N, 28, 28) uint8, ``<split>_labels`` (N,)
    uint8 and ``<split>_index`` (N,) int32 (the item's index in its IDX
    file), and ``classes``. The zip entries carry a fixed date, so the same
    items give the same bytes (and sha256). Returns the sha256."""
    import hashlib
    arrays = {'classes': np.asarray(CLASSES)}
    for split in SPLITS:
        images, labels, index = items[split]
        arrays[f'{split}_images'] = np.asarray(images, dtype=np.uint8)
        arrays[f'{split}_labels'] = np.asarray(labels, dtype=np.uint8)
        arrays[f'{split}_index'] = np.asarray(index, dtype=np.int32)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with zipfile.ZipFile(tmp, 'w') as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(
                buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(
                f'{key}.npy', date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    os.replace(tmp, path)
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_npz(path: str, limit: Optional[int] = None) -> Plan:
    """The splits of an :func:`export_npz` file, checked; ``limit`` keeps
    the first ``limit`` items of every split (the file order is a seeded
    shuffle, so they are a random draw, not balanced per class).

    Raises:
        ValueError: the file lacks a split or holds arrays of the wrong
            shape, type or label range.
    """
    if limit is not None and limit < 1:
        raise ValueError(f'build_fmnist_cls: limit must be >= 1, got {limit}')
    out = {}
    with np.load(path, allow_pickle=False) as data:
        missing = [
            f'{s}_{k}' for s in SPLITS for k in NPZ_KEYS
            if f'{s}_{k}' not in data.files
        ]
        if missing:
            raise ValueError(f'build_fmnist_cls: {path} lacks {missing}')
        for split in SPLITS:
            images, labels, index = (data[f'{split}_{k}'] for k in NPZ_KEYS)
            good = (
                images.dtype == np.uint8 and images.ndim == 3
                and images.shape[1:] == (28, 28)
                and labels.shape == index.shape == (len(images), )
                and (not len(labels) or int(labels.max()) < len(CLASSES)))
            if not good:
                raise ValueError(
                    f'build_fmnist_cls: {path}: {split} must be N uint8 '
                    f'28x28 images with N labels in 0..{len(CLASSES) - 1} '
                    f'and N indices; got {images.dtype} {images.shape}, '
                    f'{labels.shape}, {index.shape}')
            out[split] = (images[:limit], labels[:limit], index[:limit])
    return out


def build_from_npz(path: str,
                   out: str,
                   size: int = 64,
                   limit: Optional[int] = None) -> Dict[str, int]:
    """:func:`build`'s layout from an :func:`export_npz` file: the same
    PNGs and meta lines as a build from the IDX files with the file's
    counts and seed."""
    return write_all(load_npz(path, limit), out, size)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'src',
        help='directory of the Fashion-MNIST IDX files, or an .npz written '
        'by --npz (the embedded data/fmnist_mini/fmnist_mini.npz)')
    parser.add_argument(
        'out', help='output directory (with --npz: the .npz file)')
    parser.add_argument(
        '--npz',
        action='store_true',
        help='write the selection as one compact .npz of 28x28 items '
        'instead of PNGs')
    parser.add_argument(
        '--limit',
        type=int,
        help='from an .npz: keep the first N items of every split')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=1000)
    parser.add_argument('--num-test', type=int, default=2000)
    parser.add_argument(
        '--num-unlabelled',
        type=int,
        default=0,
        help='also write an unlabelled transfer set of N other train-split '
        'items (meta/unlabelled.txt, label -1); not with --npz')
    parser.add_argument(
        '--num-holdout',
        type=int,
        default=0,
        help='also write a second test split of N other t10k items '
        '(meta/holdout.txt); not with --npz')
    parser.add_argument(
        '--val-source',
        choices=VAL_SOURCES,
        default='train',
        help='where val comes from: the IDX train split (default) or t10k, '
        'between test and holdout [ours]; not with --npz')
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    for opt in ('num_unlabelled', 'num_holdout', 'val_source'):
        if getattr(args,
                   opt) not in (0, 'train') and (args.npz
                                                 or args.src.endswith('.npz')):
            raise SystemExit(
                f'build_fmnist_cls: --{opt.replace("_", "-")} needs the IDX '
                'files; the .npz holds train, val and test only')
    if args.npz:
        items = plan(args.src, args.num_train, args.num_val, args.num_test,
                     args.seed)
        digest = export_npz(items, args.out)
        counts = {split: len(items[split][0]) for split in SPLITS}
        print(f'{counts} 28x28 items -> {args.out} (sha256 {digest})')
        return
    if osp.isfile(args.src) and args.src.endswith('.npz'):
        counts = build_from_npz(args.src, args.out, args.size, args.limit)
    else:
        counts = build(args.src, args.out, args.num_train, args.num_val,
                       args.num_test, args.size, args.seed,
                       args.num_unlabelled, args.num_holdout, args.val_source)
    for split, num in counts.items():
        print(f'{split}: {num} images ({args.size}x{args.size} RGB, '
              f'{len(CLASSES)} classes) -> {osp.join(args.out, split)}')


if __name__ == '__main__':
    main()
