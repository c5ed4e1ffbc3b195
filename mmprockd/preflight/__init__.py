"""Input checks that ``tools/train.py`` and ``tools/test.py`` run first.

mmengine finds a missing dataset, a broken checkpoint or a misspelt
``--cfg-options`` key late (after building the model and the dataloaders,
sometimes after an epoch) or never (an unknown option key is silently
added). Each check here fails at once with :class:`InputCheckError`, whose
message names the file or key and what to do about it. The tools print it
and exit with a non-zero status before any work is done.

The checks are the command line's: the models never import this package.
What models and engine code share with it (loading a checkpoint
weights-only, the error class, why a file is not a checkpoint) is in
:mod:`mmprockd.utils.checkpoint_io`.

- :mod:`.config`: the config file and ``--cfg-options``;
- :mod:`.data`: dataset folders and annotation files;
- :mod:`.model`: the checkpoints the model loads (teacher, student,
  stage-1 branch) and the model's settings;
- :mod:`.resume`: a ``--resume`` checkpoint against the config.

Example::

    cfg = load_config('configs/prockd_retinanet_coco.py')
    check_cfg_options(cfg, {'train_dataloader.batch_size': 4})
    check_data_paths(cfg, ['train_dataloader', 'val_dataloader'])
"""
from mmprockd.utils.checkpoint_io import (InputCheckError, check_checkpoint,
                                          checkpoint_error_reason,
                                          load_checkpoint_file,
                                          state_dict_keys)
from .config import (check_cfg_options, check_config_file, check_mmcv,
                     load_config, runner_keys)
from .data import (DATA_HINT, check_annotation_file, check_annotations,
                   check_data_paths, iter_dataset_cfgs)
from .model import (BRANCH_SETTINGS, NORM_KEYS, check_branch_checkpoint,
                    check_model_checkpoints, check_preprocessor_std,
                    check_student_channels, check_student_checkpoint,
                    model_checkpoint_keys)
from .resume import RESUME_KEYS, check_resume_checkpoint

__all__ = [
    'InputCheckError', 'check_checkpoint', 'checkpoint_error_reason',
    'load_checkpoint_file', 'state_dict_keys', 'check_cfg_options',
    'check_config_file', 'check_mmcv', 'load_config', 'runner_keys',
    'DATA_HINT', 'check_annotation_file', 'check_annotations',
    'check_data_paths', 'iter_dataset_cfgs', 'BRANCH_SETTINGS', 'NORM_KEYS',
    'check_branch_checkpoint', 'check_model_checkpoints',
    'check_preprocessor_std', 'check_student_channels',
    'check_student_checkpoint', 'model_checkpoint_keys', 'RESUME_KEYS',
    'check_resume_checkpoint'
]
