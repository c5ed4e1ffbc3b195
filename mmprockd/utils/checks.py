"""Input checks that ``tools/train.py`` and ``tools/test.py`` run first.

mmengine finds a missing dataset, a broken checkpoint or a misspelt
``--cfg-options`` key late (after building the model and the dataloaders,
sometimes after an epoch) or never (an unknown option key is silently
added). Each check here fails at once with :class:`InputCheckError`, whose
message names the file or key and what to do about it. The tools print it
and exit with a non-zero status before any work is done.

Example::

    cfg = Config.fromfile('configs/prockd_retinanet_coco.py')
    check_cfg_options(cfg, {'train_dataloader.batch_size': 4})
    check_data_paths(cfg, ['train_dataloader', 'val_dataloader'])
"""
import difflib
import inspect
import json
import os
import os.path as osp
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

DATA_HINT = 'see README.md, section Data'


class InputCheckError(ValueError):
    """A command-line or config input the tools cannot work with."""


def _is_remote(path: str) -> bool:
    """Whether ``path`` names a URL or a storage backend, not a local file."""
    return '://' in path


def check_config_file(path: str) -> None:
    """Fail when the config file does not exist.

    Args:
        path (str): Config path given on the command line.

    Raises:
        InputCheckError: naming the path and the closest shipped configs.
    """
    if osp.isfile(path):
        return
    from .config_path import list_configs
    shipped = list_configs()
    close = difflib.get_close_matches(
        osp.basename(path), [osp.basename(c) for c in shipped],
        n=3,
        cutoff=0.4)
    close = [c for c in shipped if osp.basename(c) in close]
    hint = (f'; closest shipped configs (under configs/): {close}'
            if close else '')
    raise InputCheckError(f'config file {path!r} does not exist{hint}')


def check_mmcv() -> None:
    """Fail when mmcv was installed without its compiled ops.

    Raises:
        InputCheckError: with the reinstall command.
    """
    from .setup_env import check_mmcv_ops
    try:
        check_mmcv_ops()
    except RuntimeError as err:
        raise InputCheckError(str(err)) from err


def runner_keys() -> List[str]:
    """Top-level config keys that ``Runner.from_cfg`` reads.

    They are valid ``--cfg-options`` keys even when a config leaves them out
    (``randomness.seed=0``, ``load_from=...``).
    """
    from mmengine.runner import Runner
    params = inspect.signature(Runner.__init__).parameters
    return [name for name in params if name not in ('self', 'cfg')
            ] + ['runner_type', 'model_wrapper_cfg', 'find_unused_parameters']


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return 'a bool (True/False)'
    if isinstance(value, int):
        return 'an int'
    if isinstance(value, float):
        return 'a number'
    if isinstance(value, (list, tuple)):
        return 'a list'
    if isinstance(value, dict):
        return 'a dict'
    return f'a {type(value).__name__}'


def _type_problem(old: Any, new: Any) -> Optional[str]:
    """What is wrong with replacing ``old`` by ``new``, None if nothing.

    Only types a typo changes are compared: a bool, an int, a number, a
    list or a dict replaced by something else (``max_epochs=two``,
    ``lr=1e-3x``, ``batch_size=2.5``). A None or string value may become
    anything.
    """
    if old is None or isinstance(old, str) or new is None:
        return None
    if isinstance(old, bool):
        ok = isinstance(new, bool)
    elif isinstance(old, int):
        ok = isinstance(new, int) and not isinstance(new, bool)
    elif isinstance(old, float):
        ok = isinstance(new, (int, float)) and not isinstance(new, bool)
    elif isinstance(old, (list, tuple)):
        ok = isinstance(new, (list, tuple))
    elif isinstance(old, dict):
        ok = isinstance(new, dict)
    else:
        return None
    if ok:
        return None
    return (f'expected {_type_name(old)} like the config\'s {old!r}, got '
            f'{new!r}')


