"""Registries of mmprockd.

Each registry is a child of the matching mmengine root registry, so that a
type written with its scope (``type='mmprockd.ProtoDistiller'``) resolves
from a config whose ``default_scope`` is ``mmdet``, ``mmseg`` or
``mmpretrain``. ``locations`` lists the modules that register into each node,
so that building by name imports them on demand.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

__all__ = ['MODELS', 'HOOKS', 'TRANSFORMS']

# distillers, necks, plugins, losses and adapters
MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='mmprockd',
    locations=['mmprockd.models'])
# training hooks (student-only checkpoints, distillation schedule)
HOOKS = Registry(
    'hook',
    parent=MMENGINE_HOOKS,
    scope='mmprockd',
    locations=['mmprockd.engine'])
# data transforms
TRANSFORMS = Registry(
    'transform',
    parent=MMENGINE_TRANSFORMS,
    scope='mmprockd',
    locations=['mmprockd.datasets'])
