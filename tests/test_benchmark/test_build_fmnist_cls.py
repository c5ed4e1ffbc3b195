"""Tests of tools/dataset_converters/build_fmnist_cls.py."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from dataset_converters.build_fmnist_cls import build, per_class_counts
from fmnist_fakes import BLOCKS, synthetic_images, write_idx
from PIL import Image

SCRIPT = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
    'dataset_converters', 'build_fmnist_cls.py')
# source items of the fixture below: every item is a constant image whose
# value names it; train items are 1..120, t10k items 130..189
NUM_TRAIN_SRC, NUM_TEST_SRC, TEST_OFFSET = 120, 60, 130


@pytest.fixture
def distinct_dir(tmp_path) -> str:
    """IDX files of 10 classes whose items can be told apart by value:
    item ``i`` of train is filled with ``1 + i``, of t10k with ``130 + i``,
    and has the label ``i % 10``."""
    root = tmp_path / 'distinct'
    root.mkdir()
    sources = [
        ('train', NUM_TRAIN_SRC, 1, True),
        ('t10k', NUM_TEST_SRC, TEST_OFFSET, False),
    ]
    for prefix, num, first, gz in sources:
        values = np.arange(first, first + num, dtype=np.uint8)
        images = np.broadcast_to(values[:, None, None], (num, 28, 28))
        write_idx(str(root / f'{prefix}-images-idx3-ubyte'), images, gz)
        write_idx(
            str(root / f'{prefix}-labels-idx1-ubyte'),
            (np.arange(num) % 10).astype(np.uint8), gz)
    return str(root)


def read_split(out: str, split: str) -> list:
    """``(name, label, image array)`` of every meta line of a split."""
    rows = []
    with open(osp.join(out, 'meta', f'{split}.txt')) as f:
        for line in f:
            name, label = line.split()
            img = Image.open(osp.join(out, name))
            rows.append((name, int(label), img.mode, np.asarray(img)))
    return rows


def item_ids(rows: list) -> list:
    """The source value of each image (constant images of the fixture)."""
    ids = []
    for _, _, _, arr in rows:
        assert (arr == arr[0, 0, 0]).all()  # bilinear keeps a constant
        ids.append(int(arr[0, 0, 0]))
    return ids


def test_per_class_counts_give_the_remainder_to_the_lowest_labels():
    assert per_class_counts(20, range(10)) == {c: 2 for c in range(10)}
    counts = per_class_counts(13, [9, 0, 3, 7])
    assert counts == {0: 4, 3: 3, 7: 3, 9: 3}
    assert sum(counts.values()) == 13


def test_counts_balance_size_and_labels(distinct_dir, tmp_path):
    out = str(tmp_path / 'cls')
    counts = build(distinct_dir, out, 40, 30, 20, size=64, seed=0)
    assert counts == dict(train=40, val=30, test=20)
    for split, num in counts.items():
        rows = read_split(out, split)
        assert len(rows) == num
        names = [f'{split}/{i:06d}.png' for i in range(num)]
        assert [r[0] for r in rows] == names
        labels = np.array([r[1] for r in rows])
        np.testing.assert_array_equal(
            np.bincount(labels, minlength=10), [num // 10] * 10)
        for _, _, mode, arr in rows:
            assert mode == 'RGB' and arr.shape == (64, 64, 3)
        # the label is the source item's: label = index % 10
        ids = item_ids(rows)
        first = TEST_OFFSET if split == 'test' else 1
        np.testing.assert_array_equal((np.array(ids) - first) % 10, labels)
        # train and val from the train IDX file, test from t10k
        if split == 'test':
            assert min(ids) >= TEST_OFFSET
        else:
            assert max(ids) <= NUM_TRAIN_SRC
    # file order does not follow the classes
    train_labels = [r[1] for r in read_split(out, 'train')]
    assert train_labels != sorted(train_labels)


def test_uneven_counts_differ_by_at_most_one(distinct_dir, tmp_path):
    out = str(tmp_path / 'cls')
    build(distinct_dir, out, 43, 7, 15, size=32, seed=0)
    for split, num in (('train', 43), ('val', 7), ('test', 15)):
        labels = [r[1] for r in read_split(out, split)]
        per = np.bincount(labels, minlength=10)
        assert per.sum() == num and per.max() - per.min() <= 1
        # the remainder goes to the lowest labels
        assert list(per) == sorted(per, reverse=True)


def test_train_val_disjoint_and_nested(distinct_dir, tmp_path):
    small, large = str(tmp_path / 'small'), str(tmp_path / 'large')
    build(distinct_dir, small, 20, 30, 10, size=28, seed=4)
    build(distinct_dir, large, 80, 30, 10, size=28, seed=4)
    train_s = set(item_ids(read_split(small, 'train')))
    train_l = set(item_ids(read_split(large, 'train')))
    val_s = set(item_ids(read_split(small, 'val')))
    val_l = set(item_ids(read_split(large, 'val')))
    assert len(train_l) == 80 and len(val_l) == 30  # no repeats
    assert not train_s & val_s and not train_l & val_l
    # val does not depend on num_train; a smaller train is a subset
    assert val_s == val_l
    assert train_s < train_l


def test_unlabelled_split_leaves_the_others_and_carries_no_label(
        distinct_dir, tmp_path):
    plain, more = str(tmp_path / 'plain'), str(tmp_path / 'more')
    build(distinct_dir, plain, 20, 30, 10, size=28, seed=4)
    counts = build(
        distinct_dir, more, 20, 30, 10, size=28, seed=4, num_unlabelled=50)
    assert counts == dict(train=20, val=30, test=10, unlabelled=50)
    # train, val and test are the same files with or without the pool
    for split in ('train', 'val', 'test'):
        a, b = read_split(plain, split), read_split(more, split)
        assert [r[:2] for r in a] == [r[:2] for r in b]
        assert all(np.array_equal(x[3], y[3]) for x, y in zip(a, b))
    assert not osp.exists(osp.join(plain, 'meta', 'unlabelled.txt'))
    rows = read_split(more, 'unlabelled')
    assert [r[0]
            for r in rows] == [f'unlabelled/{i:06d}.png' for i in range(50)]
    assert {r[1] for r in rows} == {-1}
    unl = item_ids(rows)
    # other train-split items (1..120), 5 per class, none of train or val
    assert len(set(unl)) == 50 and all(1 <= v <= 120 for v in unl)
    assert not set(unl) & set(item_ids(read_split(more, 'train')))
    assert not set(unl) & set(item_ids(read_split(more, 'val')))
    np.testing.assert_array_equal(
        np.bincount([(v - 1) % 10 for v in unl], minlength=10), [5] * 10)
    # the oracle file: the same images, each with its true class (the
    # fixture's item v is of class (v - 1) % 10)
    oracle = read_split(more, 'unlabelled_oracle')
    assert [r[0] for r in oracle] == [r[0] for r in rows]
    assert [r[1] for r in oracle] == [(v - 1) % 10 for v in unl]
    # a rebuild without the pool removes its meta files (no stale pointer)
    build(distinct_dir, more, 20, 30, 10, size=28, seed=4)
    assert not osp.exists(osp.join(more, 'meta', 'unlabelled.txt'))
    assert not osp.exists(osp.join(more, 'meta', 'unlabelled_oracle.txt'))
    # mmpretrain reads the pool with gt_label -1
    from mmpretrain.datasets import CustomDataset
    build(distinct_dir, more, 20, 30, 10, size=28, seed=4, num_unlabelled=50)
    ds = CustomDataset(
        data_root=more, ann_file='meta/unlabelled.txt', data_prefix='')
    assert len(ds) == 50 and ds.get_data_info(0)['gt_label'] == -1


def test_holdout_split_is_other_t10k_items_and_leaves_the_others(
        distinct_dir, tmp_path):
    """[ours] ``holdout``: a second test split of t10k items (130..189 in
    the fixture) that ``test`` does not hold, with their true labels, class
    balanced; every other split is the same file with or without it."""
    plain, more = str(tmp_path / 'plain'), str(tmp_path / 'more')
    build(distinct_dir, plain, 20, 30, 10, size=28, seed=4, num_unlabelled=20)
    counts = build(
        distinct_dir,
        more,
        20,
        30,
        10,
        size=28,
        seed=4,
        num_unlabelled=20,
        num_holdout=40)
    assert counts == dict(train=20, val=30, test=10, unlabelled=20, holdout=40)
    for split in ('train', 'val', 'test', 'unlabelled'):
        a, b = read_split(plain, split), read_split(more, split)
        assert [r[:2] for r in a] == [r[:2] for r in b]
        assert all(np.array_equal(x[3], y[3]) for x, y in zip(a, b))
    rows = read_split(more, 'holdout')
    hold = item_ids(rows)
    test = item_ids(read_split(more, 'test'))
    assert len(set(hold)) == 40 and not set(hold) & set(test)
    assert all(TEST_OFFSET <= v < TEST_OFFSET + NUM_TEST_SRC for v in hold)
    # the true label of each item (label = index % 10), 4 per class
    assert [r[1] for r in rows] == [(v - TEST_OFFSET) % 10 for v in hold]
    np.testing.assert_array_equal(
        np.bincount([r[1] for r in rows], minlength=10), [4] * 10)
    # t10k holds 6 items per class: 1 test + 5 holdout fit, 1 + 6 do not
    with pytest.raises(ValueError, match='class 0 has 6 items, 7 are needed'):
        build(distinct_dir, more, 20, 30, 10, size=28, num_holdout=60)
    build(distinct_dir, more, 20, 30, 10, size=28, seed=4)
    assert not osp.exists(osp.join(more, 'meta', 'holdout.txt'))
    out = subprocess.run([
        sys.executable, SCRIPT, 'data/fmnist_mini/fmnist_mini.npz',
        str(tmp_path / 'npz'), '--num-holdout', '5'
    ],
                         capture_output=True,
                         text=True)
    assert out.returncode != 0
    assert '--num-holdout needs the IDX files' in out.stderr


def test_val_from_t10k_sits_between_test_and_holdout(distinct_dir, tmp_path):
    """[ours] ``val_source='t10k'``: val is t10k items (true labels, class
    balanced) that test and holdout do not hold; test, train and unlabelled
    are the same files as with the IDX val, and the holdout is the tail of
    that build's holdout."""
    plain, t10k = str(tmp_path / 'plain'), str(tmp_path / 't10k')
    kw = dict(size=28, seed=4, num_unlabelled=20)
    build(distinct_dir, plain, 20, 10, 10, num_holdout=40, **kw)
    counts = build(
        distinct_dir,
        t10k,
        20,
        10,
        10,
        num_holdout=30,
        val_source='t10k',
        **kw)
    assert counts == dict(train=20, val=10, test=10, unlabelled=20, holdout=30)
    for split in ('train', 'test', 'unlabelled'):
        a, b = read_split(plain, split), read_split(t10k, split)
        assert [r[:2] for r in a] == [r[:2] for r in b], split
        assert all(np.array_equal(x[3], y[3]) for x, y in zip(a, b))
    rows = read_split(t10k, 'val')
    val = item_ids(rows)
    test = set(item_ids(read_split(t10k, 'test')))
    hold = set(item_ids(read_split(t10k, 'holdout')))
    assert all(TEST_OFFSET <= v < TEST_OFFSET + NUM_TEST_SRC for v in val)
    assert len(set(val)) == 10 and not set(val) & (test | hold)
    assert [r[1] for r in rows] == [(v - TEST_OFFSET) % 10 for v in val]
    np.testing.assert_array_equal(
        np.bincount([r[1] for r in rows], minlength=10), [1] * 10)
    # val took the first 10 items of the earlier holdout, holdout the rest
    old_hold = set(item_ids(read_split(plain, 'holdout')))
    assert set(val) | hold == old_hold
    with pytest.raises(ValueError, match="val_source must be one of"):
        build(distinct_dir, t10k, 20, 10, 10, val_source='test')


