"""The datasets a config names: their folders and annotation files,
checked before anything is built.

mmengine finds a missing dataset when it builds the dataloaders, and a
truncated annotation file, one without a usable box or an image of 0 bytes
when the dataset is loaded or mid-epoch. Each check here fails at once with
:class:`~mmprockd.utils.checkpoint_io.InputCheckError`, naming the key and
the file.

Example::

    check_data_paths(cfg, ['train_dataloader', 'val_dataloader'])
    warnings = check_annotations(cfg, ['train_dataloader'])
"""
import json
import os
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

from mmprockd.utils.checkpoint_io import InputCheckError, is_remote

DATA_HINT = 'see README.md, section Data'


def iter_dataset_cfgs(dataset: Any,
                      prefix: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """Walk a dataset config and the datasets that wrappers hold.

    ``RepeatDataset``/``ClassBalancedDataset`` keep theirs in ``dataset``,
    ``ConcatDataset`` in ``datasets``.

    Args:
        dataset: A dataset config (dict); anything else yields nothing.
        prefix (str): Key path of ``dataset``, used in messages.

    Yields:
        tuple[str, dict]: key path and config of every dataset, outermost
        first.
    """
    if not isinstance(dataset, dict):
        return
    yield prefix, dataset
    yield from iter_dataset_cfgs(dataset.get('dataset'), f'{prefix}.dataset')
    inner = dataset.get('datasets')
    if isinstance(inner, (list, tuple)):
        for i, item in enumerate(inner):
            yield from iter_dataset_cfgs(item, f'{prefix}.datasets[{i}]')


def _dataset_paths(dataset: Dict[str, Any]) -> Iterator[Tuple[str, str]]:
    """(key, local path) pairs a dataset reads, joined as mmengine joins
    them: ``ann_file`` and ``data_prefix`` values under ``data_root``."""
    root = dataset.get('data_root') or ''
    if not isinstance(root, str):
        return
    if root:
        yield 'data_root', root
    ann_file = dataset.get('ann_file')
    if isinstance(ann_file, str) and ann_file:
        yield 'ann_file', osp.join(root, ann_file)
    prefix = dataset.get('data_prefix')
    if isinstance(prefix, str):
        prefix = {'': prefix}
    if isinstance(prefix, dict):
        for name, value in prefix.items():
            if isinstance(value, str) and value:
                key = f'data_prefix.{name}' if name else 'data_prefix'
                yield key, osp.join(root, value)


def _loader_datasets(cfg: Config, dataloaders: Sequence[str]
                     ) -> Iterator[Tuple[str, str, Dict[str, Any]]]:
    """``(loader, where, dataset cfg)`` for every dataset (wrappers
    unwrapped) of the named dataloaders the config has."""
    for loader in dataloaders:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, dict):
            continue
        for where, dataset in iter_dataset_cfgs(
                loader_cfg.get('dataset'), f'{loader}.dataset'):
            yield loader, where, dataset


def check_data_paths(cfg: Config, dataloaders: Sequence[str]) -> None:
    """Fail when a dataset's root, annotation file or image folder is
    missing.

    Args:
        cfg (Config): The merged config.
        dataloaders (Sequence[str]): Top-level dataloader keys to check,
            e.g. ``['train_dataloader', 'val_dataloader']``; missing or
            ``None`` ones are skipped.

    Raises:
        InputCheckError: listing every missing path with its key.
    """
    problems = []
    for _, where, dataset in _loader_datasets(cfg, dataloaders):
        for key, path in _dataset_paths(dataset):
            if is_remote(path) or osp.exists(path):
                continue
            problems.append(f'{where}.{key} = {path!r} does not exist')
            if key == 'data_root':
                break  # what lies under it is missing too
    if problems:
        raise InputCheckError('missing data: ' + '; '.join(problems) +
                              f' ({DATA_HINT}; point the config at your '
                              'copy with --cfg-options)')


def _coco_box_problem(ann: Any) -> bool:
    """Whether mmdet's ``CocoDataset`` drops this box: no 4-number bbox,
    width or height under 1 pixel, or an area of zero or less."""
    if not isinstance(ann, dict):
        return True
    box = ann.get('bbox')
    if not (isinstance(box, (list, tuple)) and len(box) == 4
            and all(isinstance(v, (int, float)) for v in box)):
        return True
    area = ann.get('area', box[2] * box[3])
    return box[2] < 1 or box[3] < 1 or not area > 0


