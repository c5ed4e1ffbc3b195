"""Tiny image folders for the toy configs of this directory.

``toy_cls.py`` reads ``<root>/<class>/*.png``: 32x32 grayscale images, dark
ones in ``dark/`` and bright ones in ``bright/``, which LeNet-5 separates
within an epoch. Tests import this file by path; by hand::

    python tests/data/toy/toy_data.py /tmp/toy_cls
"""
import os
import os.path as osp
import sys
from typing import List

import numpy as np
from PIL import Image

TOY_DIR = osp.dirname(osp.abspath(__file__))
TOY_CLS = osp.join(TOY_DIR, 'toy_cls.py')
CLASSES = {'bright': 210, 'dark': 40}  # class folder -> mean grey level


def make_toy_images(root: str, per_class: int = 4, seed: int = 0) -> str:
    """Write ``per_class`` noisy 32x32 images per class under ``root``.

    Args:
        root (str): Folder to create.
        per_class (int): Images per class. Defaults to 4.
        seed (int): Noise seed. Defaults to 0.

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng(seed)
    for name, level in CLASSES.items():
        os.makedirs(osp.join(root, name), exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-30, 30, size=(32, 32))
            pixels = np.clip(level + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(osp.join(root, name, f'{i}.png'))
    return root


def data_root_options(root: str) -> List[str]:
    """``--cfg-options`` items pointing the three dataloaders at ``root``."""
    return [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: python tests/data/toy/toy_data.py ROOT')
    print(make_toy_images(sys.argv[1]))
