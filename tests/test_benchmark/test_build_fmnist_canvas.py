"""Tests of tools/dataset_converters/build_fmnist_canvas.py."""
import json
import os.path as osp

import numpy as np
import pytest
from dataset_converters.build_fmnist_canvas import (CLASSES, build,
                                                    compose_canvas, load_split,
                                                    read_idx, resize_nearest)
from fmnist_fakes import BLOCKS, synthetic_images
from PIL import Image


def test_read_idx_gz_and_plain(fmnist_dir):
    images, labels = synthetic_images()
    for prefix in ('train', 't10k'):
        got_i, got_l = load_split(fmnist_dir, prefix)
        np.testing.assert_array_equal(got_i, images)
        np.testing.assert_array_equal(got_l, labels)
    with pytest.raises(ValueError, match='IDX'):
        bad = osp.join(fmnist_dir, 'bad')
        with open(bad, 'wb') as f:
            f.write(b'\x01\x02\x03\x04')
        read_idx(bad)


def test_resize_nearest_integer_factor():
    item = np.arange(9).reshape(3, 3)
    np.testing.assert_array_equal(
        resize_nearest(item, 6), np.kron(item, np.ones((2, 2), int)))


@pytest.mark.parametrize('size', [28, 56, 84])
def test_boxes_masks_equal_hand_extents(size):
    """Integer factor k: nonzero rows r0..r1 -> y + k*r0 .. y + k*(r1+1)."""
    images, labels = synthetic_images()
    k = size // 28
    rng = np.random.default_rng(3)
    for _ in range(10):
        img, seg, items = compose_canvas(images, labels, rng, 128, 3, size,
                                         size)
        assert items
        for item in items:
            label, r0, r1, c0, c1 = BLOCKS[item['index']]
            x, y = item['origin']
            expect = (x + k * c0, y + k * r0, x + k * (c1 + 1),
                      y + k * (r1 + 1))
            assert item['box'] == expect
            assert item['label'] == label
            hand = np.zeros((128, 128), bool)
            hand[expect[1]:expect[3], expect[0]:expect[2]] = True
            np.testing.assert_array_equal(item['mask'], hand)
            # label map and image agree with the mask (the same class may
            # be pasted twice, so only this item's pixels are checked)
            assert (seg[hand] == label + 1).all()
            assert (img[hand] > 0).any(axis=-1).all()
        union = np.any([it['mask'] for it in items], axis=0)
        assert (seg[~union] == 0).all() and (img[~union] == 0).all()


def _build(src, out, seed, num_holdout=0):
    return build(
        src,
        str(out),
        num_train=6,
        num_val=3,
        num_test=4,
        canvas=64,
        max_items=2,
        min_size=28,
        max_size=56,
        seed=seed,
        num_holdout=num_holdout)


