"""Train a model from an mmdet, mmseg or mmpretrain style config.

The config's ``default_scope`` picks the library; ``runner_type`` the
runner. Inputs are checked before anything is built (see
:mod:`mmprockd.preflight`): a missing config, dataset or checkpoint, or a
misspelt ``--cfg-options`` key stops the run with a message naming it.
Then rank 0 locks the work dir: a second run on it is refused, with the PID
of the one that holds it.
``mmprockd.FiniteCheckpointHook`` is added to every run: a checkpoint whose
weights are not finite stops the run instead of being written. mmengine's
``CheckpointHook`` is replaced by ``mmprockd.AtomicCheckpointHook`` (same
settings): a kill at any moment leaves a complete checkpoint to resume from.
``--resume`` without a value takes the complete checkpoint of this run with
the most iterations in its own work dir, whatever ``last_checkpoint`` says
(a choice other than its file is logged at WARNING); checkpoint files with
none complete are an error that lists them, and a work dir with nothing to
resume starts from scratch. ``mmprockd.ExactResumeHook`` is added too: the
checkpoints hold the random state, and a resumed run takes the seed of the
run it continues, so it logs the same losses as an uninterrupted one
(exactly on the CPU; docs/method.md), and the dataloader workers draw fresh
augmentation each epoch. ``mmprockd.PreemptionHook`` is added too: SIGTERM
(a cluster's time limit or preemption) or SIGINT stops the run after the
step in flight with the checkpoint ``preempt_iter_N.pth`` of that step and
exit status 75, and ``--resume`` goes on from it, in the middle of the
epoch if need be.

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr]
        [--resume [CHECKPOINT]] [--cfg-options KEY=VALUE ...]
    bash tools/dist_train.sh CONFIG GPUS [ARGS]      # torchrun, one node
"""
import argparse
import logging
import os
import os.path as osp
import sys
from typing import List, Optional

# isort: off
# first: its compat fixes must precede any OpenMMLab import
import mmprockd  # noqa: F401
# isort: on
from mmengine.config import Config, DictAction
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmprockd.engine import find_resumable_checkpoint
from mmprockd.preflight import (InputCheckError, check_annotations,
                                check_branch_checkpoint, check_cfg_options,
                                check_checkpoint, check_config_file,
                                check_data_paths, check_mmcv,
                                check_model_checkpoints,
                                check_preprocessor_std,
                                check_resume_checkpoint,
                                check_student_channels, load_config)
from mmprockd.utils.distributed import (setup_cpu_distributed,
                                        teardown_distributed)
