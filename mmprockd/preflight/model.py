"""The checkpoints and settings of a config's model, checked before
anything is built.

The model loads its teacher's ``ckpt``, its ``student_ckpt`` and
``branch_ckpt`` and ``Pretrained`` init weights when it is built or
initialised, after the work dir exists; a wrong file is found then, or,
loaded with ``strict=False``, never. Each check here fails at once with
:class:`~mmprockd.utils.checkpoint_io.InputCheckError`, naming the key, the
file and the fix.
"""
import copy
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config

from mmprockd.utils.checkpoint_io import (InputCheckError, check_checkpoint,
                                          checkpoint_error_reason, is_remote,
                                          state_dict_keys, weight_keys)


def _iter_dicts(value: Any, prefix: str) -> Iterator[Tuple[str, dict]]:
    if isinstance(value, dict):
        yield prefix, value
        for k, v in value.items():
            yield from _iter_dicts(v, f'{prefix}.{k}')
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _iter_dicts(v, f'{prefix}[{i}]')


def model_checkpoint_keys(cfg: Config) -> List[Tuple[str, str]]:
    """(key, path) of the checkpoints the model config loads when built:
    a teacher's ``ckpt``, a distiller's ``student_ckpt`` and
    ``branch_ckpt``, a ``Pretrained`` ``init_cfg``'s ``checkpoint``."""
    found = []
    for where, node in _iter_dicts(cfg.get('model'), 'model'):
        for key in ('ckpt', 'student_ckpt', 'branch_ckpt'):
            if isinstance(node.get(key), str):
                found.append((f'{where}.{key}', node[key]))
        if node.get('type') == 'Pretrained' and isinstance(
                node.get('checkpoint'), str):
            found.append((f'{where}.checkpoint', node['checkpoint']))
    return found


