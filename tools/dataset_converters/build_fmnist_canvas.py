# Copyright (c) mmprockd contributors. All rights reserved.
"""Build the Fashion-MNIST canvas detection benchmark (COCO json + masks).

Real object images (Fashion-MNIST's 28x28 clothing items) are resized and
pasted at random places on black square canvases. Every item keeps its own
footprint, so the annotations are exact:

* the box is the extent of the item's nonzero pixels after resizing and
  placement (COCO ``[x, y, w, h]`` in pixels, right/bottom edges exclusive);
* the mask is the same set of pixels; items never overlap (a placement that
  would touch an earlier box is redrawn), so one label PNG per image holds
  every mask: 0 is background and class ``c`` (0..9) is written as ``c + 1``;
* ``category_id`` is the Fashion-MNIST label + 1, with its official name;
* each item is tinted with a random colour (a pixel that is nonzero in the
  item stays nonzero in the image).

Resizing is nearest-neighbour, so an integer factor ``k`` maps the nonzero
rows ``r0..r1`` of the 28x28 item to ``k*r0 .. k*(r1+1)-1``. The output is a
function of the input files and ``--seed`` only.

Input: the directory of the standard IDX files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-...``, gzipped or not), e.g. from the
Debian package::

    apt-get download dataset-fashion-mnist && dpkg -x *.deb /tmp/fmnist
    python tools/dataset_converters/build_fmnist_canvas.py \
        /tmp/fmnist/usr/share/datasets/fashion-mnist data/fmnist_canvas/reduced

Or the embedded subset, without apt (3500 items; see :func:`load_split`)::

    python tools/dataset_converters/build_fmnist_canvas.py \
        data/fmnist_mini/fmnist_mini.npz data/fmnist_canvas/n100_mini \
        --num-train 100

Output layout: ``train`` from the IDX train split; ``val`` (for choosing
settings) from the first half of t10k and ``test`` (for reporting, never
for choosing) from its second half, so no item is in both::

    <out>/annotations/instances_{train,val,test}.json
    <out>/{train,val,test}/images/000000.png   RGB canvases
    <out>/{train,val,test}/masks/000000.png    uint8 label maps (0 = bg)

``--num-holdout N`` [ours] adds a second test split, ``holdout``: N more
canvases composed from the same half of t10k as ``test``, by a random
stream of their own, so the other splits are file for file the same with
or without it. They share items with ``test`` but not one composition
(placement, size, tint, companions): a check on canvases no choice was
made on, after ``test`` has been read many times.
"""
import argparse
import gzip
import json
import os
import os.path as osp
import struct
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
# split -> (IDX file prefix, the part of that file's items it draws from)
SPLITS = {
    'train': ('train', (0.0, 1.0)),
    'val': ('t10k', (0.0, 0.5)),
    'test': ('t10k', (0.5, 1.0)),
    'holdout': ('t10k', (0.5, 1.0)),  # only with num_holdout > 0
}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) into a uint8 array.

    Args:
        path (str): the file; ``path + '.gz'`` is tried when it is absent.

    Returns:
        np.ndarray: ``(N, H, W)`` for images, ``(N,)`` for labels.
    """
    if not osp.isfile(path) and osp.isfile(path + '.gz'):
        path = path + '.gz'
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack('>HBB', data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f'build_fmnist_canvas: {path!r} is not an unsigned '
                         'byte IDX file')
    shape = struct.unpack('>' + 'I' * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(shape)


def load_split(root: str, prefix: str) -> Tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28)`` and labels ``(N,)`` of ``train`` or ``t10k``.

    ``root`` is the directory of the IDX files, or the embedded subset
    (``data/fmnist_mini/fmnist_mini.npz``, written by ``build_fmnist_cls.py
    --npz``), whose items come from the same two files: there ``train`` is
    its ``train`` and ``val`` items (1500 from the IDX train file) and
    ``t10k`` its ``test`` items (2000 from t10k), so the canvases' val and
    test halves draw from items no training canvas holds, as with the IDX
    files.
    """
    if root.endswith('.npz'):
        if __package__:  # imported as tools/dataset_converters
            from .build_fmnist_cls import load_npz
        else:  # run as a script, or its directory on sys.path
            from build_fmnist_cls import load_npz
        splits = load_npz(root)
        parts = ('train', 'val') if prefix == 'train' else ('test', )
        return (np.concatenate([splits[p][0] for p in parts]),
                np.concatenate([splits[p][1] for p in parts]))
    images = read_idx(osp.join(root, f'{prefix}-images-idx3-ubyte'))
    labels = read_idx(osp.join(root, f'{prefix}-labels-idx1-ubyte'))
    if len(images) != len(labels):
        raise ValueError(f'build_fmnist_canvas: {len(images)} images but '
                         f'{len(labels)} labels for {prefix!r}')
    return images, labels


def resize_nearest(item: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a square ``(h, h)`` map to ``(size,
    size)``; output pixel ``i`` takes input pixel ``floor(i * h / size)``."""
    idx = (np.arange(size) * item.shape[0]) // size
    return item[idx][:, idx]


def nonzero_box(mask: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
    """``(x0, y0, x1, y1)`` of the True pixels, right/bottom exclusive."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _overlaps(box: Tuple[int, int, int, int],
              boxes: List[Tuple[int, int, int, int]], gap: int) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] + gap and b[0] < x1 + gap and y0 < b[3] +
               gap and b[1] < y1 + gap for b in boxes)


