"""The embedded Fashion-MNIST subset (data/fmnist_mini) and its converter
path (tools/dataset_converters/build_fmnist_cls.py)."""
import hashlib
import os.path as osp
import re
import subprocess
import sys

import fmnist_fakes  # noqa: F401  (puts tools/ on sys.path)
import numpy as np
import pytest
from dataset_converters.build_fmnist_cls import (CLASSES, SPLITS, build,
                                                 build_from_npz, export_npz,
                                                 load_npz, plan)
from fmnist_fakes import ROOT, write_idx
from PIL import Image

MINI = osp.join(ROOT, 'data', 'fmnist_mini')
NPZ = osp.join(MINI, 'fmnist_mini.npz')
N500 = osp.join(ROOT, 'data', 'fmnist_cls_n500')
SCRIPT = osp.join(ROOT, 'tools', 'dataset_converters', 'build_fmnist_cls.py')
COUNTS = dict(train=500, val=1000, test=2000)


def sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_file_is_small_and_its_sha256_is_the_readme_s():
    assert osp.getsize(NPZ) < 5 * 2**20
    with open(osp.join(MINI, 'README.md')) as f:
        stated = re.findall(r'`([0-9a-f]{64})`', f.read())
    assert stated == [sha256(NPZ)]


def test_shapes_labels_and_indices():
    with np.load(NPZ, allow_pickle=False) as data:
        assert list(data['classes']) == list(CLASSES)
        seen = {}
        for split, num in COUNTS.items():
            images = data[f'{split}_images']
            labels = data[f'{split}_labels']
            index = data[f'{split}_index']
            assert images.shape == (num, 28, 28)
            assert images.dtype == np.uint8
            assert labels.shape == index.shape == (num, )
            # balanced: every class the same number of times
            assert np.bincount(
                labels, minlength=10).tolist() == [num // 10] * 10
            assert len(np.unique(index)) == num
            assert index.min() >= 0
            assert index.max() < (10000 if split == 'test' else 60000)
            # real images, not blank: a dark background, bright clothes
            assert images.max() == 255 and (images == 0).mean() > 0.3
            seen[split] = set(index.tolist())
        # train and val both come from the train file: disjoint
        assert not seen['train'] & seen['val']


def test_npz_round_trip_gives_the_same_bytes(tmp_path):
    out = str(tmp_path / 'again.npz')
    assert export_npz(load_npz(NPZ), out) == sha256(NPZ)


def test_converter_writes_the_committed_proxy_data(tmp_path):
    """The first 20 items of every split are the committed PNGs of
    data/fmnist_cls_n500, byte for byte, with the same list lines."""
    out = str(tmp_path / 'cls')
    assert build_from_npz(
        NPZ, out, size=64, limit=20) == dict(
            train=20, val=20, test=20)
    for split in SPLITS:
        with open(osp.join(out, 'meta', f'{split}.txt')) as f:
            lines = f.read().splitlines()
        with open(osp.join(N500, 'meta', f'{split}.txt')) as f:
            assert lines == f.read().splitlines()[:20]
        for line in lines[:5]:
            name = line.split()[0]
            with open(osp.join(out, name), 'rb') as a, \
                    open(osp.join(N500, name), 'rb') as b:
                assert a.read() == b.read()
        img = Image.open(osp.join(out, lines[0].split()[0]))
        assert img.size == (64, 64) and img.mode == 'RGB'


def test_export_equals_a_build_from_idx(tmp_path):
    """The .npz path and the IDX path write the same files."""
    rng = np.random.default_rng(0)
    fmnist_dir = tmp_path / 'idx'
    fmnist_dir.mkdir()
    for prefix, num in (('train', 60), ('t10k', 30)):
        write_idx(
            str(fmnist_dir / f'{prefix}-images-idx3-ubyte'),
            rng.integers(0, 256, (num, 28, 28), dtype=np.uint8), True)
        write_idx(
            str(fmnist_dir / f'{prefix}-labels-idx1-ubyte'),
            (np.arange(num) % 10).astype(np.uint8), True)
    fmnist_dir = str(fmnist_dir)
    kw = dict(num_train=20, num_val=10, num_test=20, seed=2)
    npz = str(tmp_path / 'mini.npz')
    export_npz(plan(fmnist_dir, **kw), npz)
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    build(fmnist_dir, a, size=32, **kw)
    build_from_npz(npz, b, size=32)
    for split in SPLITS:
        with open(osp.join(a, 'meta', f'{split}.txt')) as fa, \
                open(osp.join(b, 'meta', f'{split}.txt')) as fb:
            lines = fa.read()
            assert lines == fb.read()
        for line in lines.splitlines():
            name = line.split()[0]
            assert sha256(osp.join(a, name)) == sha256(osp.join(b, name))


def test_bad_npz_and_limit(tmp_path):
    bad = str(tmp_path / 'bad.npz')
    np.savez(bad, train_images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match='lacks'):
        load_npz(bad)
    arrays = {}
    for split in SPLITS:
        arrays[f'{split}_images'] = np.zeros((2, 32, 32), np.uint8)
        arrays[f'{split}_labels'] = np.zeros(2, np.uint8)
        arrays[f'{split}_index'] = np.zeros(2, np.int32)
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match='28x28'):
        load_npz(bad)
    with pytest.raises(ValueError, match='limit'):
        load_npz(NPZ, limit=0)


def test_cli_builds_the_split_from_the_embedded_npz(tmp_path):
    out = str(tmp_path / 'cls')
    res = subprocess.run(
        [sys.executable, SCRIPT, NPZ, out, '--limit', '3', '--size', '32'],
        capture_output=True,
        text=True)
    assert res.returncode == 0, res.stderr
    assert 'test: 3 images (32x32 RGB' in res.stdout
