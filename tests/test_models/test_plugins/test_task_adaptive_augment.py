import math

import pytest
import torch
from mmcv.cnn import build_plugin_layer

from mmprockd.models.plugins import TaskAdaptiveAugment


def _naive_augment(module: TaskAdaptiveAugment, x: torch.Tensor,
                   protos: torch.Tensor) -> tuple:
    """Reference with python loops over images, tokens and prototypes."""
    n_img, d, h, w = x.shape
    k_num = protos.shape[0]
    phi_w = module.phi.weight[:, :, 0, 0]
    phi_b = module.phi.bias
    conv1, conv2 = module.psi[0], module.psi[2]
    enc_protos = [phi_w @ protos[k] + phi_b for k in range(k_num)]
    out = torch.zeros_like(x)
    attn = torch.zeros(n_img, k_num, h, w)
    for n in range(n_img):
        for y in range(h):
            for xx in range(w):
                tok = phi_w @ x[n, :, y, xx] + phi_b
                logits = [
                    float(torch.dot(enc_protos[k], tok)) / module.temperature
                    for k in range(k_num)
                ]
                m = max(logits)
                exps = [math.exp(v - m) for v in logits]
                probs = [e / sum(exps) for e in exps]
                mixed = sum(p * c for p, c in zip(probs, enc_protos))
                cat = torch.cat([tok, mixed])
                hid = torch.relu(conv1.weight[:, :, 0, 0] @ cat + conv1.bias)
                res = torch.relu(conv2.weight[:, :, 0, 0] @ hid + conv2.bias)
                out[n, :, y, xx] = torch.relu(res + x[n, :, y, xx])
                attn[n, :, y, xx] = torch.tensor(probs)
    return out, attn


def test_values_match_naive_reference():
    torch.manual_seed(0)
    module = TaskAdaptiveAugment(
        in_channels=3, num_prototypes=4, temperature=0.7)
    x = torch.randn(2, 3, 2, 3)
    protos = torch.randn(4, 3)
    with torch.no_grad():
        out, attn = module(x, protos, return_attn=True)
        ref_out, ref_attn = _naive_augment(module, x, protos)
    assert out.shape == x.shape
    assert attn.shape == (2, 4, 2, 3)
    assert torch.allclose(attn, ref_attn, atol=1e-6)
    assert torch.allclose(out, ref_out, atol=1e-5)
    assert torch.allclose(attn.sum(dim=1), torch.ones(2, 2, 3))


def _hand_module() -> TaskAdaptiveAugment:
    """D=1, K=2; phi identity; psi keeps only the Z channel."""
    module = TaskAdaptiveAugment(in_channels=1, num_prototypes=2)
    with torch.no_grad():
        module.phi.weight.fill_(1.)
        module.phi.bias.zero_()
        module.psi[0].weight.copy_(torch.tensor([0., 1.]).view(1, 2, 1, 1))
        module.psi[0].bias.zero_()
        module.psi[2].weight.fill_(1.)
        module.psi[2].bias.zero_()
    return module


def test_value_by_hand():
    """x = 2, C = (1, -1): logits (2, -2), A = (sigmoid(4), sigmoid(-4)),
    Z = sigmoid(4) - sigmoid(-4) = tanh(2), out = relu(tanh(2) + 2)."""
    module = _hand_module()
    x = torch.full((1, 1, 1, 1), 2.)
    out, attn = module(x, torch.tensor([[1.], [-1.]]), return_attn=True)
    expected_attn = torch.tensor(
        [1 / (1 + math.exp(-4)), 1 / (1 + math.exp(4))])
    assert torch.allclose(attn.flatten(), expected_attn)
    assert out.item() == pytest.approx(2 + math.tanh(2), abs=1e-6)


