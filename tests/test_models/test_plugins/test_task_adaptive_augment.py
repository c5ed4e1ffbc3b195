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


def test_one_pixel_two_prototypes_give_the_hand_computed_output():
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


def test_bad_shapes_and_a_zero_temperature_are_refused():
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


def _deployed(temperature: float = 1.) -> TaskAdaptiveAugment:
    """An eval-mode module with random nonzero buffer prototypes."""
    module = TaskAdaptiveAugment(
        in_channels=16, num_prototypes=6, temperature=temperature).eval()
    module.set_prototypes(torch.randn(6, 16))
    return module


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def _count_calls(module: torch.nn.Module) -> list:
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


@pytest.mark.parametrize('temperature', [1., 0.5])
def test_folded_matches_unfolded(temperature):
    torch.manual_seed(0)
    module = _deployed(temperature)
    phi_calls = _count_calls(module.phi)
    x = torch.randn(2, 16, 5, 7)
    with torch.no_grad():
        out, attn = module(x, return_attn=True)
        assert not phi_calls  # the folded path never runs phi
        assert torch.equal(module(x), out)
        nhwc = module(x.contiguous(memory_format=torch.channels_last))
        ref_out, ref_attn = module(x, module.prototypes, return_attn=True)
    assert len(phi_calls) == 1
    grad_out = module(x)  # gradient mode runs the unfolded path
    assert len(phi_calls) == 2 and grad_out.requires_grad
    assert attn.shape == (2, 6, 5, 7)
    _close(out, ref_out)
    _close(attn, ref_attn)
    _close(out, grad_out.detach())
    _close(nhwc, out)
    _close(attn.sum(dim=1), torch.ones(2, 5, 7))
    assert (out - torch.relu(x)).abs().max() > 0.1  # not a no-op
    # the prototypes matter: away from uniform attention
    assert attn.max() > 2 / 6


def test_folded_matches_naive_reference():
    torch.manual_seed(3)
    module = TaskAdaptiveAugment(
        in_channels=3, num_prototypes=4, temperature=0.7).eval()
    module.set_prototypes(torch.randn(4, 3))
    x = torch.randn(2, 3, 2, 3)
    with torch.no_grad():
        out, attn = module(x, return_attn=True)
        ref_out, ref_attn = _naive_augment(module, x, module.prototypes)
    assert module._folded is not None
    _close(attn, ref_attn)
    _close(out, ref_out)


def test_folded_exact_in_float64():
    """The folding is exact algebra: in float64 both paths agree to ~1e-15
    (the first call in float32 also checks the cache follows the dtype)."""
    torch.manual_seed(1)
    module = _deployed(0.5)
    x = torch.randn(2, 16, 4, 3)
    with torch.no_grad():
        assert module(x).dtype == torch.float32
        module.double()
        out, attn = module(x.double(), return_attn=True)
        ref_out, ref_attn = module(
            x.double(), module.prototypes, return_attn=True)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(attn, ref_attn, rtol=1e-12, atol=1e-12)


def test_folded_cache_reused_and_invalidated(monkeypatch):
    torch.manual_seed(2)
    module = _deployed()
    folds = []
    fold = module._fold
    monkeypatch.setattr(module, '_fold',
                        lambda *args: folds.append(1) or fold(*args))
    x = torch.randn(1, 16, 3, 4)
    with torch.no_grad():
        before = module(x)
        for size in ((3, 4), (6, 8), (1, 1)):  # e.g. one call per level
            module(torch.randn(1, 16, *size))
        assert len(folds) == 1

        new_protos = torch.randn(6, 16)
        module.set_prototypes(new_protos)
        after = module(x)
        assert len(folds) == 2
        assert (after - before).abs().max() > 1e-3
        _close(after, module(x, new_protos))

        module.temperature = 0.25
        _close(module(x), module(x, new_protos))
        assert len(folds) == 3

        other = _deployed(0.25)
        module.load_state_dict(other.state_dict())
        loaded = module(x)
        assert len(folds) == 4
        _close(loaded, other(x, other.prototypes))
        assert (loaded - after).abs().max() > 1e-3

        module.psi[0].bias.add_(1.)  # in place, as an optimiser step
        _close(module(x), module(x, module.prototypes))
        assert len(folds) == 5

        module.phi.weight = torch.nn.Parameter(module.phi.weight * 2.)
        _close(module(x), module(x, module.prototypes))
        assert len(folds) == 6

        # ``.data`` writes bypass the version counter: clear by hand
        module.prototypes.data.mul_(-1.)
        module.clear_folded_cache()
        _close(module(x), module(x, module.prototypes))
        assert len(folds) == 7


def test_folded_cache_not_in_state_dict():
    module = TaskAdaptiveAugment(in_channels=4, num_prototypes=3).eval()
    keys = [
        'prototypes', 'phi.weight', 'phi.bias', 'psi.0.weight', 'psi.0.bias',
        'psi.2.weight', 'psi.2.bias'
    ]
    assert sorted(module.state_dict()) == sorted(keys)
    with torch.no_grad():
        module(torch.randn(1, 4, 2, 2))
    assert module._folded is not None
    assert sorted(module.state_dict()) == sorted(keys)
    assert len(list(module.parameters())) == 6
    assert len(list(module.buffers())) == 1
    fresh = TaskAdaptiveAugment(in_channels=4, num_prototypes=3)
    fresh.load_state_dict(module.state_dict())  # strict


def test_folded_under_inference_mode():
    torch.manual_seed(4)
    module = _deployed()
    x = torch.randn(1, 16, 3, 3)
    with torch.inference_mode():
        out = module(x)
    with torch.no_grad():
        _close(module(x), out)
        _close(out, module(x, module.prototypes))


def test_training_keeps_gradient_path():
    torch.manual_seed(5)
    module = _deployed()
    module.train()
    phi_calls = _count_calls(module.phi)
    x = torch.randn(2, 16, 3, 3)
    with torch.no_grad():
        out = module(x)  # training mode: unfolded even without gradients
        assert torch.equal(out, module(x, module.prototypes))
    assert len(phi_calls) == 2 and module._folded is None
    module(x).pow(2).sum().backward()
    assert module.phi.weight.grad.abs().sum() > 0
    assert module.psi[0].weight.grad.abs().sum() > 0
    assert module.prototypes.grad is None
    # eval mode with gradients enabled also stays differentiable
    module.eval()
    module.zero_grad()
    module(x).pow(2).sum().backward()
    assert module.phi.weight.grad.abs().sum() > 0
    assert module._folded is None


def test_out_relu_false_keeps_the_sign_on_both_paths():
    """[ours] out_relu=False: out = psi([X'; Z]) + X, on the training path
    and on the folded deployed path; with psi's last conv zeroed it is X
    itself, negative values included."""
    torch.manual_seed(0)
    module = TaskAdaptiveAugment(
        in_channels=16, num_prototypes=6, out_relu=False).eval()
    module.set_prototypes(torch.randn(6, 16))
    x = torch.randn(2, 16, 5, 7)
    with torch.no_grad():
        folded = module(x)
    unfolded = module(x, module.prototypes)
    _close(folded, unfolded.detach())
    assert (folded < 0).any()
    relu = TaskAdaptiveAugment(in_channels=16, num_prototypes=6).eval()
    relu.load_state_dict(module.state_dict())
    with torch.no_grad():
        _close(relu(x), torch.relu(folded))
    torch.nn.init.zeros_(module.psi[2].weight)
    torch.nn.init.zeros_(module.psi[2].bias)
    with torch.no_grad():
        _close(module(x), x)