def test_deterministic_per_seed(distinct_dir, tmp_path):
    outs = [str(tmp_path / name) for name in ('a', 'b', 'c')]
    for out, seed in zip(outs, (1, 1, 2)):
        build(distinct_dir, out, 30, 20, 10, size=40, seed=seed)
    for split in ('train', 'val', 'test'):
        with open(osp.join(outs[0], 'meta', f'{split}.txt')) as f:
            meta_a = f.read()
        with open(osp.join(outs[1], 'meta', f'{split}.txt')) as f:
            assert f.read() == meta_a
        for name in os.listdir(osp.join(outs[0], split)):
            with open(osp.join(outs[0], split, name), 'rb') as f:
                png_a = f.read()
            with open(osp.join(outs[1], split, name), 'rb') as f:
                assert f.read() == png_a
    ids = [item_ids(read_split(out, 'train')) for out in outs]
    assert ids[0] == ids[1] and ids[0] != ids[2]


def test_rebuild_replaces_meta_and_stale_images(distinct_dir, tmp_path):
    out = str(tmp_path / 'cls')
    build(distinct_dir, out, 50, 20, 20, size=28, seed=0)
    build(distinct_dir, out, 20, 10, 10, size=28, seed=0)
    for split, num in (('train', 20), ('val', 10), ('test', 10)):
        assert len(read_split(out, split)) == num
        names = [f'{i:06d}.png' for i in range(num)]
        assert sorted(os.listdir(osp.join(out, split))) == names
    metas = sorted(os.listdir(osp.join(out, 'meta')))
    assert metas == ['test.txt', 'train.txt', 'val.txt']