def test_temperature_sharpness():
    torch.manual_seed(1)
    x = torch.randn(1, 4, 3, 3)
    protos = torch.randn(5, 4)
    module = TaskAdaptiveAugment(in_channels=4, num_prototypes=5)
    _, attn_1 = module(x, protos, return_attn=True)

    def entropy(a):
        return -(a * a.clamp_min(1e-30).log()).sum(dim=1).mean()

    entropies = []
    for temp in (100., 1., 0.01):
        module.temperature = temp
        _, attn = module(x, protos, return_attn=True)
        entropies.append(entropy(attn).item())
        if temp == 1.:
            assert torch.allclose(attn, attn_1)
    assert entropies[0] > entropies[1] > entropies[2]
    assert entropies[0] == pytest.approx(math.log(5), abs=0.05)
    # T -> 0 approaches the one-hot argmax of the logits
    hard = torch.nn.functional.one_hot(attn_1.argmax(dim=1), 5)
    assert torch.allclose(attn, hard.permute(0, 3, 1, 2).float(), atol=1e-3)


def test_buffer_and_set_prototypes():
    module = TaskAdaptiveAugment(in_channels=2, num_prototypes=3)
    assert 'prototypes' in module.state_dict()
    assert torch.equal(module.prototypes, torch.zeros(3, 2))
    source = torch.randn(3, 2, requires_grad=True)
    module.set_prototypes(source * 1.)
    assert torch.equal(module.prototypes, source.detach())
    assert not module.prototypes.requires_grad
    x = torch.randn(1, 2, 2, 2)
    assert torch.equal(module(x), module(x, source.detach()))
    module(x).sum().backward()
    assert source.grad is None
    with torch.no_grad():
        source.add_(1.)
    assert not torch.equal(module.prototypes, source.detach())
    assert torch.equal(module.state_dict()['prototypes'], module.prototypes)


def test_gradient_reaches_explicit_prototypes():
    torch.manual_seed(0)
    module = TaskAdaptiveAugment(in_channels=3, num_prototypes=4)
    protos = torch.randn(4, 3, requires_grad=True)
    module(torch.randn(2, 3, 4, 4), protos).pow(2).sum().backward()
    assert protos.grad is not None and protos.grad.abs().sum() > 0
    assert module.phi.weight.grad.abs().sum() > 0


def test_errors():
    module = TaskAdaptiveAugment(in_channels=3, num_prototypes=4)
    bad_x = r'TaskAdaptiveAugment: x .*in_channels=3.*got \(1, 2, 4, 4\)'
    with pytest.raises(ValueError, match=bad_x):
        module(torch.randn(1, 2, 4, 4))
    bad_c = r'TaskAdaptiveAugment: prototypes .*\(4, 3\), got \(5, 3\)'
    with pytest.raises(ValueError, match=bad_c):
        module(torch.randn(1, 3, 4, 4), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r'\(4, 3\), got \(4, 2\)'):
        module.set_prototypes(torch.randn(4, 2))
    with pytest.raises(ValueError, match=r'temperature must be positive'):
        TaskAdaptiveAugment(in_channels=3, temperature=0.)


def test_build_plugin_layer():
    name, layer = build_plugin_layer(
        dict(type='mmprockd.TaskAdaptiveAugment', num_prototypes=8),
        in_channels=64,
        postfix='_1')
    assert name == 'proto_aug_1'
    assert isinstance(layer, TaskAdaptiveAugment)
    assert layer.prototypes.shape == (8, 64)
    x = torch.randn(1, 64, 3, 3)
    assert layer(x).shape == x.shape


def test_mmdet_resnet_plugin():
    from mmdet.models.backbones import ResNet

    # mmdet's BasicBlock (depth 18/34) asserts plugins is None: use depth 50
    backbone = ResNet(
        depth=50,
        out_indices=(3, ),
        plugins=[
            dict(
                cfg=dict(
                    type='mmprockd.TaskAdaptiveAugment', num_prototypes=8),
                stages=(False, False, False, True),
                position='after_conv2')
        ])
    plugins = [
        m for m in backbone.modules() if isinstance(m, TaskAdaptiveAugment)
    ]
    assert len(plugins) == 3  # one per Bottleneck of the last stage
    assert all(p.in_channels == 512 for p in plugins)
    assert hasattr(backbone.layer4[0], 'proto_aug')
    keys = backbone.state_dict().keys()
    assert 'layer4.0.proto_aug.prototypes' in keys
    backbone.eval()
    with torch.no_grad():
        (out, ) = backbone(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 2048, 2, 2)
