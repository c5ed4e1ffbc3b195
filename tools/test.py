"""Test (evaluate) a checkpoint with an mmdet, mmseg or mmpretrain config.

The config's ``default_scope`` picks the library. Inputs are checked before
anything is built (see :mod:`mmprockd.utils.checks`). A plain student
checkpoint (keys without a ``student.`` prefix, e.g. one exported for
deployment) given with a distiller config is loaded into ``model.student``.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--show] [--show-dir DIR] [--tta] [--cfg-options KEY=VALUE ...]
    bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [ARGS]
"""
import argparse
import inspect
import os
import os.path as osp
import sys
from typing import List, Optional

# isort: off
# first: its compat fixes must precede any OpenMMLab import
import mmprockd  # noqa: F401
# isort: on
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from mmprockd.utils.checks import (InputCheckError, check_cfg_options,
                                   check_checkpoint, check_config_file,
                                   check_data_paths, check_mmcv,
                                   setup_cpu_distributed, state_dict_keys,
                                   teardown_distributed)

STUDENT_PREFIX = 'student.'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line and export ``LOCAL_RANK``.

    Args:
        argv (list[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: the parsed arguments.
    """
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='where the metrics are written; defaults to the config\'s '
        'work_dir, else ./work_dirs/<config name>')
    parser.add_argument(
        '--out',
        help='dump the predictions, one entry per sample, to this pickle '
        'file (.pkl or .pickle)')
    parser.add_argument(
        '--show', action='store_true', help='show the predictions')
    parser.add_argument(
        '--show-dir',
        help='save images with the predictions drawn here; a relative path '
        'is taken inside the work dir (--show-dir vis/ writes '
        'WORK_DIR/vis/), an absolute one as is')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each image is shown with --show')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, KEY=VALUE with dotted keys; the '
        'top-level key must exist')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation (the config must define tta_model)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--local_rank', '--local-rank', dest='local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg: Config, show: bool, show_dir: Optional[str],
                         wait_time: float) -> None:
    """Turn on the config's ``default_hooks.visualization``.

    The three libraries name things differently: mmdet's and mmseg's hooks
    draw with ``draw=True``, mmpretrain's with ``enable=True``; mmdet saves
    to ``test_out_dir``, mmpretrain to ``out_dir``, mmseg through the
    visualizer's ``save_dir``. The hook's signature tells which applies.
    A relative ``show_dir`` is taken inside ``cfg.work_dir`` and the path
    made absolute, so images land in the same place for all three (mmdet
    would join a relative one to ``work_dir/<timestamp>``, mmseg and
    mmpretrain to the current directory).

    Args:
        cfg (Config): The merged config, changed in place; its
            ``work_dir`` is set.
        show (bool): Show each image in a window.
        show_dir (str, optional): Folder for the drawn images.
        wait_time (float): Seconds each image is shown.

    Raises:
        InputCheckError: the config has no visualization hook.
    """
    hook = cfg.get('default_hooks', {}).get('visualization')
    if not hook:
        raise InputCheckError(
            '--show/--show-dir need default_hooks.visualization in the '
            'config, e.g. mmdet\'s DetVisualizationHook')
    scope = cfg.get('default_scope')
    with HOOKS.switch_scope_and_registry(scope) as registry:
        hook_cls = registry.get(hook['type'])
    if hook_cls is None:
        raise InputCheckError(f'unknown visualization hook {hook["type"]!r}')
    params = inspect.signature(hook_cls.__init__).parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    hook['enable' if 'enable' in params else 'draw'] = True
    if show:
        hook['show'] = True
        if 'wait_time' in params or takes_kwargs:
            hook['wait_time'] = wait_time
    if show_dir:
        show_dir = osp.abspath(osp.join(cfg.get('work_dir') or '', show_dir))
        if 'test_out_dir' in params:
            hook['test_out_dir'] = show_dir
        elif 'out_dir' in params:
            hook['out_dir'] = show_dir
        else:
            cfg.visualizer['save_dir'] = show_dir


def add_dump_results(cfg: Config, out: str) -> None:
    """Append mmengine's ``DumpResults`` metric to ``test_evaluator``.

    Args:
        cfg (Config): The merged config, changed in place.
        out (str): The pickle file.

    Raises:
        InputCheckError: ``out`` is not a ``.pkl``/``.pickle`` file.
    """
    if not out.endswith(('.pkl', '.pickle')):
        raise InputCheckError(f'--out {out!r}: use a .pkl or .pickle file')
    dump = dict(type='mmengine.DumpResults', out_file_path=out)
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = list(evaluator) + [dump]
    elif isinstance(evaluator, dict) and 'metrics' in evaluator:
        metrics = evaluator['metrics']
        if not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        evaluator['metrics'] = list(metrics) + [dump]
    else:
        cfg.test_evaluator = [evaluator, dump]


def build_config(args: argparse.Namespace) -> Config:
    """Check the inputs and build the test config.

    Args:
        args (argparse.Namespace): From :func:`parse_args`.

    Returns:
        Config: the merged config; ``load_from`` is the checkpoint.

    Raises:
        InputCheckError: for a missing or wrong input; nothing has been
            built yet.
    """
    check_config_file(args.config)
    check_mmcv()
    cfg = Config.fromfile(args.config)
    check_cfg_options(cfg, args.cfg_options)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show, args.show_dir, args.wait_time)
    if args.out:
        add_dump_results(cfg, args.out)
    if args.tta:
        if 'tta_model' not in cfg:
            raise InputCheckError('--tta: the config defines no tta_model')
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        if 'tta_pipeline' in cfg:
            cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    check_data_paths(cfg, ['test_dataloader'])
    cfg.load_from = args.checkpoint
    return cfg


class LoadStudentCheckpoint(Hook):
    """Load a plain checkpoint into ``model.student`` before testing.

    Runs in ``before_run`` with the lowest priority, so after every other
    hook has set up and just where ``Runner.test`` would load ``load_from``;
    the runner then sees the model as loaded.

    Args:
        filename (str): The checkpoint.
    """

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def before_run(self, runner: Runner) -> None:
        """Load the checkpoint with every key prefixed by ``student.``."""
        runner.load_checkpoint(
            self.filename,
            revise_keys=[(r'^module\.', ''), (r'^', STUDENT_PREFIX)])


def is_plain_student_checkpoint(runner: Runner, keys: List[str]) -> bool:
    """Whether the model wraps a student and the keys lack its prefix.

    Args:
        runner (Runner): The built runner.
        keys (list[str]): Parameter names in the checkpoint.
    """
    model = getattr(runner.model, 'module', runner.model)
    if not hasattr(model, 'student'):
        return False
    return not any(k.startswith(STUDENT_PREFIX) for k in keys)


def main(argv: Optional[List[str]] = None) -> None:
    """Check the inputs, then test."""
    args = parse_args(argv)
    try:
        cfg = build_config(args)
        checkpoint = check_checkpoint(args.checkpoint, 'checkpoint')
    except InputCheckError as err:
        sys.exit(f'test.py: error: {err}')
    keys = state_dict_keys(checkpoint) if checkpoint is not None else []
    del checkpoint
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    if is_plain_student_checkpoint(runner, keys):
        runner.logger.info(f'{args.checkpoint} holds a plain model: it is '
                           'loaded into model.student')
        runner.register_hook(
            LoadStudentCheckpoint(args.checkpoint), priority='LOWEST')
    runner.test()
    teardown_distributed()


if __name__ == '__main__':
    main()