def test_coco_files_match_the_masks_boxes_and_areas(fmnist_dir, tmp_path):
    from pycocotools.coco import COCO
    out = tmp_path / 'canvas'
    cocos = _build(fmnist_dir, out, seed=0)
    for split, num in (('train', 6), ('val', 3), ('test', 4)):
        ann = str(out / 'annotations' / f'instances_{split}.json')
        coco = COCO(ann)
        assert len(coco.getImgIds()) == num
        assert [c['name']
                for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
        assert coco.getAnnIds() == [
            a['id'] for a in cocos[split]['annotations']
        ]
        for a in coco.loadAnns(coco.getAnnIds()):
            info = coco.loadImgs(a['image_id'])[0]
            seg = np.array(
                Image.open(str(out / split / 'masks' / info['file_name'])))
            mask = coco.annToMask(a).astype(bool)
            # the RLE mask is the set of pixels labelled with its category
            assert (seg[mask] == a['category_id']).all()
            ys, xs = np.nonzero(mask)
            assert a['bbox'] == [
                xs.min(),
                ys.min(),
                xs.max() + 1 - xs.min(),
                ys.max() + 1 - ys.min()
            ]
            assert a['area'] == mask.sum()
            img = Image.open(str(out / split / 'images' / info['file_name']))
            assert img.size == (64, 64) and img.mode == 'RGB'


def test_build_deterministic_per_seed(fmnist_dir, tmp_path):

    def read(out):
        with open(osp.join(out, 'annotations', 'instances_train.json')) as f:
            ann = json.load(f)
        img = np.array(
            Image.open(osp.join(out, 'train', 'images', '000000.png')))
        return ann, img

    _build(fmnist_dir, tmp_path / 'a', seed=1)
    _build(fmnist_dir, tmp_path / 'b', seed=1)
    _build(fmnist_dir, tmp_path / 'c', seed=2)
    ann_a, img_a = read(str(tmp_path / 'a'))
    ann_b, img_b = read(str(tmp_path / 'b'))
    ann_c, _ = read(str(tmp_path / 'c'))
    assert ann_a == ann_b
    np.testing.assert_array_equal(img_a, img_b)
    assert ann_a != ann_c


def test_build_rejects_bad_sizes(fmnist_dir, tmp_path):
    with pytest.raises(ValueError, match='min_size'):
        build(fmnist_dir, str(tmp_path), canvas=32, min_size=28, max_size=56)


def test_val_and_test_draw_from_disjoint_halves_of_t10k(tmp_path):
    """Settings are chosen on val and reported on test: no item of t10k
    may appear in both. The items of the two halves differ in brightness,
    so a canvas tells which half its item came from."""
    from fmnist_fakes import write_idx
    n = 20
    images = np.zeros((n, 28, 28), np.uint8)
    images[:n // 2, 4:24, 4:24] = 200  # first half of t10k: bright
    images[n // 2:, 4:24, 4:24] = 100  # second half: dim
    labels = np.arange(n, dtype=np.uint8) % 10
    root = tmp_path / 'fm'
    root.mkdir()
    for prefix in ('train', 't10k'):
        write_idx(str(root / f'{prefix}-images-idx3-ubyte'), images, False)
        write_idx(str(root / f'{prefix}-labels-idx1-ubyte'), labels, False)
    out = tmp_path / 'c'
    build(
        str(root),
        str(out),
        num_train=2,
        num_val=6,
        num_test=6,
        canvas=64,
        max_items=1,
        min_size=28,
        max_size=28)
    for split, want in (('val', 200), ('test', 100)):
        for name in sorted((out / split / 'images').iterdir()):
            img = np.array(Image.open(str(name)))
            bright = img.max(axis=-1)[img.max(axis=-1) > 0]
            # a random tint scales the item; the halves stay apart
            assert bright.size and (bright.max() > 150) == (want == 200)


def test_holdout_is_new_compositions_and_leaves_the_other_splits(
        fmnist_dir, tmp_path):
    """[ours] ``num_holdout``: more canvases from the test half of t10k, by
    a stream of their own: train, val and test are the same files with or
    without it, and no holdout canvas repeats a test canvas."""
    plain, more = tmp_path / 'plain', tmp_path / 'more'
    _build(fmnist_dir, plain, seed=2)
    cocos = _build(fmnist_dir, more, seed=2, num_holdout=5)
    assert {
        k: len(v['images'])
        for k, v in cocos.items()
    } == dict(
        train=6, val=3, test=4, holdout=5)
    for split, num in (('train', 6), ('val', 3), ('test', 4)):
        assert (plain / 'annotations' /
                f'instances_{split}.json').read_text() == (
                    more / 'annotations' /
                    f'instances_{split}.json').read_text()
        for i in range(num):
            for sub in ('images', 'masks'):
                name = f'{split}/{sub}/{i:06d}.png'
                np.testing.assert_array_equal(
                    np.asarray(Image.open(plain / name)),
                    np.asarray(Image.open(more / name)))
    test = [
        np.asarray(Image.open(more / f'test/images/{i:06d}.png'))
        for i in range(4)
    ]
    for i in range(5):
        img = np.asarray(Image.open(more / f'holdout/images/{i:06d}.png'))
        assert not any(np.array_equal(img, t) for t in test)
    assert len(cocos['holdout']['annotations']) >= 5
    assert not (plain / 'annotations' / 'instances_holdout.json').exists()


def test_canvases_from_the_embedded_npz(tmp_path):
    """An .npz source (build_fmnist_cls.py --npz): train canvases draw from
    its train and val items (the IDX train file), val and test canvases from
    its test items (t10k), val from the first half and test from the
    second, as with the IDX files. The items here say where they come from:
    train labels 0-1, val 2-3, the first half of test 4-5, the second 6-7."""
    from dataset_converters.build_fmnist_cls import SPLITS as NPZ_SPLITS
    from dataset_converters.build_fmnist_cls import export_npz
    block = np.zeros((28, 28), np.uint8)
    block[4:24, 6:20] = 200
    labels = dict(
        train=np.array([0, 1] * 3),
        val=np.array([2, 3] * 2),
        test=np.array([4, 5] * 4 + [6, 7] * 4))
    items = {
        s:
        (np.repeat(block[None], len(labels[s]),
                   0), labels[s].astype(np.uint8), np.arange(len(labels[s])))
        for s in NPZ_SPLITS
    }
    npz = str(tmp_path / 'mini.npz')
    export_npz(items, npz)
    images, got = load_split(npz, 'train')
    assert images.shape == (10, 28, 28)
    assert got.tolist() == [0, 1] * 3 + [2, 3] * 2
    _, got = load_split(npz, 't10k')
    assert got.tolist() == [4, 5] * 4 + [6, 7] * 4
    sizes = dict(
        num_train=12,
        num_val=8,
        num_test=8,
        canvas=64,
        min_size=28,
        max_size=28)
    out = build(npz, str(tmp_path / 'canvas'), **sizes)
    cats = {
        split: {a['category_id'] - 1
                for a in coco['annotations']}
        for split, coco in out.items()
    }
    assert cats['train'] <= {0, 1, 2, 3} and cats['train'] & {2, 3}
    assert cats['val'] <= {4, 5}
    assert cats['test'] <= {6, 7}
    # the same file and seed give the same canvases
    again = build(npz, str(tmp_path / 'again'), **sizes)
    assert again['test']['annotations'] == out['test']['annotations']
