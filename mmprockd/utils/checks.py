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
import os.path as osp
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


def check_cfg_options(cfg: Config, options: Optional[Dict[str, Any]]) -> None:
    """Fail for an option whose top-level key the config does not have.

    ``Config.merge_from_dict`` would add such a key without complaint, so a
    typo (``train_dataloder.batch_size=2``) silently does nothing.

    Args:
        cfg (Config): The config before the options are merged.
        options (dict, optional): Parsed ``--cfg-options``, dotted keys.

    Raises:
        InputCheckError: naming every unknown key and the closest keys.
    """
    if not options:
        return
    known = set(cfg.keys())
    allowed = known | set(runner_keys())
    problems = []
    for key in options:
        top = key.split('.')[0]
        if top in allowed:
            continue
        close = difflib.get_close_matches(top, sorted(known), n=3)
        problems.append(f'--cfg-options key {key!r}: the config has no '
                        f'top-level key {top!r} (closest: {close})')
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
    for loader in dataloaders:
        loader_cfg = cfg.get(loader)
        if not isinstance(loader_cfg, dict):
            continue
        for where, dataset in iter_dataset_cfgs(
                loader_cfg.get('dataset'), f'{loader}.dataset'):
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


def _short_reason(err: BaseException) -> str:
    """The informative line of a (often multi-paragraph) load error."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if 'Unsupported global' in line:
            return line
    return lines[0] if lines else type(err).__name__


def check_checkpoint(path: str, key: str = 'load_from') -> Optional[dict]:
    """Fail when a local checkpoint is missing or is not one.

    The file is loaded with ``weights_only=True``; ``import mmprockd``
    allow-lists the few classes that full mmengine checkpoints hold, so
    anything else pickled in the file is refused. URLs are left to mmengine.

    Args:
        path (str): The checkpoint path.
        key (str): What the path was given as (``load_from``,
            ``--resume``, ``checkpoint``), used in messages.

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
    import torch

    # importing this module ran ``mmprockd/__init__``, which allow-listed
    # mmengine's checkpoint globals
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises many kinds for a bad file
        raise InputCheckError(
            f'{key}: {path} is not a PyTorch/mmengine checkpoint: '
            f'{_short_reason(err)}') from err
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


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Let a ``pytorch``-launched run work on machines without CUDA.

    mmengine 0.10 calls ``torch.cuda.set_device`` when it starts a
    ``pytorch``-launched process group, and gives DDP the local rank as
    ``device_ids``; both fail without CUDA. On such a machine we start the
    group ourselves (mmengine then skips it) with the config's backend,
    ``gloo`` when it asks for ``nccl``, and give DDP ``device_ids=None``.

    Args:
        cfg (Config): The merged config; ``model_wrapper_cfg`` may be set.
        launcher (str): The ``--launcher`` value.

    Returns:
        bool: True if the process group was started here.
    """
    import torch
    import torch.distributed as dist
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    if dist.is_initialized():
        return False
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    backend = dist_cfg.pop('backend', 'gloo')
    if backend == 'nccl':
        backend = 'gloo'
    if 'timeout' in dist_cfg:
        import datetime
        dist_cfg['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    dist.init_process_group(backend=backend, **dist_cfg)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    return True


def teardown_distributed() -> None:
    """Wait for every rank, then destroy the process group.

    A rank that exits with the gloo group still alive can be killed by
    ``terminate called without an active exception`` while its threads shut
    down (seen with torch 2.13), which fails the whole torchrun job.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
