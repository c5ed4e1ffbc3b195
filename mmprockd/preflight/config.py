"""The config file and ``--cfg-options``, checked before anything is
built.

mmengine finds a misspelt ``--cfg-options`` key late (when the model is
built) or never (an unknown top-level key is silently added), and reports a
syntax error of a base file as in ``<unknown>``. Each check here fails at
once with :class:`~mmprockd.utils.checkpoint_io.InputCheckError`, whose
message names the file or key and what to do about it.

Example::

    cfg = load_config('configs/prockd_retinanet_coco.py')
    check_cfg_options(cfg, {'train_dataloader.batch_size': 4})
"""
import difflib
import inspect
import os.path as osp
from typing import Any, Dict, List, Optional

from mmengine.config import Config

from mmprockd.utils.checkpoint_io import InputCheckError


def check_config_file(path: str) -> None:
    """Fail when the config file does not exist.

    Args:
        path (str): Config path given on the command line.

    Raises:
        InputCheckError: naming the path and the closest shipped configs.
    """
    if osp.isfile(path):
        return
    from mmprockd.utils.config_path import list_configs
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
    from mmprockd.utils.setup_env import check_mmcv_ops
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


# what mmengine says of a ``pkg::`` base of a package it does not know
UNKNOWN_PACKAGE = 'mmengine does not support to load mmprockd config'
BOOT_HINT = (
    'its mmprockd:: bases are resolved by mmprockd_boot, which did not run '
    'in this interpreter: run `python -m mmprockd_boot` once (it writes '
    'mmprockd_boot.pth into site-packages; `pip install -e` does not), or '
    '`import mmprockd` before Config.fromfile; or name the base by path '
    '(`python -m mmprockd.utils.config_path NAME`)')


def load_config(path: str) -> Config:
    """``Config.fromfile(path)``, its errors naming the file.

    Args:
        path (str): An existing config file.

    Raises:
        InputCheckError: a syntax error (file and line, also in a base
            file), an ``mmprockd::`` base without ``mmprockd_boot`` (with
            :data:`BOOT_HINT`) or another error reading the config.
    """
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        where = _syntax_error_in(path, set())
        raise InputCheckError('config has a Python syntax error: ' + (
            where or f'{path} or one of its _base_ files: {err}')) from None
    except Exception as err:  # a missing base, a bad {{_base_.x}} ...
        hint = f' ({BOOT_HINT})' if UNKNOWN_PACKAGE in str(err) else ''
        raise InputCheckError(
            f'config {path} cannot be read: {type(err).__name__}: '
            f'{err}{hint}') from None
