"""Every recipe of docs/recipes.md is a config that builds and runs a
distillation loss step (offline: no weights are fetched), and does what
its recipe says."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmprockd.registry import MODELS
from mmprockd.testing import det_batch
from mmprockd.utils import get_config_path, list_configs
from mmprockd.utils.offline import make_offline

RECIPES = [c for c in list_configs() if c.startswith('recipes/')]
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_the_recipes_are_shipped_and_documented():
    assert len(RECIPES) == 5, RECIPES
    page = open(osp.join(REPO, 'docs', 'recipes.md')).read()
    for name in RECIPES:
        assert f'configs/{name}' in page, name


def _seg_batch(size=64):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(
            torch.randint(
                0, 255, (3, size, size), dtype=torch.uint8, generator=g))
        s = SegDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size)))
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, 19, (1, size, size), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def _build(name):
    cfg = Config.fromfile(get_config_path(name))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    if cfg.default_scope == 'mmseg':
        cfg.model.student.data_preprocessor.size = (64, 64)
    model = MODELS.build(make_offline(cfg.model))
    if cfg.default_scope == 'mmseg':
        from mmengine.model import revert_sync_batchnorm
        model = revert_sync_batchnorm(model)
    model.init_weights()
    return cfg, model


@pytest.mark.parametrize('name', RECIPES)
def test_recipe_builds_and_steps(name):
    cfg, model = _build(name)
    if cfg.default_scope == 'mmseg':
        batch = _seg_batch()
    else:
        heads = cfg.model.student.bbox_head
        batch = det_batch(2, (128, 128), heads.num_classes)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert any(k.startswith('distill.proto.') for k in losses)
    assert torch.isfinite(losses['distill.loss_kl'])
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())


def test_another_teacher_recipe_replaces_the_whole_teacher():
    cfg = Config.fromfile(
        get_config_path('recipes/prockd_convnext-t_retinanet_r50_fpn_1x_'
                        'coco.py'))
    teacher = cfg.model.teacher
    assert teacher.backbone.type == 'mmpretrain.ConvNeXt'
    assert 'pad_small_map' not in teacher.backbone  # no Swin key leaks
    assert 'img_size' not in teacher.backbone
    assert teacher.layers == ['norm1', 'norm2', 'norm3']


def test_custom_dataset_recipe_trains_on_its_classes():
    """The recipe's data set is real: its first training sample carries
    boxes of the 4 named classes only, and a step on it is finite."""
    from mmengine.registry import DATASETS
    cfg, model = _build('recipes/prockd_mobilenetv2_retinanet_custom_'
                        'dataset.py')
    assert cfg.model.student.bbox_head.num_classes == 4
    data_cfg = cfg.train_dataloader.dataset
    data_cfg.data_root = osp.join(REPO, data_cfg.data_root)
    dataset = DATASETS.build(data_cfg)
    assert dataset.metainfo['classes'] == ('person', 'dog', 'horse', 'car')
    assert len(dataset) > 0
    batch = [dataset[i] for i in range(2)]
    labels = torch.cat([b['data_samples'].gt_instances.labels for b in batch])
    assert labels.numel() > 0 and int(labels.max()) < 4
    data = model.data_preprocessor(
        dict(
            inputs=[b['inputs'] for b in batch],
            data_samples=[b['data_samples'] for b in batch]), True)
    total, _ = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(total)


def test_student_weights_recipe_loads_them_into_the_student(tmp_path):
    cfg = Config.fromfile(
        get_config_path('recipes/prockd_retinanet_r50_fpn_1x_coco_from_'
                        'student_weights.py'))
    assert cfg.model.student_ckpt.startswith('https://download.openmmlab')
    init_default_scope('mmdet')
    torch.manual_seed(1)
    student = MODELS.build(make_offline(cfg.model).student)
    path = tmp_path / 'retinanet.pth'
    # a plain mmdet checkpoint of the student, as mmdet's zoo has them
    torch.save(dict(state_dict=student.state_dict(), meta={}), path)
    model_cfg = make_offline(cfg.model)
    model_cfg.student_ckpt = str(path)
    torch.manual_seed(2)
    model = MODELS.build(model_cfg)
    model.init_weights()
    for key, value in student.state_dict().items():
        torch.testing.assert_close(
            model.student.state_dict()[key], value, msg=key)