def _walk_option(cfg: Config, key: str, value: Any) -> Optional[str]:
    """What is wrong with one ``--cfg-options`` entry below the top level.

    A missing key is a typo when one of its siblings is a close match
    (``neck.out_channel`` next to ``out_channels``); other new keys are
    allowed (a new argument of a module, ``env_cfg.dist_cfg.timeout``).
    """
    parts = key.split('.')
    if parts[0] not in cfg:
        return None  # a runner argument the config leaves out
    node: Any = cfg.get(parts[0])
    for depth, part in enumerate(parts[1:], 1):
        where = '.'.join(parts[:depth])
        if isinstance(node, (list, tuple)):
            if not part.isdigit() or int(part) >= len(node):
                return (f'{where} is a list of {len(node)}: {part!r} is not '
                        'an index of it')
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            return None  # replacing a value by a dict: merge decides
        if part not in node:
            close = difflib.get_close_matches(
                part, [str(k) for k in node], n=3, cutoff=0.75)
            if close:
                return (f'{where} has no key {part!r} (closest: {close}); '
                        f'expected one of its keys')
            return None
        node = node[part]
    return _type_problem(node, value)


def check_cfg_options(cfg: Config, options: Optional[Dict[str, Any]]) -> None:
    """Fail for an option whose key the config does not have or whose
    value has another type than the config's.

    ``Config.merge_from_dict`` would add such a key without complaint, so a
    typo (``train_dataloder.batch_size=2``) silently does nothing, and a
    typo below the top level (``model.neck.out_channel=64``) is found only
    when the model is built. A value of the wrong type
    (``train_cfg.max_epochs=two``) fails deep inside the run.

    Args:
        cfg (Config): The config before the options are merged.
        options (dict, optional): Parsed ``--cfg-options``, dotted keys.

    Raises:
        InputCheckError: naming every bad key, the closest keys or the
            expected type.
    """
    if not options:
        return
    known = set(cfg.keys())
    allowed = known | set(runner_keys())
    problems = []
    for key, value in options.items():
        top = key.split('.')[0]
        if top not in allowed:
            close = difflib.get_close_matches(top, sorted(known), n=3)
            problems.append(f'--cfg-options key {key!r}: the config has no '
                            f'top-level key {top!r} (closest: {close})')
            continue
        problem = _walk_option(cfg, key, value)
        if problem:
            problems.append(f'--cfg-options key {key!r}: {problem}')
    if problems:
        raise InputCheckError('; '.join(problems))


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
            if _is_remote(path) or osp.exists(path):
                continue
            problems.append(f'{where}.{key} = {path!r} does not exist')
            if key == 'data_root':
                break  # what lies under it is missing too
    if problems:
        raise InputCheckError('missing data: ' + '; '.join(problems) +
                              f' ({DATA_HINT}; point the config at your '
                              'copy with --cfg-options)')


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


_short_reason = checkpoint_error_reason  # the former private name


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
    if _is_remote(path):
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


# ---------------------------------------------------------------- config


def _syntax_error_in(path: str, seen: set) -> Optional[str]:
    """The first syntax error of a config file or of its ``_base_`` files
    (mmengine reports it as in ``<unknown>``), as ``file:line: message``."""
    import ast
    path = osp.abspath(path)
    if path in seen or not osp.isfile(path):
        return None
    seen.add(path)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as err:
        line = (err.text or '').strip()
        return (f'{path}, line {err.lineno}: {err.msg}' +
                (f': {line}' if line else ''))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == '_base_' for t in node.targets):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return None
            for base in [bases] if isinstance(bases, str) else bases:
                if isinstance(base, str) and '::' not in base:
                    found = _syntax_error_in(
                        osp.join(osp.dirname(path), base), seen)
                    if found:
                        return found
    return None


def load_config(path: str) -> Config:
    """``Config.fromfile(path)``, its errors naming the file.

    Args:
        path (str): An existing config file.

    Raises:
        InputCheckError: a syntax error (file and line, also in a base
            file) or another error reading the config.
    """
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        where = _syntax_error_in(path, set())
        raise InputCheckError('config has a Python syntax error: ' + (
            where or f'{path} or one of its _base_ files: {err}')) from None
    except Exception as err:  # a missing base, a bad {{_base_.x}} ...
        raise InputCheckError(
            f'config {path} cannot be read: {type(err).__name__}: '
            f'{err}') from None


# ------------------------------------------------------ model checkpoints


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


def _check_url(path: str, key: str) -> None:
    """Download an http(s) checkpoint into torch's hub cache (where the
    model's own load finds it) and load it weights-only, so that an
    unreachable or wrong URL fails before the work dir exists."""
    from mmengine.runner.checkpoint import CheckpointLoader
    try:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except Exception as err:  # network, HTTP status, not a checkpoint
        raise InputCheckError(
            f'{key}: {path} could not be downloaded or read: '
            f'{checkpoint_error_reason(err)}. Check the URL and the '
            'network, or download the file and give its local path') from None


