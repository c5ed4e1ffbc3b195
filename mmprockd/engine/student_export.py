"""Turn a ProtoDistiller training state into a plain student: the weights
that plain mmdet/mmseg/mmpretrain load, and the config they need.

Used by :class:`StudentCheckpointHook` during training and by
``tools/model_converters/prockd_to_student.py`` afterwards.
"""
import copy
import io
import os
import os.path as osp
from collections import OrderedDict
from typing import Callable, Dict, Optional

import torch
from mmengine.config import Config

PREFIX = 'student.'
# mmprockd's checkpoint hook in ``default_hooks`` (tools/train.py's swap):
# mmengine's own CheckpointHook writes the same files
_ATOMIC = ('mmprockd.AtomicCheckpointHook', 'AtomicCheckpointHook')


def _ours(hook: dict) -> bool:
    """Whether a hook config names an mmprockd hook."""
    return str(hook.get('type', '')).startswith('mmprockd.')


def student_state_dict(state_dict: Dict[str, torch.Tensor]) -> OrderedDict:
    """Keys under ``student.`` with the prefix stripped (``module.`` from DDP
    is removed first); teacher, learner, augment and adapter keys are
    dropped.

    Raises:
        KeyError: when no key is under ``student.`` (not a ProtoDistiller
            checkpoint).
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
        if key.startswith(PREFIX):
            out[key[len(PREFIX):]] = value
    if not out:
        raise KeyError('no "student." keys in the state dict: not a '
                       f'ProtoDistiller checkpoint (first keys: '
                       f'{list(state_dict)[:5]})')
    return out


_DISTILLERS = ('mmprockd.ProtoDistiller', 'ProtoDistiller',
               'mmprockd.PKDDistiller', 'PKDDistiller',
               'mmprockd.LogitKDDistiller', 'LogitKDDistiller')


def student_config(cfg: Config) -> Config:
    """The training config with ``model`` replaced by the student.

    ``custom_imports`` of mmprockd is kept only when the student itself uses
    mmprockd modules (the augment plugin); every mmprockd hook is dropped
    (``custom_hooks``, whoever added them) or, in ``default_hooks``,
    replaced by mmengine's own, so plain upstream tools load the config
    without mmprockd.
    """
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    if model.get('type') not in _DISTILLERS:
        raise ValueError('student_config: the config model is '
                         f'{model.get("type")!r}, not a ProtoDistiller, '
                         'PKDDistiller or LogitKDDistiller')
    cfg.model = model.student
    if 'mmprockd.' not in Config(dict(model=cfg.model)).pretty_text:
        imports = cfg.get('custom_imports', {}).get('imports', [])
        rest = [m for m in imports if not m.startswith('mmprockd')]
        if rest:
            cfg.custom_imports.imports = rest
        elif 'custom_imports' in cfg:
            cfg.pop('custom_imports')
    hooks = [h for h in cfg.get('custom_hooks', []) if not _ours(h)]
    if 'custom_hooks' in cfg:
        cfg.custom_hooks = hooks
    cfg.pop('prockd_hooks', None)  # configs/_base_/prockd_runtime.py
    # the bases' variables (``mobilenetv2_in1k_teacher = dict(...)``,
    # ``prockd_distiller = dict(...)``): nothing of the student refers to
    # them, and they would name mmprockd types in a plain student config
    ours = ('mmprockd.FrozenTeacher', 'FrozenTeacher') + _DISTILLERS
    for key in [
            k for k, v in cfg.items()
            if k != 'model' and isinstance(v, dict) and v.get('type') in ours
    ]:
        cfg.pop(key)
    # tools/train.py's swap: mmengine's own hook writes the same files
    default_hooks = cfg.get('default_hooks', {})
    checkpoint = default_hooks.get('checkpoint')
    if isinstance(checkpoint, dict) and checkpoint.get('type') in _ATOMIC:
        checkpoint['type'] = 'CheckpointHook'
    for name in [
            k for k, h in default_hooks.items()
            if isinstance(h, dict) and _ours(h)
    ]:
        default_hooks.pop(name)
    cfg.load_from = None
    cfg.resume = False
    return cfg


def make_readable(path: str) -> None:
    """Give a ``mkstemp`` file (mode 0600) the permissions of a normal
    ``open()``: 0666 minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _atomic_write(write: Callable[[str], None],
                  path: str,
                  nbytes: Optional[int] = None) -> None:
    """``write(tmp)`` to ``<path>.tmp<pid>`` beside ``path``, flush it to
    disk, then rename it over ``path``: a crash never leaves a half-written
    file under the name. On any error the temporary file is removed; one
    left by a killed process is removed when the next run starts
    (:func:`mmprockd.engine.remove_stale_tmp_files`). A full disk raises
    :class:`~mmprockd.utils.atomic_write.DiskFullError` naming ``path``
    and ``nbytes``."""
    from mmprockd.utils.atomic_write import (DiskFullError, fsync_file,
                                             is_disk_full, tmp_path)
    path = osp.abspath(path)
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = tmp_path(path)
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        if osp.lexists(tmp):
            os.remove(tmp)
        if is_disk_full(err):
            raise DiskFullError(path, nbytes) from err
        raise


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (what the atomic writers call)."""
    with open(path, 'wb') as f:
        f.write(data)


def atomic_save(obj, path: str) -> None:
    """``torch.save`` atomically (see :func:`_atomic_write`)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    _atomic_write(lambda tmp: write_bytes(tmp, data), path, len(data))


def atomic_write_text(text: str, path: str) -> None:
    """Write a text file atomically (see :func:`_atomic_write`)."""
    data = text.encode()
    _atomic_write(lambda tmp: write_bytes(tmp, data), path, len(data))


def export_student(state_dict: Dict[str, torch.Tensor],
                   out_file: str,
                   meta: Optional[dict] = None,
                   cfg: Optional[Config] = None) -> Optional[str]:
    """Write a student-only checkpoint, and its config beside it.

    Returns:
        str | None: the path of the student config, if ``cfg`` was given.
    """
    atomic_save(
        dict(state_dict=student_state_dict(state_dict), meta=meta or {}),
        out_file)
    if cfg is None:
        return None
    cfg_path = osp.join(
        osp.dirname(osp.abspath(out_file)), 'student_config.py')
    atomic_write_text(student_config(cfg).pretty_text, cfg_path)
    return cfg_path
