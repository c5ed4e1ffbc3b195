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
* ``test`` (for reporting, never for choosing) comes from t10k.

File order within a split is shuffled (seeded), so names do not follow the
classes. Output::

    <out>/{train,val,test}/000000.png          RGB, size x size
    <out>/meta/{train,val,test}.txt            lines "train/000000.png 3"

The meta files are written last (through a temporary file and a rename),
after every image, and the old ones are removed before any image is
written: an interrupted build leaves no meta file that points at a partial
split. Usage::

    apt-get download dataset-fashion-mnist && dpkg -x *.deb /tmp/fmnist
    python tools/dataset_converters/build_fmnist_cls.py \
        /tmp/fmnist/usr/share/datasets/fashion-mnist data/fmnist_cls
"""
import argparse
import os
import os.path as osp
import re
import sys
from typing import Dict, List, Sequence

import numpy as np
from PIL import Image

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from build_fmnist_canvas import CLASSES, load_split  # noqa: E402

SPLITS = ('train', 'val', 'test')
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


def write_split(images: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                out_dir: str, split: str, size: int,
                rng: np.random.Generator) -> List[str]:
    """Write the images of one split in a seeded order and return its meta
    lines; PNGs left by an earlier, larger build are removed."""
    folder = osp.join(out_dir, split)
    os.makedirs(folder, exist_ok=True)
    order = indices[rng.permutation(len(indices))]
    lines, names = [], set()
    for i, idx in enumerate(order):
        name = f'{i:06d}.png'
        to_image(images[idx], size).save(osp.join(folder, name))
        names.add(name)
        lines.append(f'{split}/{name} {int(labels[idx])}')
    for stale in os.listdir(folder):
        if _NAME.match(stale) and stale not in names:
            os.remove(osp.join(folder, stale))
    return lines


def build(src: str,
          out: str,
          num_train: int = 2000,
          num_val: int = 1000,
          num_test: int = 2000,
          size: int = 64,
          seed: int = 0) -> Dict[str, int]:
    """Build the three splits under ``out``.

    Args:
        src (str): directory of the Fashion-MNIST IDX files (gzipped or not).
        out (str): output directory.
        num_train (int): training images, from the IDX train split.
        num_val (int): validation images, other items of the train split.
        num_test (int): test images, from t10k.
        size (int): side of the square output images, at least 28.
        seed (int): the only source of randomness (>= 0).

    Returns:
        dict: ``{'train': n, 'val': n, 'test': n}``, the images written.

    Raises:
        ValueError: for a size below 28, a negative count or seed, or a
            class with too few items.
    """
    if size < 28:
        raise ValueError(f'build_fmnist_cls: size must be >= 28 (the '
                         f'Fashion-MNIST items are 28x28), got {size}')
    nums = dict(train=num_train, val=num_val, test=num_test)
    if min(nums.values()) < 0 or seed < 0:
        raise ValueError(f'build_fmnist_cls: counts and seed must be >= 0, '
                         f'got {nums} and seed {seed}')
    train_images, train_labels = load_split(src, 'train')
    test_images, test_labels = load_split(src, 't10k')
    # one stream per source and per file order, so that no draw shifts
    # another (e.g. val stays put when num_train changes)
    val_idx, train_idx = select(train_labels, [num_val, num_train],
                                np.random.default_rng([seed, 0]))
    (test_idx, ) = select(test_labels, [num_test],
                          np.random.default_rng([seed, 1]))
    sources = dict(
        train=(train_images, train_labels, train_idx),
        val=(train_images, train_labels, val_idx),
        test=(test_images, test_labels, test_idx))

    meta_dir = osp.join(out, 'meta')
    os.makedirs(meta_dir, exist_ok=True)
    for split in SPLITS:
        path = osp.join(meta_dir, f'{split}.txt')
        if osp.exists(path):
            os.remove(path)
    meta = {}
    for k, split in enumerate(SPLITS):
        images, labels, idx = sources[split]
        meta[split] = write_split(images, labels, idx, out, split, size,
                                  np.random.default_rng([seed, 2 + k]))
    for split in SPLITS:
        path = osp.join(meta_dir, f'{split}.txt')
        with open(path + '.tmp', 'w') as f:
            f.write(''.join(line + '\n' for line in meta[split]))
        os.replace(path + '.tmp', path)
    return {split: len(meta[split]) for split in SPLITS}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='directory of the Fashion-MNIST IDX files')
    parser.add_argument('out', help='output directory')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=1000)
    parser.add_argument('--num-test', type=int, default=2000)
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    counts = build(args.src, args.out, args.num_train, args.num_val,
                   args.num_test, args.size, args.seed)
    for split, num in counts.items():
        print(f'{split}: {num} images ({args.size}x{args.size} RGB, '
              f'{len(CLASSES)} classes) -> {osp.join(args.out, split)}')


if __name__ == '__main__':
    main()