def _weight_keys(checkpoint: dict) -> List[str]:
    """The weight names of a checkpoint as ``FrozenTeacher`` reads it: its
    ``state_dict`` or ``model`` entry, else the dict itself."""
    for name in ('state_dict', 'model'):
        if isinstance(checkpoint.get(name), dict):
            return list(checkpoint[name])
    return list(checkpoint)


def check_model_checkpoints(cfg: Config) -> None:
    """Fail when a checkpoint the model loads at build is missing, is not
    a checkpoint (random bytes, a pickled object), cannot be downloaded,
    or holds no weight under the teacher's ``ckpt_prefix``.

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
            _check_url(path, key)
        else:
            loaded[key] = check_checkpoint(path, key, mmap=True)
    for where, node in _iter_dicts(cfg.get('model'), 'model'):
        prefix = node.get('ckpt_prefix')
        checkpoint = loaded.get(f'{where}.ckpt')
        if not isinstance(prefix, str) or not prefix or checkpoint is None:
            continue
        keys = _weight_keys(checkpoint)
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
    from .fingerprint import model_cfg_diff, model_cfg_from_meta
    model = cfg.get('model')
    path = model.get('branch_ckpt') if isinstance(model, dict) else None
    if not isinstance(path, str) or _is_remote(path):
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


# ----------------------------------------------------------------- resume

RESUME_KEYS = ('state_dict', 'optimizer', 'message_hub', 'meta')


def check_resume_checkpoint(cfg: Config,
                            checkpoint: dict,
                            path: str,
                            key: str = '--resume') -> None:
    """Fail when a checkpoint cannot resume this config's run.

    It must be a full training checkpoint (weights, optimizer state,
    message hub, meta: not a student-only or weights-only file), of a run
    whose model config equals this one: the fingerprint that
    :class:`mmprockd.ConfigFingerprintHook` wrote, or, for a checkpoint
    written without it, the model section of the config text mmengine
    keeps in ``meta['cfg']``.

    Args:
        cfg (Config): The merged config.
        checkpoint (dict): The loaded checkpoint.
        path (str): Its file, for messages.
        key (str): What it was given as.

    Raises:
        InputCheckError: naming the file and the missing entries, or the
            model keys that differ between the two configs.
    """
    from .fingerprint import (FINGERPRINT_KEY, model_cfg_diff,
                              model_cfg_from_meta, model_fingerprint)
    missing = [k for k in RESUME_KEYS if k not in checkpoint]
    if missing:
        have = sorted(checkpoint)[:6]
        raise InputCheckError(
            f'{key}: {path} is not a full training checkpoint: it lacks '
            f'{missing} (it has {have}{"..." if len(checkpoint) > 6 else ""}'
            '); expected a checkpoint tools/train.py wrote. To start a new '
            f'run from its weights, use --cfg-options load_from={path}')
    meta = checkpoint.get('meta') or {}
    model_cfg = cfg.get('model')
    saved = meta.get(FINGERPRINT_KEY) if isinstance(meta, dict) else None
    old_model = model_cfg_from_meta(meta)
    if saved is None and old_model is None:
        return  # nothing to compare with
    current = model_fingerprint(model_cfg)
    if saved is None:
        saved = model_fingerprint(old_model)
    if saved == current:
        return
    if old_model is not None:
        diff = model_cfg_diff(old_model, model_cfg)
        if not diff:
            # they differ only in keys the comparison leaves out, which
            # the checkpoint's fingerprint counted
            return
        keys = '; '.join(f'{k}: {a!r} in the checkpoint, {b!r} in the '
                         'config' for k, a, b in diff)
    else:
        keys = 'the checkpoint holds no config text to compare'
    raise InputCheckError(
        f'{key}: {path} was written by another model config (fingerprint '
        f'{saved}, this config {current}): {keys}. Resume with the config '
        'of that run, or start a new run from its weights with '
        f'--cfg-options load_from={path}')


# ------------------------------------------------------------ annotations


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
    if img_dir is not None and not _is_remote(img_dir):
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
            if key != 'ann_file' or _is_remote(path) or \
                    not path.endswith('.json') or not osp.isfile(path):
                continue
            warning = check_annotation_file(path, f'{where}.ann_file',
                                            loader == 'train_dataloader',
                                            img_dir)
            if warning:
                warnings.append(warning)
    return warnings
