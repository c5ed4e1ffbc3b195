"""A tiny synthetic Fashion-MNIST for the benchmark tests."""
import gzip
import os.path as osp
import struct
import sys

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# the tools' packages (analysis_tools, dataset_converters) and scripts
# (demo, demo_compare) import as they do from tools/demo.py
if osp.join(ROOT, 'tools') not in sys.path:
    sys.path.insert(0, osp.join(ROOT, 'tools'))

# (label, rows r0..r1, cols c0..c1) of the nonzero block of each image
BLOCKS = [(3, 2, 25, 9, 18), (7, 10, 20, 0, 27), (0, 4, 23, 5, 22),
          (9, 0, 27, 12, 13)]


def write_idx(path: str, arr: np.ndarray, gz: bool) -> None:
    """Write ``arr`` (uint8) as an IDX file."""
    head = struct.pack('>HBB', 0, 0x08, arr.ndim)
    head += struct.pack('>' + 'I' * arr.ndim, *arr.shape)
    opener = gzip.open if gz else open
    with opener(path + ('.gz' if gz else ''), 'wb') as f:
        f.write(head + arr.astype(np.uint8).tobytes())


def synthetic_images() -> tuple:
    """28x28 images whose nonzero pixels fill exactly the blocks above
    (with a gradient, and value 1 at the corners of each block)."""
    images = np.zeros((len(BLOCKS), 28, 28), np.uint8)
    labels = np.array([b[0] for b in BLOCKS], np.uint8)
    for i, (_, r0, r1, c0, c1) in enumerate(BLOCKS):
        h, w = r1 - r0 + 1, c1 - c0 + 1
        block = 50 + (np.arange(h)[:, None] * 3 + np.arange(w)[None]) % 200
        block[0, 0] = block[-1, -1] = 1
        images[i, r0:r1 + 1, c0:c1 + 1] = block
    return images, labels
