"""Shared test helpers: offline configs and tiny detection batches."""
import warnings

import pytest
import torch

import mmprockd  # noqa: F401  (compat fixes before any model import)

warnings.filterwarnings('ignore', message='mmprockd: torchvision')


def make_offline(cfg):
    """Remove every download from a model config, in place: teacher
    checkpoints and ``Pretrained`` init_cfgs (tests never fetch weights)."""

    def walk(node):
        if isinstance(node, dict):
            if node.get('type') in ('mmprockd.FrozenTeacher', 'FrozenTeacher'):
                node['ckpt'] = None
            init = node.get('init_cfg')
            if isinstance(init, dict) and init.get('type') == 'Pretrained':
                node['init_cfg'] = None
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(cfg)
    return cfg


def det_batch(num: int = 2, hw=(128, 160), num_classes: int = 80):
    """A raw detection batch (uint8 images, one box each) for
    ``data_preprocessor(batch, training)``."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    h, w = hw
    for i in range(num):
        inputs.append(
            torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=g))
        ds = DetDataSample(
            metainfo=dict(
                img_shape=hw, ori_shape=hw, pad_shape=hw,
                scale_factor=(1., 1.), batch_input_shape=hw, img_id=i))
        ds.gt_instances = InstanceData(
            bboxes=torch.tensor([[10., 12., 70. + 10 * i, 90.]]),
            labels=torch.tensor([i % num_classes]))
        samples.append(ds)
    return dict(inputs=inputs, data_samples=samples)


@pytest.fixture
def offline():
    return make_offline
