"""Test (evaluate) a checkpoint with an mmdet, mmseg or mmpretrain config.

The config's ``default_scope`` picks the library. Inputs are checked before
anything is built (see :mod:`mmprockd.preflight`). A plain student
checkpoint (keys without a ``student.`` prefix, e.g. one exported for
deployment) given with a distiller config is loaded into ``model.student``;
a ProtoDistiller checkpoint given with a plain student config gives its
``student.*`` weights, prefix stripped. A checkpoint that fits the model in
none of these ways (most of its weights missing) is an error.

The tool never writes over its inputs: the config is dumped into the run's
timestamped folder (``WORK_DIR/TIMESTAMP/``), not into the work dir where a
training run's ``student_config.py`` lies, and ``--out`` may not be the
config or the checkpoint.

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
from typing import Dict, List, Optional

# isort: off
# first: its compat fixes must precede any OpenMMLab import
import mmprockd  # noqa: F401
# isort: on
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from torch import nn

from mmprockd.engine.student_export import student_state_dict
from mmprockd.preflight import (InputCheckError, check_cfg_options,
                                check_checkpoint, check_config_file,
                                check_data_paths, check_mmcv, load_config,
                                state_dict_keys)
from mmprockd.utils.distributed import (setup_cpu_distributed,
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


def check_not_an_input(path: str, inputs: Dict[str, Optional[str]],
                       what: str) -> None:
    """Refuse to write ``path`` when it is one of the run's input files.

    Args:
        path (str): The file about to be written.
        inputs (dict): What each input was given as (``config``,
            ``checkpoint``) to its path; None or a missing path is skipped.
        what (str): What ``path`` is, for the message (``--out``).

    Raises:
        InputCheckError: ``path`` is an input (the same file, through any
            link or relative path).
    """
    if not osp.exists(path):
        return
    for name, source in inputs.items():
        if source and osp.exists(source) and osp.samefile(path, source):
            raise InputCheckError(
                f'{what} {path} is the {name} given to test.py, which would '
                'be overwritten: choose another file')


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
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show, args.show_dir, args.wait_time)
    if args.out:
        check_not_an_input(
            args.out, dict(config=args.config, checkpoint=args.checkpoint),
            '--out')
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


class InputSafeRunner(Runner):
    """mmengine's Runner, dumping the config beside the run's log.

    mmengine writes ``WORK_DIR/<config file name>``. When the config is a
    training run's ``student_config.py`` and the work dir that run's, the
    dump (with ``load_from`` and the visualization keys added) would replace
    the input. Here it goes into ``WORK_DIR/TIMESTAMP/``, which this run
    creates.
    """

    @master_only
    def dump_config(self) -> None:
        """Dump the config into :attr:`log_dir`, never over an input.

        Raises:
            InputCheckError: the file would replace the config or the
                checkpoint.
        """
        filename = self.cfg.filename
        name = osp.basename(filename) if filename else f'{self.timestamp}.py'
        path = osp.join(self.log_dir, name)
        check_not_an_input(
            path, dict(config=filename, checkpoint=self.cfg.get('load_from')),
            'the config dump')
        self.cfg.dump(path)


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


class StudentFromDistillerCheckpoint(Hook):
    """Keep only the ``student.*`` weights of a ProtoDistiller checkpoint,
    prefix stripped, when the runner loads it into a plain student.

    It rewrites the checkpoint in ``after_load_checkpoint``, which
    ``Runner.load_checkpoint`` calls before it loads the weights, so the
    learner, augment and adapter weights are dropped, not reported as
    unexpected.
    """
    priority = 'HIGHEST'

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        """Replace the state dict by the student's."""
        if 'state_dict' in checkpoint:
            checkpoint['state_dict'] = student_state_dict(
                checkpoint['state_dict'])
        else:  # a bare state dict
            state = student_state_dict(checkpoint)
            checkpoint.clear()
            checkpoint.update(state)


def checkpoint_layout(model: nn.Module, keys: List[str], filename: str) -> str:
    """How the checkpoint's weights go into the model.

    Args:
        model (nn.Module): The built model (unwrapped).
        keys (list[str]): Parameter names in the checkpoint, ``module.``
            removed.
        filename (str): The checkpoint, for the message.

    Returns:
        str: ``'as_is'``; ``'into_student'``: a plain checkpoint for a model
        that wraps a ``student`` (every key gets ``student.``);
        ``'from_distiller'``: a ProtoDistiller checkpoint (``student.*``
        keys) for a model without a ``student``: only those keys, prefix
        stripped.

    Raises:
        InputCheckError: more than half of the weights the model takes from
            the checkpoint are not in it; names the file and a few missing
            keys.
    """
    model_keys = list(model.state_dict())
    wraps_student = hasattr(model, 'student')
    has_student = any(k.startswith(STUDENT_PREFIX) for k in keys)
    if wraps_student and not has_student:
        layout = 'into_student'
        given = {STUDENT_PREFIX + k for k in keys}
        model_keys = [k for k in model_keys if k.startswith(STUDENT_PREFIX)]
    elif has_student and not wraps_student:
        layout = 'from_distiller'
        given = {
            k[len(STUDENT_PREFIX):]
            for k in keys if k.startswith(STUDENT_PREFIX)
        }
    else:
        layout, given = 'as_is', set(keys)
    missing = [k for k in model_keys if k not in given]
    if len(missing) > len(model_keys) / 2:
        raise InputCheckError(
            f'checkpoint {filename} does not fit the model '
            f'({type(model).__name__}): {len(missing)} of its '
            f'{len(model_keys)} weights are not in it, e.g. {missing[:3]}; '
            f'it holds {len(keys)} keys, e.g. {keys[:3]}. Expected a '
            'checkpoint of this config, a plain student checkpoint for a '
            'distiller config, or a ProtoDistiller checkpoint (student.* '
            'keys) for a student config')
    return layout


def main(argv: Optional[List[str]] = None) -> None:
    """Check the inputs, then test."""
    args = parse_args(argv)
    try:
        cfg = build_config(args)
        checkpoint = check_checkpoint(args.checkpoint, 'checkpoint')
    except InputCheckError as err:
        sys.exit(f'test.py: error: {err}')
    keys = None if checkpoint is None else state_dict_keys(checkpoint)
    del checkpoint
    setup_cpu_distributed(cfg, args.launcher)
    runner = InputSafeRunner.from_cfg(cfg)
    model = getattr(runner.model, 'module', runner.model)
    try:  # a URL (keys None) is left to mmengine
        layout = 'as_is' if keys is None else checkpoint_layout(
            model, keys, args.checkpoint)
    except InputCheckError as err:
        teardown_distributed()
        sys.exit(f'test.py: error: {err}')
    if layout == 'into_student':
        runner.logger.info(f'{args.checkpoint} holds a plain model: it is '
                           'loaded into model.student')
        runner.register_hook(
            LoadStudentCheckpoint(args.checkpoint), priority='LOWEST')
    elif layout == 'from_distiller':
        others = sorted({
            k.split('.')[0]
            for k in keys if not k.startswith(STUDENT_PREFIX)
        })
        runner.logger.info(
            f'{args.checkpoint} is a ProtoDistiller checkpoint: its '
            f'{STUDENT_PREFIX}* weights are loaded, prefix stripped; the '
            f'others ({", ".join(others) or "none"}) are left out')
        runner.register_hook(StudentFromDistillerCheckpoint())
    runner.test()
    del runner, model  # the DDP wrapper holds the process group
    teardown_distributed()


if __name__ == '__main__':
    main()
