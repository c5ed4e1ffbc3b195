"""Reading a checkpoint safely, and why a file is not one.

The part of the input checks that models and engine code use too:
:func:`checkpoint_error_reason` turns what ``torch.load`` raised into one
line without torch's advice to load with ``weights_only=False``;
:func:`load_checkpoint_file` and :func:`check_checkpoint` load a local file
weights-only, their errors an :class:`InputCheckError` naming the key and
the file. Nothing here imports mmengine or the command-line checks of
:mod:`mmprockd.preflight`.
"""
import os.path as osp
import re
from typing import Any, List, Optional


class InputCheckError(ValueError):
    """A command-line or config input the tools cannot work with."""


def is_remote(path: str) -> bool:
    """Whether ``path`` names a URL or a storage backend, not a local file."""
    return '://' in path


_ANSI = re.compile(r'\x1b\[[0-9;]*m')


def checkpoint_error_reason(err: BaseException) -> str:
    """Why torch could not load a file, in one line, without torch's advice
    to load it with ``weights_only=False`` or to allow-list the class (both
    would run whatever the file pickles).

    Args:
        err (BaseException): What ``torch.load`` raised.

    Returns:
        str: the reason.
    """
    text = _ANSI.sub('', str(err))
    found = re.search(r'Unsupported global: GLOBAL (\S+)', text)
    if found:
        return (f'it pickles {found.group(1)}, which a weights-only load '
                'refuses (only tensors, containers and mmengine\'s '
                'checkpoint classes are allowed): it was not saved as '
                'weights, or it is not safe to load')
    found = re.search(r'WeightsUnpickler error:\s*(\S[^\n]*)', text)
    if found:
        return f'unpickling failed: {found.group(1).strip()}'
    lines = [
        line.strip() for line in text.splitlines() if line.strip()
        and 'weights_only' not in line and 'safe_globals' not in line
    ]
    return lines[0] if lines else type(err).__name__


def load_checkpoint_file(path: str, key: str, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``, errors as
    :class:`InputCheckError` naming ``key`` and the file.

    Args:
        path (str): A local file.
        key (str): What the path was given as, for messages.
        mmap (bool): Map the file instead of reading it (a cheap check of
            a large file); a file in torch's legacy format is read.
    """
    import torch
    try:
        if mmap:
            try:
                return torch.load(
                    path, map_location='cpu', weights_only=True, mmap=True)
            except RuntimeError as err:
                if 'mmap' not in str(err):
                    raise
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises many kinds for a bad file
        raise InputCheckError(
            f'{key}: {path} is not a PyTorch/mmengine checkpoint: '
            f'{checkpoint_error_reason(err)}') from None


def check_checkpoint(path: str,
                     key: str = 'load_from',
                     mmap: bool = False) -> Optional[dict]:
    """Fail when a local checkpoint is missing or is not one.

    The file is loaded with ``weights_only=True``; ``import mmprockd``
    allow-lists the few classes that full mmengine checkpoints hold, so
    anything else pickled in the file is refused. URLs are left to mmengine.

    Args:
        path (str): The checkpoint path.
        key (str): What the path was given as (``load_from``,
            ``--resume``, ``checkpoint``), used in messages.
        mmap (bool): Map the file rather than read it (see
            :func:`load_checkpoint_file`).

    Returns:
        dict or None: the loaded checkpoint, or None for a URL.

    Raises:
        InputCheckError: naming the file and the reason.
    """
    if is_remote(path):
        return None
    if not osp.isfile(path):
        raise InputCheckError(f'{key}: checkpoint file {path!r} does not '
                              'exist')
    # importing this module ran ``mmprockd/__init__``, which allow-listed
    # mmengine's checkpoint globals
    checkpoint = load_checkpoint_file(path, key, mmap=mmap)
    if not isinstance(checkpoint, dict):
        raise InputCheckError(
            f'{key}: {path} is not a PyTorch/mmengine checkpoint: it holds '
            f'a {type(checkpoint).__name__}, not a dict of weights')
    return checkpoint


def state_dict_keys(checkpoint: dict) -> List[str]:
    """Parameter names of a checkpoint, with or without a ``state_dict``.

    Args:
        checkpoint (dict): A loaded checkpoint.

    Returns:
        list[str]: the keys, ``module.`` prefixes (DDP) removed.
    """
    state = checkpoint.get('state_dict', checkpoint)
    return [
        k[len('module.'):] if k.startswith('module.') else k for k in state
    ]


def weight_keys(checkpoint: dict) -> List[str]:
    """The weight names of a checkpoint as ``FrozenTeacher`` reads it: its
    ``state_dict`` or ``model`` entry, else the dict itself."""
    for name in ('state_dict', 'model'):
        if isinstance(checkpoint.get(name), dict):
            return list(checkpoint[name])
    return list(checkpoint)
