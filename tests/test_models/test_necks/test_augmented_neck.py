import pytest
import torch
from mmengine.registry import DefaultScope

from mmprockd.models.necks import AugmentedNeck
from mmprockd.models.plugins import TaskAdaptiveAugment
from mmprockd.registry import MODELS

FPN = dict(type='FPN', in_channels=[8, 16, 32], out_channels=4, num_outs=4)
AUGMENT = dict(type='mmprockd.TaskAdaptiveAugment', num_prototypes=6)


def _inputs(n: int = 2) -> tuple:
    sizes = ((8, 16), (16, 8), (32, 4))
    return tuple(torch.rand(n, c, s, s) for c, s in sizes)


@pytest.mark.parametrize('share', [True, False])
def test_fpn_under_mmdet_scope(share):
    with DefaultScope.overwrite_default_scope('mmdet'):
        neck = MODELS.build(
            dict(
                type='mmprockd.AugmentedNeck',
                neck=FPN,
                augment=AUGMENT,
                share=share))
    from mmdet.models.necks import FPN as MMDetFPN
    assert isinstance(neck, AugmentedNeck)
    assert isinstance(neck.neck, MMDetFPN)
    assert len(neck.augments) == (1 if share else 4)
    assert all(
        isinstance(m, TaskAdaptiveAugment) and m.in_channels == 4
        for m in neck.augments)
    inputs = _inputs()
    outs = neck(inputs)
    assert isinstance(outs, tuple) and len(outs) == 4
    for out, size in zip(outs, (16, 8, 4, 2)):
        assert out.shape == (2, 4, size, size)
    # each output is the augment module applied to the plain FPN output
    plain = neck.neck(inputs)
    for i, (out, raw) in enumerate(zip(outs, plain)):
        augment = neck.augments[0 if share else i]
        assert torch.allclose(out, augment(raw))


def test_prototypes_explicit_and_buffers():
    neck = AugmentedNeck(
        neck=dict(FPN, type='mmdet.FPN'), augment=AUGMENT, share=False)
    protos = torch.randn(6, 4, requires_grad=True)
    inputs = _inputs(1)
    outs = neck(inputs, protos)
    sum(out.sum() for out in outs).backward()
    assert protos.grad is not None and protos.grad.abs().sum() > 0
    neck.set_prototypes(protos)
    for augment in neck.augments:
        assert torch.equal(augment.prototypes, protos.detach())
    for a, b in zip(neck(inputs), outs):
        assert torch.allclose(a, b)
    assert 'augments.3.prototypes' in neck.state_dict()


def test_prototype_count_num_outs_and_share_mismatches_are_refused():
    neck = AugmentedNeck(
        neck=dict(FPN, type='mmdet.FPN'), augment=AUGMENT, share=False)
    match = 'AugmentedNeck: got 2 prototype tensors for 4'
    with pytest.raises(ValueError, match=match):
        neck(_inputs(1), [torch.randn(6, 4)] * 2)
    neck = AugmentedNeck(
        neck=dict(FPN, type='mmdet.FPN'), augment=AUGMENT, num_outs=3)
    match = r'AugmentedNeck: expected 3 neck outputs \(num_outs\), got 4'
    with pytest.raises(ValueError, match=match):
        neck(_inputs(1))
    match = 'AugmentedNeck: share=False needs num_outs'
    with pytest.raises(ValueError, match=match):
        AugmentedNeck(
            neck=dict(type='mmprockd.TaskAdaptiveAugment', in_channels=4),
            augment=AUGMENT,
            share=False)