def test_synthetic_fixture_items_and_upscaling(fmnist_dir, tmp_path):
    """The shared fixture (4 items, 4 classes, train gzipped, t10k plain):
    at 28 px the images are the items themselves in 3 channels; larger
    sizes are bilinear upscales."""
    images, labels = synthetic_images()
    out = str(tmp_path / 'cls')
    counts = build(fmnist_dir, out, 4, 0, 4, size=28, seed=0)
    assert counts == dict(train=4, val=0, test=4)
    for split in ('train', 'test'):
        rows = read_split(out, split)
        assert sorted(r[1] for r in rows) == sorted(b[0] for b in BLOCKS)
        for _, label, mode, arr in rows:
            item = images[list(labels).index(label)]
            assert mode == 'RGB'
            for ch in range(3):
                np.testing.assert_array_equal(arr[..., ch], item)
    out64 = str(tmp_path / 'cls64')
    build(fmnist_dir, out64, 4, 0, 4, size=64, seed=0)
    for _, label, mode, arr in read_split(out64, 'train'):
        item = images[list(labels).index(label)]
        expect = np.asarray(
            Image.fromarray(item).resize((64, 64), Image.BILINEAR))
        assert mode == 'RGB' and arr.shape == (64, 64, 3)
        np.testing.assert_array_equal(arr[..., 1], expect)


