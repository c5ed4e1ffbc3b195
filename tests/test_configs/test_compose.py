"""Our runtime and teacher bases compose with upstream bases that have their
own ``custom_hooks``, and a teacher base is overridden through
``_base_`` in the config's code."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmprockd.registry import MODELS
from mmprockd.testing import det_batch
from mmprockd.utils import get_config_path, list_configs
from mmprockd.utils.offline import make_offline

RUNTIME = get_config_path('_base_/prockd_runtime.py')
TEACHER = get_config_path('_base_/teachers/mobilenetv2_in1k.py')
OURS = ['mmprockd.StudentCheckpointHook', 'mmprockd.DistillScheduleHook']

# a downstream config: RTMDet (whose upstream config has an EMAHook and a
# PipelineSwitchHook in custom_hooks) taught by the MobileNetV2 teacher
DOWNSTREAM = f'''
_base_ = [
    'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
    {RUNTIME!r},
    {TEACHER!r},
]
custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
model = dict(
    _delete_=True,
    type='mmprockd.ProtoDistiller',
    student=dict(
        _base_.model,
        backbone=dict(_base_.model.backbone, init_cfg=None),
        bbox_head=dict(_base_.model.bbox_head, num_classes=4)),
    # a teacher base, overridden in code: no weights, the rest kept
    teacher=dict(_base_.mobilenetv2_in1k_teacher, ckpt=None),
    student_channels=[96, 96, 96],
    learner=dict(
        type='mmprockd.PrototypeLearner', channels=32, num_prototypes=8),
    kl_loss=dict(type='mmprockd.ConsistencyKLLoss'))
'''


def _types(hooks):
    return [h['type'] for h in hooks]


def test_runtime_base_composes_with_upstream_custom_hooks(tmp_path):
    path = tmp_path / 'rtmdet_prockd.py'
    path.write_text(DOWNSTREAM)
    cfg = Config.fromfile(str(path))
    assert _types(cfg.custom_hooks) == ['EMAHook', 'PipelineSwitchHook', *OURS]
    teacher = cfg.model.teacher
    assert teacher.ckpt is None
    assert teacher.layers == ['layer3', 'layer5', 'layer7']
    assert teacher.mean == [123.675, 116.28, 103.53]
    # the merged config dumps and loads again (what the work dir keeps)
    dumped = tmp_path / 'dumped.py'
    cfg.dump(str(dumped))
    assert _types(Config.fromfile(str(dumped)).custom_hooks) == _types(
        cfg.custom_hooks)


def test_two_bases_with_custom_hooks_is_what_mmengine_refuses(tmp_path):
    """Why the runtime base keeps its hooks in ``prockd_hooks``."""
    (tmp_path / 'a.py').write_text("custom_hooks = [dict(type='A')]\n")
    (tmp_path / 'b.py').write_text("custom_hooks = [dict(type='B')]\n")
    (tmp_path / 'c.py').write_text("_base_ = ['./a.py', './b.py']\n")
    with pytest.raises(KeyError, match='custom_hooks'):
        Config.fromfile(str(tmp_path / 'c.py'))
    assert 'custom_hooks' not in Config.fromfile(RUNTIME)


def test_downstream_rtmdet_student_builds_and_steps(tmp_path):
    path = tmp_path / 'rtmdet_prockd.py'
    path.write_text(DOWNSTREAM)
    cfg = Config.fromfile(str(path))
    make_offline(cfg)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    # RTMDet normalises in BGR (bgr_to_rgb=False, BGR statistics): the
    # teacher must still get its own ImageNet-RGB normalisation
    assert not model.student.data_preprocessor._channel_conversion
    seen = []
    model.teacher.model.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0]))
    batch = det_batch(2, (64, 64), 4)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    raw = torch.stack(batch['inputs']).float().flip(1)  # BGR -> RGB
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    torch.testing.assert_close(seen[0][..., :64, :64], (raw - mean) / std)
    assert torch.isfinite(losses['distill.loss_kl'])
    assert any(k.startswith('distill.proto.') for k in losses)


def _train_tool():
    spec = importlib.util.spec_from_file_location(
        'prockd_train_tool',
        osp.join(osp.dirname(__file__), '..', '..', 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_tool_appends_the_hooks_a_config_forgot():
    train = _train_tool()
    cfg = Config(
        dict(
            custom_hooks=[dict(type='EMAHook')],
            prockd_hooks=[
                dict(type=OURS[0], interval=2),
                dict(type=OURS[1], warmup=7)
            ]))
    assert train.add_prockd_hooks(cfg) == OURS
    assert _types(cfg.custom_hooks) == ['EMAHook', *OURS]
    assert cfg.custom_hooks[2].warmup == 7
    # listed already: nothing added twice
    assert train.add_prockd_hooks(cfg) == []
    assert len(cfg.custom_hooks) == 3


# the distillation configs users train (the benchmark's have the schedule
# hook alone: they export no student)
TRAINED = [
    c for c in list_configs()
    if 'prockd' in osp.basename(c) and not c.startswith(('_base_/',
                                                         'benchmark/'))
]


@pytest.mark.parametrize('name', TRAINED)
def test_every_shipped_config_has_our_hooks_once(name):
    cfg = Config.fromfile(get_config_path(name))
    assert cfg.model.type == 'mmprockd.ProtoDistiller'
    types = _types(cfg.get('custom_hooks', []))
    assert [t for t in types if t in OURS] == OURS, types