def compose_canvas(images: np.ndarray,
                   labels: np.ndarray,
                   rng: np.random.Generator,
                   canvas: int,
                   max_items: int,
                   min_size: int,
                   max_size: int,
                   tries: int = 20) -> Tuple[np.ndarray, np.ndarray, list]:
    """Paste 1..``max_items`` random items on one black canvas.

    Returns:
        tuple: RGB image ``(canvas, canvas, 3)`` uint8, label map
        ``(canvas, canvas)`` uint8, and one dict per item with ``label``,
        ``index`` (in ``images``), ``origin`` (x, y of the pasted square),
        ``size`` (its side), ``box`` as in :func:`nonzero_box` and
        ``mask`` (a bool map of the whole canvas).
    """
    img = np.zeros((canvas, canvas, 3), np.uint8)
    seg = np.zeros((canvas, canvas), np.uint8)
    items: list = []
    boxes: List[Tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(1, max_items + 1))):
        idx = int(rng.integers(len(images)))
        size = int(rng.integers(min_size, max_size + 1))
        tint = rng.uniform(0.4, 1.0, size=3)
        tint = tint / tint.max()
        gray = resize_nearest(images[idx], size)
        local = nonzero_box(gray > 0)
        if local is None:
            continue
        for _ in range(tries):
            x = int(rng.integers(0, canvas - size + 1))
            y = int(rng.integers(0, canvas - size + 1))
            box = (x + local[0], y + local[1], x + local[2], y + local[3])
            if not _overlaps(box, boxes, gap=1):
                break
        else:
            continue
        fg = gray > 0
        colour = np.rint(gray[..., None] * tint).clip(1, 255).astype(np.uint8)
        patch = img[y:y + size, x:x + size]
        patch[fg] = colour[fg]
        seg[y:y + size, x:x + size][fg] = labels[idx] + 1
        full = np.zeros((canvas, canvas), bool)
        full[y:y + size, x:x + size] = fg
        boxes.append(box)
        items.append(
            dict(
                label=int(labels[idx]),
                index=idx,
                origin=(x, y),
                size=size,
                box=box,
                mask=full))
    return img, seg, items


def build_split(images: np.ndarray, labels: np.ndarray, out_dir: str,
                split: str, num: int, seed: int, canvas: int, max_items: int,
                min_size: int, max_size: int) -> Dict:
    """Write ``num`` canvases of one split and return its COCO dict."""
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out_dir, split, 'images'), exist_ok=True)
    os.makedirs(osp.join(out_dir, split, 'masks'), exist_ok=True)
    coco: Dict = dict(
        images=[],
        annotations=[],
        categories=[
            dict(id=i + 1, name=n, supercategory='clothing')
            for i, n in enumerate(CLASSES)
        ])
    for i in range(num):
        img, seg, items = compose_canvas(images, labels, rng, canvas,
                                         max_items, min_size, max_size)
        name = f'{i:06d}.png'
        Image.fromarray(img).save(osp.join(out_dir, split, 'images', name))
        Image.fromarray(seg).save(osp.join(out_dir, split, 'masks', name))
        coco['images'].append(
            dict(
                id=i,
                file_name=name,
                seg_map_path=name,
                height=canvas,
                width=canvas))
        for item in items:
            x0, y0, x1, y1 = item['box']
            full = item['mask']
            rle = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode('ascii')
            coco['annotations'].append(
                dict(
                    id=len(coco['annotations']) + 1,
                    image_id=i,
                    category_id=item['label'] + 1,
                    bbox=[x0, y0, x1 - x0, y1 - y0],
                    area=int(full.sum()),
                    segmentation=rle,
                    iscrowd=0))
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    with open(
            osp.join(out_dir, 'annotations', f'instances_{split}.json'),
            'w') as f:
        json.dump(coco, f)
    return coco


def build(src: str,
          out_dir: str,
          num_train: int = 1000,
          num_val: int = 200,
          canvas: int = 96,
          max_items: int = 3,
          min_size: int = 24,
          max_size: int = 48,
          seed: int = 0,
          num_test: int = 400,
          num_holdout: int = 0) -> Dict[str, Dict]:
    """Build the three splits (and ``holdout`` with ``num_holdout`` > 0);
    returns ``{'train': coco, 'val': coco, 'test': coco}``."""
    if not min_size <= max_size <= canvas:
        raise ValueError('build_fmnist_canvas: need min_size <= max_size <= '
                         f'canvas, got {min_size}, {max_size}, {canvas}')
    sizes = dict(
        train=num_train, val=num_val, test=num_test, holdout=num_holdout)
    out = {}
    for k, (split, (prefix, (lo, hi))) in enumerate(SPLITS.items()):
        if split == 'holdout' and not num_holdout:
            continue
        images, labels = load_split(src, prefix)
        items = slice(round(lo * len(images)), round(hi * len(images)))
        out[split] = build_split(images[items], labels[items], out_dir, split,
                                 sizes[split], seed * 1000 + k, canvas,
                                 max_items, min_size, max_size)
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'src',
        help='directory of the Fashion-MNIST IDX files, or the embedded '
        'data/fmnist_mini/fmnist_mini.npz')
    parser.add_argument('out', help='output directory')
    parser.add_argument('--num-train', type=int, default=1000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--num-test', type=int, default=400)
    parser.add_argument(
        '--num-holdout',
        type=int,
        default=0,
        help='canvases of a second test split from the test half of t10k '
        '[ours]')
    parser.add_argument('--canvas', type=int, default=96)
    parser.add_argument('--max-items', type=int, default=3)
    parser.add_argument('--min-size', type=int, default=24)
    parser.add_argument('--max-size', type=int, default=48)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out = build(args.src, args.out, args.num_train, args.num_val, args.canvas,
                args.max_items, args.min_size, args.max_size, args.seed,
                args.num_test, args.num_holdout)
    for split, coco in out.items():
        print(f'{split}: {len(coco["images"])} images, '
              f'{len(coco["annotations"])} boxes -> {args.out}')


if __name__ == '__main__':
    main()