def _check_image_files(images: List[Any], img_dir: str, path: str,
                       where: str) -> None:
    """Fail when an image a COCO file lists is missing or empty (0 bytes):
    the dataloader would fail on it mid-epoch, in cv2, naming no file."""
    bad = []
    for image in images:
        name = image.get('file_name') if isinstance(image, dict) else None
        if not isinstance(name, str):
            continue
        file = osp.join(img_dir, name)
        try:
            size = os.stat(file).st_size
        except OSError:
            bad.append(f'{file} (image id {image.get("id")}): missing')
            continue
        if size == 0:
            bad.append(f'{file} (image id {image.get("id")}): empty, 0 '
                       'bytes')
    if bad:
        more = f' and {len(bad) - 5} more' if len(bad) > 5 else ''
        raise InputCheckError(
            f'{where} = {path} lists {len(bad)} image(s) that cannot be '
            f'read: {"; ".join(bad[:5])}{more}. Restore the files, or drop '
            'their entries (and their annotations) from the file')


def check_annotation_file(path: str,
                          where: str,
                          need_boxes: bool,
                          img_dir: Optional[str] = None) -> Optional[str]:
    """Fail for an annotation JSON that no dataset could train on.

    Args:
        path (str): The local ``.json`` file.
        where (str): Its config key, for messages.
        need_boxes (bool): A COCO file must hold at least one usable box
            (the training set).
        img_dir (str, optional): The folder of a COCO file's images: each
            must exist and not be empty.

    Returns:
        str or None: a warning to log (boxes that will be dropped).

    Raises:
        InputCheckError: not valid JSON (a truncated file), no images, no
            samples, or (``need_boxes``) no box of positive size.
    """
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        data = json.loads(raw)
    except ValueError as err:
        detail = (f'{err.msg} at line {err.lineno} column {err.colno}'
                  if isinstance(err, json.JSONDecodeError) else str(err))
        raise InputCheckError(
            f'{where} = {path} is not valid JSON ({detail}; '
            f'{len(raw)} bytes: truncated?); expected a COCO-style '
            'annotation file') from None
    if isinstance(data, dict) and 'data_list' in data:  # mmengine format
        if not data['data_list']:
            raise InputCheckError(
                f'{where} = {path}: data_list is empty; expected at least '
                'one sample')
        return None
    if not (isinstance(data, dict) and 'images' in data):
        return None  # another format: left to the dataset
    images = data.get('images') or []
    anns = data.get('annotations')
    if not images:
        raise InputCheckError(f'{where} = {path}: its "images" list is '
                              'empty; expected at least one image')
    if img_dir is not None and not is_remote(img_dir):
        _check_image_files(images, img_dir, path, where)
    if not need_boxes or not isinstance(anns, list):
        return None
    dropped = [a for a in anns if _coco_box_problem(a)]
    usable = len(anns) - len(dropped)
    if usable == 0:
        what = ('its "annotations" list is empty' if not anns else
                f'all its {len(anns)} boxes have zero or negative size')
        raise InputCheckError(
            f'{where} = {path}: no usable box: {what}; expected at least '
            'one "bbox": [x, y, w, h] with w >= 1 and h >= 1 (and "area" '
            '> 0)')
    if dropped:
        ids = [a.get('id') for a in dropped[:5] if isinstance(a, dict)]
        return (f'{where} = {path}: {len(dropped)} of its {len(anns)} boxes '
                'have zero or negative size (w or h < 1, or area <= 0) and '
                f'are dropped by the dataset, e.g. annotation ids {ids}')
    return None


def check_annotations(cfg: Config, dataloaders: Sequence[str]) -> List[str]:
    """:func:`check_annotation_file` on every local ``.json`` annotation
    file of the datasets; boxes are required of ``train_dataloader``'s, and
    a COCO file's images (under ``data_prefix.img``) must exist and not be
    empty.

    Returns:
        list[str]: warnings to log (dropped boxes).

    Raises:
        InputCheckError: naming the key and the file.
    """
    warnings = []
    for loader, where, dataset in _loader_datasets(cfg, dataloaders):
        paths = dict(_dataset_paths(dataset))
        img_dir = paths.get('data_prefix.img')
        for key, path in paths.items():
            if key != 'ann_file' or is_remote(path) or \
                    not path.endswith('.json') or not osp.isfile(path):
                continue
            warning = check_annotation_file(path, f'{where}.ann_file',
                                            loader == 'train_dataloader',
                                            img_dir)
            if warning:
                warnings.append(warning)
    return warnings