from mmprockd.utils.work_dir_lock import WorkDirLock


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (mmdet's flags) and export ``LOCAL_RANK``.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: the parsed arguments.
    """
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go; defaults to the config\'s '
        'work_dir, else ./work_dirs/<config name>')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='train with automatic mixed precision (AmpOptimWrapper, '
        'dynamic loss scale)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the real batch size over the '
        'config\'s auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CHECKPOINT; without a value, from the complete '
        'checkpoint of this run with the most iterations in the work dir '
        '(an error if it holds checkpoint files but none complete; from '
        'scratch if it holds none)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, KEY=VALUE with dotted keys, e.g. '
        'train_dataloader.batch_size=4; the top-level key must exist')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch>=2) or
    # --local_rank (older); torchrun passes neither and sets LOCAL_RANK
    parser.add_argument(
        '--local_rank', '--local-rank', dest='local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to ``AmpOptimWrapper``."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        print_log(
            '--amp: the config already uses AmpOptimWrapper', logger='current')
        return
    if wrapper != 'OptimWrapper':
        raise InputCheckError(
            f'--amp needs optim_wrapper.type OptimWrapper, the config has '
            f'{wrapper!r}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


FINITE_HOOK = 'mmprockd.FiniteCheckpointHook'


def _add_hook_once(cfg: Config, hook_type: str) -> None:
    """Append ``dict(type=hook_type)`` to ``custom_hooks`` unless the
    config has the hook already, with or without its ``mmprockd.`` scope.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    types = {h.get('type') for h in hooks if isinstance(h, dict)}
    if not types & {hook_type, hook_type.split('.', 1)[-1]}:
        cfg.custom_hooks = hooks + [dict(type=hook_type)]


def add_finite_checkpoint_hook(cfg: Config) -> None:
    """Append :class:`FiniteCheckpointHook` to ``custom_hooks`` unless the
    config has it already.

    Args:
        cfg (Config): The merged config, changed in place.
    """
    _add_hook_once(cfg, FINITE_HOOK)


EXACT_RESUME_HOOK = 'mmprockd.ExactResumeHook'


def add_exact_resume_hook(cfg: Config) -> None:
    """Append :class:`ExactResumeHook` to ``custom_hooks`` unless the config
    has it already: every checkpoint then holds the random state and a
    resumed run continues exactly (on the CPU; see docs/method.md), and
    the training dataloader's workers are seeded by epoch.

    The hook, not the config, sets the workers' ``worker_init_fn``: the
    seed (drawn when ``randomness.seed`` is None, or taken from the
    checkpoint on resume) and the rank are only known once the runner
    exists.

    Args:
        cfg (Config): The merged config, changed in place.
    """
    _add_hook_once(cfg, EXACT_RESUME_HOOK)


def add_prockd_hooks(cfg: Config) -> List[str]:
    """Append the config's ``prockd_hooks`` (``configs/_base_/
    prockd_runtime.py``) whose type ``custom_hooks`` lacks.

    A config that inherits the runtime base beside an upstream base with
    its own ``custom_hooks`` should write ``custom_hooks = [*_base_.get(
    'custom_hooks', []), *_base_.prockd_hooks]``; one that forgot still
    gets them here (upstream tools/train.py does not do this).

    Returns:
        list[str]: the types appended.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    have = {h.get('type') for h in hooks if isinstance(h, dict)}
    added = [
        h for h in cfg.get('prockd_hooks') or []
        if isinstance(h, dict) and h.get('type') not in have
    ]
    if added:
        cfg.custom_hooks = hooks + added
    return [h['type'] for h in added]


PREEMPTION_HOOK = 'mmprockd.PreemptionHook'


def add_preemption_hook(cfg: Config) -> None:
    """Append :class:`PreemptionHook` to ``custom_hooks`` unless the config
    has it: SIGTERM or SIGINT then stops the run after the step in flight,
    with a checkpoint of that step, and exit status ``PREEMPTED_EXIT``
    (75).

    Args:
        cfg (Config): The merged config, changed in place.
    """
    _add_hook_once(cfg, PREEMPTION_HOOK)


FINGERPRINT_HOOK = 'mmprockd.ConfigFingerprintHook'


def add_fingerprint_hook(cfg: Config) -> None:
    """Append :class:`ConfigFingerprintHook` to ``custom_hooks`` unless the
    config has it: every checkpoint then records its model config's
    fingerprint, which :func:`check_inputs` compares before resuming.

    Args:
        cfg (Config): The merged config, changed in place.
    """
    _add_hook_once(cfg, FINGERPRINT_HOOK)


def check_inputs(cfg: Config, args: argparse.Namespace) -> None:
    """The checks that read files the config names, before anything is
    built: the teacher and student checkpoints, a stage-1 ``branch_ckpt``
    against this config's teacher, branch and input settings, the
    preprocessors' ``std`` (no zero), ``student_channels`` against the
    student's neck, the annotation files (valid JSON, at least
    one usable box for training; dropped boxes are counted and logged),
    and a ``--resume`` checkpoint (a full one, of this model config).

    Done here rather than in a dataset wrapper or a hook: those run after
    ``Runner.from_cfg`` has made the work dir and built the model, and the
    dataset only when training starts; the config alone names the files.

    Args:
        cfg (Config): The merged config.
        args (argparse.Namespace): From :func:`parse_args`.

    Raises:
        InputCheckError: naming the key or file and what was expected.
    """
    check_model_checkpoints(cfg)
    check_branch_checkpoint(cfg)
    check_preprocessor_std(cfg)
    check_student_channels(cfg)
    loaders = ['train_dataloader']
    if cfg.get('val_cfg') is not None:
        loaders.append('val_dataloader')
    for warning in check_annotations(cfg, loaders):
        print_log(warning, logger='current', level=logging.WARNING)
    if cfg.get('load_from'):
        key = 'load_from' if args.resume is None else '--resume'
        checkpoint = check_checkpoint(cfg.load_from, key)
        if cfg.get('resume') and checkpoint is not None:
            check_resume_checkpoint(cfg, checkpoint, cfg.load_from, key)
            restore_seed(cfg, checkpoint)


def restore_seed(cfg: Config, checkpoint: dict) -> None:
    """Give a resumed run the seed of the run it continues.

    A config without ``randomness.seed`` makes the runner draw one when it
    is built, and the training sampler and the dataloader workers are
    seeded with it before the checkpoint is loaded: the resumed run would
    shuffle and augment differently. The seed the first run drew is in
    every checkpoint (``meta['seed']``, written by mmengine); it becomes
    ``randomness.seed`` here, before anything is built. A config that sets
    another seed keeps it, with a warning.

    Args:
        cfg (Config): The merged config, changed in place.
        checkpoint (dict): The checkpoint resumed from.
    """
    meta = checkpoint.get('meta')
    seed = meta.get('seed') if isinstance(meta, dict) else None
    if seed is None:
        return
    randomness = dict(cfg.get('randomness') or {})
    current = randomness.get('seed')
    if current is None:
        randomness['seed'] = seed
        cfg.randomness = randomness
        print_log(
            f'--resume: randomness.seed = {seed}, the seed of the run '
            'resumed',
            logger='current')
    elif current != seed:
        print_log(
            f'--resume: the config sets randomness.seed = {current}, the '
            f'checkpoint was trained with {seed}: the resumed run does not '
            'repeat the data order and augmentation the run would have had',
            logger='current',
            level=logging.WARNING)


ATOMIC_HOOK = 'mmprockd.AtomicCheckpointHook'
_MMENGINE_HOOK = ('CheckpointHook', 'mmengine.CheckpointHook', CheckpointHook)


def use_atomic_checkpoint_hook(cfg: Config) -> None:
    """Make ``default_hooks.checkpoint`` an :class:`AtomicCheckpointHook`
    when it is mmengine's ``CheckpointHook``, keeping all its settings.

    A config without the entry gets mmengine's default (``interval=1``),
    atomic; an entry set to None (no checkpoints) or of another type is
    left as it is.

    Args:
        cfg (Config): The merged config, changed in place.
    """
    if cfg.get('default_hooks') is None:
        cfg.default_hooks = dict()
    if 'checkpoint' not in cfg.default_hooks:
        cfg.default_hooks.checkpoint = dict(type=ATOMIC_HOOK, interval=1)
        return
    hook = cfg.default_hooks.checkpoint
    if isinstance(hook, dict) and hook.get('type') in _MMENGINE_HOOK:
        hook.type = ATOMIC_HOOK


def resume_checkpoint(cfg: Config) -> Optional[str]:
    """The checkpoint ``--resume`` without a value continues from: the
    complete one of this run with the most iterations in its work dir (see
    :func:`mmprockd.engine.find_resumable_checkpoint`); None when the work
    dir holds nothing to resume.

    Args:
        cfg (Config): The merged config, ``work_dir`` set.

    Raises:
        InputCheckError: checkpoint files were found but none is complete;
            the message lists them.
    """
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    hook = hook if isinstance(hook, dict) else {}
    return find_resumable_checkpoint(
        cfg.work_dir,
        out_dir=hook.get('out_dir'),
        filename_tmpl=hook.get('filename_tmpl'))


def build_config(args: argparse.Namespace) -> Config:
    """Check the inputs and build the training config.

    Args:
        args (argparse.Namespace): From :func:`parse_args`.

    Returns:
        Config: the merged config, ready for ``Runner.from_cfg``.

    Raises:
        InputCheckError: for a missing or wrong input; nothing has been
            built yet.
    """
    check_config_file(args.config)
    check_mmcv()
    cfg = load_config(args.config)
    check_cfg_options(cfg, args.cfg_options)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    added = add_prockd_hooks(cfg)
    if added:
        print(f'tools/train.py: added {added} from prockd_hooks to '
              'custom_hooks (the config did not list them)')
    add_finite_checkpoint_hook(cfg)
    add_fingerprint_hook(cfg)
    add_exact_resume_hook(cfg)
    add_preemption_hook(cfg)
    use_atomic_checkpoint_hook(cfg)
    if args.amp:
        _enable_amp(cfg)
    if args.auto_scale_lr:
        scale = cfg.get('auto_scale_lr')
        if not (isinstance(scale, dict) and 'base_batch_size' in scale):
            raise InputCheckError(
                '--auto-scale-lr needs auto_scale_lr=dict(enable=False, '
                'base_batch_size=N) in the config (N: the total batch size '
                'the learning rate was tuned for)')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        # not mmengine's own look-up: it trusts last_checkpoint, which a
        # kill can leave naming a deleted or an older file, or a file of
        # the work dir this one was copied from
        cfg.load_from = resume_checkpoint(cfg)
        cfg.resume = cfg.load_from is not None
        if cfg.load_from is None:
            print_log(
                f'--resume: {cfg.work_dir} holds no checkpoint and no '
                'last_checkpoint: training starts from scratch',
                logger='current',
                level=logging.WARNING)
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    loaders = ['train_dataloader']
    if cfg.get('val_cfg') is not None:
        loaders.append('val_dataloader')
    check_data_paths(cfg, loaders)
    check_inputs(cfg, args)
    return cfg


def global_rank(launcher: str) -> int:
    """This process's rank, from the launcher's environment (before the
    process group exists): ``RANK`` (torchrun), ``SLURM_PROCID`` (srun),
    ``OMPI_COMM_WORLD_RANK`` (mpirun); 0 without a launcher."""
    if launcher == 'none':
        return 0
    for name in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if os.environ.get(name, '').isdigit():
            return int(os.environ[name])
    return 0


def main(argv: Optional[List[str]] = None) -> None:
    """Check the inputs, lock the work dir (rank 0), then train."""
    args = parse_args(argv)
    lock = None
    try:
        cfg = build_config(args)
        if global_rank(args.launcher) == 0:
            lock = WorkDirLock(cfg.work_dir)
            lock.acquire()
    except InputCheckError as err:
        sys.exit(f'train.py: error: {err}')
    try:
        setup_cpu_distributed(cfg, args.launcher)
        runner = Runner.from_cfg(cfg)
        runner.train()
        del runner  # its DDP wrapper holds the process group
        teardown_distributed()
    finally:
        if lock is not None:
            lock.release()


if __name__ == '__main__':
    main()