def _check_url(path: str, key: str) -> dict:
    """Download an http(s) checkpoint into torch's hub cache (where the
    model's own load finds it) and load it weights-only, so that an
    unreachable or wrong URL fails before the work dir exists.

    Returns:
        dict: the loaded checkpoint.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    try:
        return CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except Exception as err:  # network, HTTP status, not a checkpoint
        raise InputCheckError(
            f'{key}: {path} could not be downloaded or read: '
            f'{checkpoint_error_reason(err)}. Check the URL and the '
            'network, or download the file and give its local path') from None


# how ``ProtoDistiller.init_weights`` renames the keys of ``student_ckpt``
# (``revise_keys`` of mmengine's ``load_checkpoint``): a DDP checkpoint's
# ``module.`` and a distiller checkpoint's ``student.`` go
STUDENT_REVISE_KEYS = ((r'^module\.', ''), (r'^student\.', ''))


def student_weight_shapes(
    model: dict, default_scope: Optional[str]
) -> Optional[Dict[str, Optional[Tuple[int, ...]]]]:
    """The names and shapes of the weights of a distiller's
    ``model.student``, from the student built on the meta device (no
    memory, no init, no weights loaded).

    Args:
        model (dict): The distiller's config.
        default_scope (str, optional): The config's ``default_scope``, in
            which the student's bare types are found.

    Returns:
        dict or None: ``{name: shape}``; None when there is no student
        config or it does not build (the model's own build reports that).
    """
    import torch
    from mmengine.registry import DefaultScope

    from mmprockd.registry import MODELS
    student = model.get('student')
    if not isinstance(student, dict):
        return None
    try:
        with DefaultScope.overwrite_default_scope(default_scope), \
                torch.device('meta'):
            built = MODELS.build(copy.deepcopy(student))
    except Exception:  # reported, with its key, when the model is built
        return None
    return {k: tuple(v.shape) for k, v in built.state_dict().items()}


def check_student_checkpoint(checkpoint: dict, path: str, key: str,
                             model: dict,
                             default_scope: Optional[str]) -> None:
    """Fail when more than half of the student's weights are not in its
    ``student_ckpt``, by name (after the ``module.`` and ``student.``
    prefixes go, as the distiller loads it) and shape.

    The distiller loads the file with ``strict=False``: a checkpoint of
    another model loads nothing, with a warning in the log, and the run
    trains the student from its init. A few missing or reshaped weights
    (a head for another number of classes) are left to that warning.

    Args:
        checkpoint (dict): The loaded ``student_ckpt``.
        path (str): Its file or URL, for messages.
        key (str): Its config key (``model.student_ckpt``).
        model (dict): The distiller's config.
        default_scope (str, optional): The config's ``default_scope``.

    Raises:
        InputCheckError: naming the key, the file, weights of the student
            it lacks (or holds with another shape) and keys it holds.
    """
    expected = student_weight_shapes(model, default_scope)
    if not expected:
        return
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        state = {}
    given = {}
    for name, value in state.items():
        for pattern, repl in STUDENT_REVISE_KEYS:
            name = re.sub(pattern, repl, name)
        shape = getattr(value, 'shape', None)
        given[name] = None if shape is None else tuple(shape)
    bad = []
    for name, shape in expected.items():
        if name not in given:
            bad.append(repr(name))
        elif given[name] != shape:
            bad.append(f'{name!r} ({list(given[name] or [])} in the file, '
                       f'{list(shape)} in the student)')
    if len(bad) <= len(expected) / 2:
        return
    student_key = key.rpartition('.')[0] + '.student'
    student_type = model['student'].get('type')
    keys = list(state)
    raise InputCheckError(
        f'{key}: {path} does not fit {student_key} ({student_type}): '
        f'{len(bad)} of its {len(expected)} weights are not in it, e.g. '
        f'[{", ".join(bad[:3])}]; the file holds {len(keys)}, e.g. '
        f'{keys[:3]}. Expected a checkpoint of this student: a plain '
        f'checkpoint of {student_key} (mmdet, mmseg or mmpretrain), or a '
        'ProtoDistiller checkpoint of it (its student.* weights are '
        f'taken); or remove {key}')


def check_model_checkpoints(cfg: Config) -> None:
    """Fail when a checkpoint the model loads at build is missing, is not
    a checkpoint (random bytes, a pickled object), cannot be downloaded,
    holds no weight under the teacher's ``ckpt_prefix``, or, for a
    ``student_ckpt``, lacks most of the student's weights
    (:func:`check_student_checkpoint`).

    Each local file is mapped (``mmap``) and loaded ``weights_only``, so a
    large teacher costs little; an http(s) URL is downloaded into torch's
    hub cache now (the model's own load then reads it from there);
    ``mmprockd://`` weights are left to the model.

    Raises:
        InputCheckError: naming the key and the file.
    """
    loaded = {}
    for key, path in model_checkpoint_keys(cfg):
        if path.startswith(('http://', 'https://')):
            loaded[key] = _check_url(path, key)
        else:
            loaded[key] = check_checkpoint(path, key, mmap=True)
    for where, node in _iter_dicts(cfg.get('model'), 'model'):
        checkpoint = loaded.get(f'{where}.student_ckpt')
        if isinstance(checkpoint, dict):
            check_student_checkpoint(checkpoint, node['student_ckpt'],
                                     f'{where}.student_ckpt', node,
                                     cfg.get('default_scope'))
        prefix = node.get('ckpt_prefix')
        checkpoint = loaded.get(f'{where}.ckpt')
        if not isinstance(prefix, str) or not prefix or checkpoint is None:
            continue
        keys = weight_keys(checkpoint)
        if not any(k.startswith(prefix) for k in keys):
            raise InputCheckError(
                f'{where}.ckpt: {node["ckpt"]} holds no weight under '
                f'{where}.ckpt_prefix = {prefix!r} (its first keys: '
                f'{keys[:5]}); expected a checkpoint of the teacher\'s '
                'backbone, or set ckpt_prefix to the prefix its keys have')


# what a stage-1 checkpoint's prototype branch was trained with and a
# stage 2 that loads it (``model.branch_ckpt``) must use too: the teacher
# (its layers and input scale and statistics), the branch's modules and
# the images' normalisation (of the preprocessors, only NORM_KEYS: a stage
# 2 may add batch augments such as Mixup). Weight paths do not count.
BRANCH_SETTINGS = ('teacher', 'learner', 'augment', 'level_adapter',
                   'student_channels', 'data_preprocessor',
                   'student.data_preprocessor')
NORM_KEYS = ('mean', 'std', 'to_rgb', 'bgr_to_rgb', 'rgb_to_bgr')


def _settings(model: Any) -> Dict[str, Any]:
    """The :data:`BRANCH_SETTINGS` of a model config, as a model-shaped
    dict (absent ones left out)."""
    out: Dict[str, Any] = {}
    for key in BRANCH_SETTINGS:
        node, parts = model, key.split('.')
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and parts[-1] == 'data_preprocessor':
            node = {k: node[k] for k in NORM_KEYS if k in node}
        if node is not None:
            target = out
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = node
    return out


def check_branch_checkpoint(cfg: Config) -> None:
    """Fail when ``model.branch_ckpt`` (stage 2 of a two-stage run) is not
    a stage-1 checkpoint of this config's branch.

    The file must exist and load weights-only (:func:`check_checkpoint`),
    hold the prototype branch (``learner.*`` tensors), and have been
    written by a stage 1 whose :data:`BRANCH_SETTINGS` equal this
    config's, as the config text that mmengine keeps in its ``meta``
    gives them. A stage 1 with another teacher setup can leave tensors of
    the same shapes: the model would load them without complaint and train
    on a branch that does not match its teacher.

    Raises:
        InputCheckError: naming ``model.branch_ckpt``, the file and each
            setting that differs.
    """
    from mmprockd.utils.fingerprint import model_cfg_diff, model_cfg_from_meta
    model = cfg.get('model')
    path = model.get('branch_ckpt') if isinstance(model, dict) else None
    if not isinstance(path, str) or is_remote(path):
        return
    key = 'model.branch_ckpt'
    checkpoint = check_checkpoint(path, key, mmap=True)
    if not any(k.startswith('learner.') for k in state_dict_keys(checkpoint)):
        raise InputCheckError(
            f'{key}: {path} holds no prototype branch (no learner.* '
            'tensors); expected a checkpoint of a stage-1 ProtoDistiller '
            'run (its epoch_N.pth or iter_N.pth, not a student export)')
    old = model_cfg_from_meta(checkpoint.get('meta') or {})
    if old is None:
        return  # no config text to compare with: shapes are checked at build
    diff = model_cfg_diff(_settings(old), _settings(model), limit=100)
    if diff:
        keys = '; '.join(f'{k}: {a!r} in the checkpoint, {b!r} in the '
                         'config' for k, a, b in diff)
        raise InputCheckError(
            f'{key}: {path} was written by a stage 1 with other settings: '
            f'{keys}. Point {key} at a stage 1 trained with this config\'s '
            'teacher, branch and input settings, or train one')


def check_preprocessor_std(cfg: Config) -> None:
    """Fail when a normalisation (a data preprocessor's or a teacher's
    ``mean``/``std``) divides by a zero or negative ``std``: every image
    would become NaN or inf, and the run would train on it until the loss
    diverged.

    Raises:
        InputCheckError: naming the key and its value.
    """
    nodes = list(_iter_dicts(cfg.get('model'), 'model'))
    if isinstance(cfg.get('data_preprocessor'), dict):
        nodes.append(('data_preprocessor', cfg.data_preprocessor))
    for where, node in nodes:
        std = node.get('std')
        if std is None or 'mean' not in node:
            continue
        values = list(std) if isinstance(std, (list, tuple)) else [std]
        if not all(isinstance(v, (int, float)) and v > 0 for v in values):
            raise InputCheckError(
                f'{where}.std = {std!r}: the images are divided by it, so '
                'every std must be positive (e.g. [58.395, 57.12, 57.375] '
                'for ImageNet statistics on 0-255 pixels)')


def check_student_channels(cfg: Config) -> None:
    """Fail when a distiller's ``student_channels`` cannot match its
    student's neck.

    Checked from the config where it can be: a neck with ``out_channels``
    and ``num_outs`` (FPN and the like) gives ``num_outs`` maps of
    ``out_channels``. Other students are checked at the first step.

    Raises:
        InputCheckError: naming ``model.student_channels`` and the neck.
    """
    model = cfg.get('model')
    if not isinstance(model, dict) or 'student_channels' not in model:
        return
    student = model.get('student')
    neck = student.get('neck') if isinstance(student, dict) else None
    if isinstance(neck, (list, tuple)) and neck:
        neck = neck[-1]
    if not isinstance(neck, dict):
        return
    out, num = neck.get('out_channels'), neck.get('num_outs')
    if not (isinstance(out, int) and isinstance(num, int)):
        return
    expected = [out] * num
    given = list(model['student_channels'])
    if given != expected:
        raise InputCheckError(
            f'model.student_channels = {given}, but the student\'s neck '
            f'({neck.get("type")}, out_channels={out}, num_outs={num}) '
            f'gives {num} maps of {out} channels: expected {expected}')
