"""mmprockd types resolve from mmdet, mmseg and mmpretrain configs.

Our registries are children of mmengine's root registries. A config built
under ``default_scope='mmdet'`` looks a bare ``type='X'`` up in mmdet's
registry (and mmengine's) only, never in a sibling such as mmprockd's, so a
bare mmprockd name fails there. ``type='mmprockd.X'`` names the scope: the
lookup climbs to the root and descends into mmprockd's registry, which
imports its ``locations`` on demand. Hence every mmprockd type in a config is
written with its scope.

Run: ``pytest tests/test_utils/test_registry.py``
"""
import importlib

import pytest
import torch
from mmengine.registry import DefaultScope

from mmprockd.models.plugins.task_adaptive_augment import TaskAdaptiveAugment

SCOPED = dict(
    type='mmprockd.TaskAdaptiveAugment', in_channels=8, num_prototypes=4)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_scoped_type_builds_from_each_library(scope):
    models = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        module = models.build(dict(SCOPED))
    assert type(module) is TaskAdaptiveAugment
    assert module.prototypes.shape == (4, 8)
    out = module(torch.rand(2, 8, 5, 6))
    assert out.shape == (2, 8, 5, 6)


def test_bare_type_fails_under_mmdet_scope():
    from mmdet.registry import MODELS
    bare = dict(SCOPED, type='TaskAdaptiveAugment')
    with DefaultScope.overwrite_default_scope('mmdet'):
        with pytest.raises(KeyError, match='TaskAdaptiveAugment'):
            MODELS.build(bare)
