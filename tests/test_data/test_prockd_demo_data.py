# Copyright (c) mmprockd contributors. All rights reserved.
"""Checks of the hand-labelled ``data/prockd_demo`` data set."""
import glob
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA_ROOT = osp.join(REPO_ROOT, 'data', 'prockd_demo')
CITYSCAPES_ROOT = osp.join(DATA_ROOT, 'cityscapes')
CONVERTER = osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                     'cityscapes_polygons_to_labels.py')

# Official ids of the 80 COCO 2017 categories.
COCO_IDS = set(range(1, 91)) - {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def _load_converter():
    spec = importlib.util.spec_from_file_location(
        'cityscapes_polygons_to_labels', CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def converter():
    return _load_converter()


@pytest.fixture(scope='module')
def coco_splits():
    splits = {}
    for split in ('train', 'val'):
        ann_file = osp.join(DATA_ROOT, 'annotations',
                            f'instances_{split}.json')
        splits[split] = COCO(ann_file)
    return splits


def test_coco_splits_have_enough_images_boxes_and_val_classes(coco_splits):
    num_images = sum(len(c.imgs) for c in coco_splits.values())
    num_boxes = sum(len(c.anns) for c in coco_splits.values())
    assert num_images >= 15
    assert num_boxes >= 60
    assert len(coco_splits['val'].imgs) >= 5
    val_cats = {a['category_id'] for a in coco_splits['val'].anns.values()}
    assert len(val_cats) >= 5


def test_coco_files_list_the_80_official_categories(coco_splits):
    for coco in coco_splits.values():
        assert set(coco.cats) == COCO_IDS
        names = [cat['name'] for cat in coco.cats.values()]
        assert len(set(names)) == 80
        assert coco.cats[1]['name'] == 'person'
        assert coco.cats[90]['name'] == 'toothbrush'


def test_coco_images_and_boxes(coco_splits):
    for coco in coco_splits.values():
        for img in coco.imgs.values():
            for key in ('id', 'file_name', 'width', 'height'):
                assert key in img
            path = osp.join(DATA_ROOT, 'images', img['file_name'])
            assert osp.isfile(path), path
            with Image.open(path) as pil_img:
                assert pil_img.size == (img['width'], img['height'])
            assert max(img['width'], img['height']) <= 512
            assert len(coco.getAnnIds(imgIds=[img['id']])) >= 1
        for ann in coco.anns.values():
            img = coco.imgs[ann['image_id']]
            x, y, w, h = ann['bbox']
            assert w > 1 and h > 1, ann
            assert x >= 0 and y >= 0, ann
            assert x + w <= img['width'] and y + h <= img['height'], ann
            assert ann['category_id'] in COCO_IDS
            assert ann['iscrowd'] == 0
            assert ann['area'] == pytest.approx(w * h)


def test_coco_splits_disjoint(coco_splits):
    train, val = coco_splits['train'], coco_splits['val']
    assert not set(train.imgs) & set(val.imgs)
    train_files = {img['file_name'] for img in train.imgs.values()}
    val_files = {img['file_name'] for img in val.imgs.values()}
    assert not train_files & val_files
    assert not set(train.anns) & set(val.anns)


def _write_polygons(path, objects, width=10, height=8):
    with open(path, 'w') as f:
        json.dump({
            'imgHeight': height,
            'imgWidth': width,
            'objects': objects
        }, f)


def test_converter_fills_a_polygon_with_its_train_id(tmp_path, converter):
    src = tmp_path / 'a_gtFine_polygons.json'
    square = [[2, 2], [5, 2], [5, 5], [2, 5]]
    _write_polygons(src, [{'label': 'car', 'polygon': square}])
    out = converter.convert_file(str(src))
    assert out == str(tmp_path / 'a_gtFine_labelTrainIds.png')
    label = np.array(Image.open(out))
    assert label.shape == (8, 10)
    assert label.dtype == np.uint8
    expected = np.full((8, 10), 255, dtype=np.uint8)
    expected[2:6, 2:6] = 13  # car
    np.testing.assert_array_equal(label, expected)


def test_converter_later_polygon_wins(tmp_path, converter):
    src = tmp_path / 'b_gtFine_polygons.json'
    _write_polygons(src, [
        {
            'label': 'road',
            'polygon': [[0, 0], [9, 0], [9, 7], [0, 7]]
        },
        {
            'label': 'person',
            'polygon': [[3, 3], [6, 3], [6, 6], [3, 6]]
        },
        {
            'label': 'dynamic',
            'polygon': [[0, 0], [1, 0], [1, 1], [0, 1]]
        },
    ])
    label = np.array(Image.open(converter.convert_file(str(src))))
    expected = np.zeros((8, 10), dtype=np.uint8)  # road
    expected[3:7, 3:7] = 11  # person drawn over the road
    expected[0:2, 0:2] = 255  # void label drawn last
    np.testing.assert_array_equal(label, expected)


def test_converter_unknown_label(tmp_path, converter):
    src = tmp_path / 'c_gtFine_polygons.json'
    _write_polygons(src, [{
        'label': 'flying saucer',
        'polygon': [[0, 0], [3, 0], [3, 3]]
    }])
    with pytest.raises(ValueError) as err:
        converter.convert_file(str(src))
    assert 'flying saucer' in str(err.value)
    assert str(src) in str(err.value)


def test_committed_label_maps_match(tmp_path, converter):
    polygon_files = converter.find_polygon_files(CITYSCAPES_ROOT)
    assert len(polygon_files) >= 8
    splits = {'train': 0, 'val': 0}
    for polygon_file in polygon_files:
        rel = osp.relpath(polygon_file, osp.join(CITYSCAPES_ROOT, 'gtFine'))
        split = rel.split(osp.sep)[0]
        splits[split] += 1
        name = osp.basename(polygon_file)[:-len('_gtFine_polygons.json')]
        image = osp.join(CITYSCAPES_ROOT, 'leftImg8bit', osp.dirname(rel),
                         f'{name}_leftImg8bit.jpg')
        assert osp.isfile(image), image
        committed = polygon_file.replace('_gtFine_polygons.json',
                                         '_gtFine_labelTrainIds.png')
        assert osp.isfile(committed), committed
        fresh = converter.convert_file(polygon_file,
                                       str(tmp_path / f'{name}.png'))
        committed_arr = np.array(Image.open(committed))
        fresh_arr = np.array(Image.open(fresh))
        np.testing.assert_array_equal(committed_arr, fresh_arr)
        with Image.open(image) as img:
            assert img.size == (committed_arr.shape[1], committed_arr.shape[0])
        assert set(np.unique(committed_arr)) <= set(range(19)) | {255}
    assert splits['val'] >= 2
    label_files = glob.glob(
        osp.join(CITYSCAPES_ROOT, 'gtFine', '*', '*',
                 '*_gtFine_labelTrainIds.png'))
    assert len(label_files) == len(polygon_files)