def test_bad_size_counts_and_too_few_items_are_refused(fmnist_dir, tmp_path):
    out = tmp_path / 'cls'
    with pytest.raises(ValueError, match='size must be >= 28'):
        build(fmnist_dir, str(out), 4, 0, 4, size=27, seed=0)
    assert not out.exists()  # refused before writing anything
    with pytest.raises(ValueError, match='>= 0'):
        build(fmnist_dir, str(out), -1, 0, 4, size=28, seed=0)
    # one item per class cannot give both train and val
    with pytest.raises(ValueError, match='class .* has 1 items'):
        build(fmnist_dir, str(out), 4, 4, 4, size=28, seed=0)


def test_cli_and_mmpretrain_custom_dataset(distinct_dir, tmp_path):
    out = str(tmp_path / 'cls')
    args = [
        '--num-train', '20', '--num-val', '10', '--num-test', '10', '--size',
        '32', '--seed', '3'
    ]
    res = subprocess.run([sys.executable, SCRIPT, distinct_dir, out, *args],
                         capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert 'train: 20 images' in res.stdout
    assert 'test: 10 images' in res.stdout
    # mmprockd (its compat fixes) is imported first by tests/conftest.py
    from mmpretrain.datasets import CustomDataset

    # the paths exactly as
    # configs/benchmark/resnet18-tiny_1000i_fmnist-64px_student.py gives them
    dataset = CustomDataset(
        data_root=out + '/', ann_file='meta/val.txt', data_prefix='')
    assert len(dataset) == 10
    info = dataset.get_data_info(0)
    assert info['img_path'] == osp.join(out, 'val', '000000.png')
    assert osp.isfile(info['img_path'])
    assert info['gt_label'] == read_split(out, 'val')[0][1]
