# Copyright (c) mmprockd contributors. All rights reserved.
"""Rasterise Cityscapes polygon annotations into ``labelTrainIds`` maps.

Every ``*_gtFine_polygons.json`` file found below ``<root>/gtFine`` (or
below ``<root>`` itself when there is no ``gtFine`` folder) is converted
into a single-channel PNG ``*_gtFine_labelTrainIds.png`` next to it:

* pixels start as 255 (ignore);
* the polygons are filled in the order in which they are listed, so a later
  polygon is drawn over an earlier one (the Cityscapes convention, where
  the background is listed first and the foreground last);
* the 19 Cityscapes training classes get their trainId (0..18); the other
  official Cityscapes labels (``sky`` is a training class, ``dynamic`` or
  ``ground`` are not) are known but written as 255;
* a label that is not a Cityscapes label name raises ``ValueError`` naming
  the file and the label.

Usage::

    python tools/dataset_converters/cityscapes_polygons_to_labels.py \
        data/prockd_demo/cityscapes
"""
import argparse
import json
import os
import os.path as osp

from PIL import Image, ImageDraw

IGNORE_INDEX = 255
POLYGON_SUFFIX = '_gtFine_polygons.json'
LABEL_SUFFIX = '_gtFine_labelTrainIds.png'

# The 19 classes used for training and evaluation on Cityscapes.
TRAIN_IDS = {
    'road': 0,
    'sidewalk': 1,
    'building': 2,
    'wall': 3,
    'fence': 4,
    'pole': 5,
    'traffic light': 6,
    'traffic sign': 7,
    'vegetation': 8,
    'terrain': 9,
    'sky': 10,
    'person': 11,
    'rider': 12,
    'car': 13,
    'truck': 14,
    'bus': 15,
    'train': 16,
    'motorcycle': 17,
    'bicycle': 18,
}

# Official Cityscapes labels that are not evaluated: they are valid in a
# polygon file but end up as ``IGNORE_INDEX`` in the label map.
VOID_LABELS = (
    'unlabeled',
    'ego vehicle',
    'rectification border',
    'out of roi',
    'static',
    'dynamic',
    'ground',
    'parking',
    'rail track',
    'guard rail',
    'bridge',
    'tunnel',
    'polegroup',
    'caravan',
    'trailer',
    'license plate',
)


def label_to_train_id(label, source='<unknown>'):
    """Map a Cityscapes label name to its trainId.

    Group labels such as ``persongroup`` or ``cargroup`` are treated like
    their base class, as in the Cityscapes tools.

    Args:
        label (str): label name from a polygon file.
        source (str): file the label comes from, used in error messages.

    Returns:
        int: the trainId, or ``IGNORE_INDEX`` for a void label.
    """
    name = label
    if name not in TRAIN_IDS and name not in VOID_LABELS:
        if name.endswith('group') and name[:-len('group')] in TRAIN_IDS:
            name = name[:-len('group')]
    if name in TRAIN_IDS:
        return TRAIN_IDS[name]
    if name in VOID_LABELS:
        return IGNORE_INDEX
    raise ValueError(f'{source}: unknown Cityscapes label "{label}"')


def polygons_to_label_map(annotation, source='<unknown>'):
    """Rasterise one Cityscapes polygon annotation.

    Args:
        annotation (dict): parsed polygon JSON with ``imgWidth``,
            ``imgHeight`` and ``objects``.
        source (str): file the annotation comes from, used in messages.

    Returns:
        PIL.Image.Image: mode ``L`` image holding trainIds.
    """
    try:
        width = int(annotation['imgWidth'])
        height = int(annotation['imgHeight'])
    except KeyError as err:
        raise ValueError(f'{source}: missing key {err}') from None
    label_map = Image.new('L', (width, height), IGNORE_INDEX)
    draw = ImageDraw.Draw(label_map)
    for index, obj in enumerate(annotation.get('objects', [])):
        if obj.get('deleted'):
            continue
        if 'label' not in obj or 'polygon' not in obj:
            raise ValueError(
                f'{source}: object {index} needs "label" and "polygon"')
        train_id = label_to_train_id(obj['label'], source)
        points = [(float(x), float(y)) for x, y in obj['polygon']]
        if len(points) < 3:
            raise ValueError(f'{source}: polygon {index} ("{obj["label"]}") '
                             f'has fewer than 3 points')
        draw.polygon(points, fill=train_id, outline=train_id)
    return label_map


def convert_file(polygon_file, out_file=None):
    """Convert one ``*_gtFine_polygons.json`` file into a label PNG.

    Args:
        polygon_file (str): path of the polygon JSON file.
        out_file (str, optional): output PNG path; by default the polygon
            suffix is replaced by ``_gtFine_labelTrainIds.png``.

    Returns:
        str: the path of the written PNG.
    """
    if out_file is None:
        if not polygon_file.endswith(POLYGON_SUFFIX):
            raise ValueError(
                f'{polygon_file}: expected a name ending in {POLYGON_SUFFIX}')
        out_file = polygon_file[:-len(POLYGON_SUFFIX)] + LABEL_SUFFIX
    with open(polygon_file, encoding='utf-8') as f:
        annotation = json.load(f)
    label_map = polygons_to_label_map(annotation, polygon_file)
    label_map.save(out_file)
    return out_file


def find_polygon_files(root):
    """All polygon files below ``root/gtFine`` (or ``root``), sorted."""
    search_root = osp.join(root, 'gtFine')
    if not osp.isdir(search_root):
        search_root = root
    found = []
    for dirpath, _, filenames in os.walk(search_root):
        for name in filenames:
            if name.endswith(POLYGON_SUFFIX):
                found.append(osp.join(dirpath, name))
    return sorted(found)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert Cityscapes polygon JSON files into '
        'labelTrainIds PNG files')
    parser.add_argument(
        'root', help='Cityscapes-style folder (with a gtFine sub-folder)')
    return parser.parse_args()


def main():
    args = parse_args()
    if not osp.isdir(args.root):
        raise SystemExit(f'{args.root} is not a directory')
    files = find_polygon_files(args.root)
    if not files:
        raise SystemExit(f'no *{POLYGON_SUFFIX} files found in {args.root}')
    for polygon_file in files:
        out_file = convert_file(polygon_file)
        print(f'{polygon_file} -> {out_file}')
    print(f'converted {len(files)} file(s)')


if __name__ == '__main__':
    main()
