"""CachedFrozenBackbone: a frozen backbone's outputs stored by input content.

A tiny random-init mmpretrain MobileNetV2 on the CPU: the cached outputs
are the backbone's own, bit for bit; a cached sample never reaches the
backbone again and only the samples the store lacks do; an input that
differs by one value is another key; nothing trains and the BN buffers do
not move in train mode.
"""
import pytest
import torch
from mmengine.registry import init_default_scope

from mmprockd.models.backbones import content_key
from mmprockd.registry import MODELS

TINY = dict(
    type='mmpretrain.MobileNetV2', widen_factor=0.25, out_indices=(2, 6))


@pytest.fixture(autouse=True)
def scope():
    init_default_scope('mmprockd')


def build(**kwargs):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(type='mmprockd.CachedFrozenBackbone', backbone=TINY, **kwargs))
    model.init_weights()
    seen = []
    model.backbone.register_forward_hook(
        lambda m, args, out: seen.append(args[0].shape[0]))
    return model, seen


def test_outputs_are_the_backbones_and_cached_samples_skip_it():
    model, seen = build()
    model.train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 32, 32, generator=g)
    with torch.no_grad():
        ref = model.backbone(x)
    seen.clear()
    first = model(x)
    second = model(x)
    assert isinstance(first, tuple) and len(first) == 2
    assert [tuple(f.shape) for f in first] == [(3, 8, 4, 4), (3, 80, 1, 1)]
    for a, b, r in zip(first, second, ref):
        assert torch.equal(a, r) and torch.equal(b, r)
    # the first call ran the 3 samples, the second none
    assert seen == [3]
    assert model.cache.misses == 3 and model.cache.hits == 3
    # a batch of 2 stored samples and a new one runs the backbone on 1,
    # in the batch's order
    y = torch.randn(1, 3, 32, 32, generator=g)
    mixed = torch.cat([x[2:], y, x[:1]])
    with torch.no_grad():
        ref_mixed = model.backbone(mixed)
    seen.clear()
    out = model(mixed)
    assert seen == [1]
    for a, r in zip(out, ref_mixed):
        assert torch.allclose(a, r, atol=1e-6)
    # one value changed is another input
    z = x[:1].clone()
    z[0, 0, 0, 0] += 1e-3
    model(z)
    assert seen == [1, 1]


def test_nothing_trains_and_the_bn_buffers_stay():
    model, _ = build()
    model.train()
    assert not model.backbone.training
    assert all(not p.requires_grad for p in model.parameters())
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    out = model(torch.randn(4, 3, 32, 32))
    assert all(not f.requires_grad for f in out)
    for k, v in model.state_dict().items():
        assert torch.equal(v, buffers[k]), k
    # the weights live under backbone.*, as a checkpoint of a probe has them
    assert all(k.startswith('backbone.') for k in buffers)


def test_one_tensor_backbone_and_init_weights_empties_the_store():
    model, seen = build()
    model.backbone.out_indices = (6, )  # mmpretrain returns a 1-tuple
    x = torch.randn(2, 3, 32, 32)
    assert len(model(x)) == 1
    # a module that returns one tensor gets one tensor back, also from
    # the store
    pool = MODELS.build(
        dict(
            type='mmprockd.CachedFrozenBackbone',
            backbone=dict(type='mmpretrain.GlobalAveragePooling')))
    for _ in range(2):
        out = pool(x)
        assert isinstance(out, torch.Tensor)
        assert torch.allclose(out, x.mean((2, 3)))
    assert pool.cache.hits == 2
    model.init_weights()
    assert len(model.cache) == 0
    model(x)
    assert seen[-1] == 2


def test_content_key_tells_values_shapes_and_dtypes_apart():
    x = torch.zeros(3, 4, 4)
    assert content_key(x) == content_key(x.clone())
    assert content_key(x) != content_key(torch.zeros(3, 2, 8))
    assert content_key(x) != content_key(x.double())
    y = x.clone()
    y[1, 2, 3] = 1.0
    assert content_key(x) != content_key(y)
