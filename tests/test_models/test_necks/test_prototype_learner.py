import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmprockd.models.necks import PrototypeLearner


def _set_identity(conv: nn.Conv2d) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        n = min(conv.weight.shape[:2])
        conv.weight[:n, :n, 0, 0] = torch.eye(n)
        conv.bias.zero_()


def _naive_learner(learner: PrototypeLearner, feat: torch.Tensor) -> tuple:
    """Reference for one input map at its own size, N=1, with python loops
    over tokens and prototypes and plain float arithmetic."""
    fuse = learner.fusions[0][0]
    assign = learner.assigners[0]
    desc = learner.descriptors[0]
    conv1, conv2 = learner.out_convs[0][0], learner.out_convs[0][2]
    protos = learner.get_prototypes(0).tolist()
    k_num, d = len(protos), learner.channels
    _, c_in, h, w = feat.shape
    relu = lambda v: max(v, 0.0)  # noqa: E731

    def conv(c, vec):
        wt = c.weight[:, :, 0, 0].tolist()
        b = c.bias.tolist()
        return [
            sum(wi * v for wi, v in zip(row, vec)) + bi
            for row, bi in zip(wt, b)
        ]

    tokens = []  # F_t per token
    for y in range(h):
        for x in range(w):
            vec = [feat[0, c, y, x].item() for c in range(c_in)]
            tokens.append([relu(v) for v in conv(fuse, vec)])
    normed = []
    for t in tokens:
        norm = math.sqrt(sum(v * v for v in t))
        normed.append([v / norm for v in t])
    assigns = []
    for t in normed:
        logits = conv(assign, t)
        m = max(logits)
        exps = [math.exp(v - m) for v in logits]
        assigns.append([e / sum(exps) for e in exps])
    vlad = []
    for k in range(k_num):
        vk = [0.0] * d
        for t, a in zip(normed, assigns):
            for j in range(d):
                vk[j] += a[k] * (t[j] - protos[k][j])
        norm = math.sqrt(sum(v * v for v in vk))
        vlad.extend(v / norm for v in vk)
    norm = math.sqrt(sum(v * v for v in vlad))
    vlad = [v / norm for v in vlad]
    wt, b = desc.weight.tolist(), desc.bias.tolist()
    g = [
        sum(wi * v for wi, v in zip(row, vlad)) + bi for row, bi in zip(wt, b)
    ]
    out = torch.zeros(1, d, h, w)
    amap = torch.zeros(1, k_num, h, w)
    for n, (t, a) in enumerate(zip(tokens, assigns)):
        hidden = [relu(v) for v in conv(conv1, g + t)]
        res = [relu(v) for v in conv(conv2, hidden)]
        out[0, :, n // w, n % w] = torch.tensor(res)
        amap[0, :, n // w, n % w] = torch.tensor(a)
    return out, amap


def test_output_shapes_multi_input_multi_level():
    learner = PrototypeLearner(
        in_channels=[4, 6], channels=8, num_prototypes=5, num_levels=3)
    feats = [torch.rand(2, 4, 12, 12), torch.rand(2, 6, 6, 7)]
    sizes = [(12, 12), (6, 6), (3, 5)]
    outs, assigns = learner(feats, sizes, return_assign=True)
    assert len(outs) == len(assigns) == 3
    for out, assign, (h, w) in zip(outs, assigns, sizes):
        assert out.shape == (2, 8, h, w)
        assert assign.shape == (2, 5, h, w)
        assert torch.allclose(assign.sum(dim=1), torch.ones(2, h, w))
        assert (out >= 0).all()
    assert learner.get_prototypes(2).shape == (5, 8)
    plain = learner(feats, sizes)
    assert isinstance(plain, list)
    for a, b in zip(plain, outs):
        assert torch.allclose(a, b)


def test_values_match_naive_reference():
    torch.manual_seed(0)
    learner = PrototypeLearner(
        in_channels=[3], channels=3, num_prototypes=2, num_levels=1)
    _set_identity(learner.fusions[0][0])
    feat = torch.rand(1, 3, 2, 2) + 0.1
    outs, assigns = learner([feat], [(2, 2)], return_assign=True)
    ref_out, ref_assign = _naive_learner(learner, feat)
    assert torch.allclose(assigns[0], ref_assign, atol=1e-6)
    assert torch.allclose(outs[0], ref_out, atol=1e-5)
    assert outs[0].abs().sum() > 0


def test_value_by_hand_one_token():
    """One token f = (3, 4), f^ = (0.6, 0.8); prototypes c_0 = (0, 0) and
    c_1 = (0.6, -0.2); assignment bias (log 3, 0) -> a = (0.75, 0.25).
    V_0 = 0.75 (0.6, 0.8) -> (0.6, 0.8); V_1 = 0.25 (0, 1) -> (0, 1);
    vec V = (0.6, 0.8, 0, 1) / sqrt(2). The descriptor picks entries 0 and
    3 -> g = (0.6, 1) / sqrt(2); the output convs pass g through."""
    learner = PrototypeLearner(
        in_channels=[2], channels=2, num_prototypes=2, num_levels=1)
    _set_identity(learner.fusions[0][0])
    with torch.no_grad():
        learner.prototypes.copy_(torch.tensor([[[0., 0.], [0.6, -0.2]]]))
        learner.assigners[0].weight.zero_()
        learner.assigners[0].bias.copy_(torch.tensor([math.log(3.), 0.]))
        learner.descriptors[0].weight.copy_(
            torch.tensor([[1., 0., 0., 0.], [0., 0., 0., 1.]]))
        learner.descriptors[0].bias.zero_()
        _set_identity(learner.out_convs[0][0])  # keeps the g channels
        _set_identity(learner.out_convs[0][2])
    feat = torch.tensor([3., 4.]).view(1, 2, 1, 1)
    outs, assigns = learner([feat], [(1, 1)], return_assign=True)
    assert torch.allclose(assigns[0].flatten(), torch.tensor([0.75, 0.25]))
    expected = torch.tensor([0.6, 1.0]) / math.sqrt(2.)
    assert torch.allclose(outs[0].flatten(), expected, atol=1e-6)


def test_resize_skipped_and_bilinear():
    learner = PrototypeLearner(
        in_channels=[2, 2], channels=2, num_prototypes=2)
    _set_identity(learner.fusions[0][0])
    with torch.no_grad():
        learner.fusions[0][0].weight[:, 2:] = torch.eye(2)[:, :, None, None]
    small = torch.rand(1, 2, 2, 2)
    big = torch.rand(1, 2, 4, 4)
    fused = learner._fuse([big, small], (4, 4), 0)
    up = nn.functional.interpolate(
        small, size=(4, 4), mode='bilinear', align_corners=False)
    assert torch.allclose(fused, torch.relu(big + up))


def test_gradients_reach_parameters():
    torch.manual_seed(0)
    learner = PrototypeLearner(
        in_channels=[4, 3], channels=6, num_prototypes=4, num_levels=2)
    feats = [torch.rand(2, 4, 8, 8), torch.rand(2, 3, 4, 4)]
    outs = learner(feats, [(8, 8), (4, 4)])
    sum(out.pow(2).sum() for out in outs).backward()
    for param in (learner.prototypes, learner.fusions[0][0].weight,
                  learner.fusions[1][0].weight, learner.assigners[0].weight,
                  learner.descriptors[0].weight):
        assert param.grad is not None
        assert param.grad.abs().sum() > 0


def _reference_fuse(learner: PrototypeLearner, feats: list, size: tuple,
                    level: int) -> torch.Tensor:
    """Naive F_t: resize every map, concatenate, then the same conv + ReLU."""
    resized = [
        F.interpolate(
            feat,
            size=size,
            mode='bilinear',
            align_corners=learner.align_corners) for feat in feats
    ]
    return learner.fusions[level](torch.cat(resized, dim=1))


# maps of 144, 42 and 9 pixels; targets with more, fewer, equal pixels
# (13x13: none on the grid, the bias is added at the end; 7x6: as many
# pixels as the 6x7 map) and one of the same size as a map (12x12)
_FUSE_SHAPES = [(4, 12, 12), (6, 6, 7), (5, 3, 3)]
_FUSE_SIZES = [(6, 6), (12, 12), (13, 13), (7, 6), (2, 3)]


def _fuse_setup(align_corners: bool, dtype: torch.dtype) -> tuple:
    torch.manual_seed(0)
    learner = PrototypeLearner(
        in_channels=[c for c, _, _ in _FUSE_SHAPES],
        channels=8,
        num_prototypes=3,
        num_levels=len(_FUSE_SIZES),
        align_corners=align_corners).to(dtype)
    with torch.no_grad():  # non-zero biases, so adding them twice shows
        for fusion in learner.fusions:
            fusion[0].bias.normal_()
    feats = [
        torch.randn(2, c, h, w, dtype=dtype, requires_grad=True)
        for c, h, w in _FUSE_SHAPES
    ]
    return learner, feats


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5),
                                       (torch.float64, 1e-10)])
def test_fuse_matches_concat_reference(align_corners, dtype, tol):
    learner, feats = _fuse_setup(align_corners, dtype)
    for level, size in enumerate(_FUSE_SIZES):
        fused = learner._fuse(feats, size, level)
        ref = _reference_fuse(learner, feats, size, level)
        assert fused.shape == ref.shape == (2, 8) + size
        assert fused.dtype == ref.dtype == dtype
        assert (ref > 0).any() and (ref == 0).any()
        assert torch.allclose(fused, ref, rtol=0, atol=tol)


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5),
                                       (torch.float64, 1e-10)])
def test_fuse_gradients_match_concat_reference(align_corners, dtype, tol):
    learner, feats = _fuse_setup(align_corners, dtype)
    params = [p for fusion in learner.fusions for p in fusion.parameters()]
    inputs = params + feats

    def grads(fuse):
        torch.manual_seed(1)
        loss = 0
        for level, size in enumerate(_FUSE_SIZES):
            out = fuse(feats, size, level)
            loss = loss + (out * torch.randn_like(out)).sum()
        return torch.autograd.grad(loss, inputs)

    new = grads(learner._fuse)
    ref = grads(lambda *args: _reference_fuse(learner, *args))
    for g_new, g_ref in zip(new, ref):
        assert g_new.shape == g_ref.shape
        assert g_ref.abs().sum() > 0
        # the weight gradients sum over up to 338 pixels and reach ~50, so
        # the tolerance is relative as well (fp32 rounding: ~3e-7 of it)
        assert torch.allclose(g_new, g_ref, rtol=tol, atol=tol)


def test_fuse_resize_order(monkeypatch):
    """A larger map is resized before the projection (C_i channels), a
    smaller one after it (D channels), a map of the target size never."""
    learner = PrototypeLearner(
        in_channels=[4, 6], channels=8, num_prototypes=3, num_levels=2)
    feats = [torch.rand(1, 4, 12, 12), torch.rand(1, 6, 6, 6)]
    resized = []
    interpolate = F.interpolate

    def spy(feat, *args, **kwargs):
        resized.append(feat.size(1))
        return interpolate(feat, *args, **kwargs)

    monkeypatch.setattr(F, 'interpolate', spy)
    learner._fuse(feats, (12, 12), 0)
    assert resized == [8]
    resized.clear()
    learner._fuse(feats, (6, 6), 1)
    assert resized == [4]


@pytest.mark.parametrize('mode', ['autocast', 'bf16'])
def test_fuse_bfloat16(mode):
    learner, feats = _fuse_setup(False, torch.float32)
    ref32 = [
        _reference_fuse(learner, feats, size, level)
        for level, size in enumerate(_FUSE_SIZES)
    ]
    if mode == 'bf16':
        learner = learner.to(torch.bfloat16)
        feats = [feat.detach().bfloat16() for feat in feats]
    with torch.autocast(
            'cpu', dtype=torch.bfloat16, enabled=mode == 'autocast'):
        for level, size in enumerate(_FUSE_SIZES):
            fused = learner._fuse(feats, size, level)
            ref = _reference_fuse(learner, feats, size, level)
            assert fused.dtype == ref.dtype == torch.bfloat16
            scale = ref32[level].abs().max()
            assert (fused.float() - ref32[level]).abs().max() < 0.05 * scale
    fused.float().sum().backward()
    weight = learner.fusions[-1][0].weight
    assert weight.grad is not None and weight.grad.dtype == weight.dtype


def test_state_dict_keys_unchanged():
    cfg = dict(
        in_channels=[4, 6],
        channels=8,
        num_prototypes=5,
        num_levels=2,
        share_prototypes=False)
    learner = PrototypeLearner(**cfg)
    feats = [torch.rand(1, 4, 8, 8), torch.rand(1, 6, 4, 4)]
    sum(out.sum() for out in learner(feats, [(8, 8), (4, 4)])).backward()
    expected = [
        'prototypes',
        'fusions.0.0.weight',
        'fusions.0.0.bias',
        'fusions.1.0.weight',
        'fusions.1.0.bias',
        'assigners.0.weight',
        'assigners.0.bias',
        'assigners.1.weight',
        'assigners.1.bias',
        'descriptors.0.weight',
        'descriptors.0.bias',
        'descriptors.1.weight',
        'descriptors.1.bias',
        'out_convs.0.0.weight',
        'out_convs.0.0.bias',
        'out_convs.0.2.weight',
        'out_convs.0.2.bias',
        'out_convs.1.0.weight',
        'out_convs.1.0.bias',
        'out_convs.1.2.weight',
        'out_convs.1.2.bias',
    ]
    state = learner.state_dict()
    fresh = PrototypeLearner(**cfg).state_dict()
    assert list(state) == list(fresh) == expected
    assert state['fusions.1.0.weight'].shape == (8, 10, 1, 1)
    for key in expected:
        assert state[key].shape == fresh[key].shape
    PrototypeLearner(**cfg).load_state_dict(state, strict=True)


@pytest.mark.parametrize('share', [True, False])
def test_shared_vs_per_level_parameters(share):
    c_in, d, k, levels = [4, 3], 5, 6, 3
    learner = PrototypeLearner(
        in_channels=c_in,
        channels=d,
        num_prototypes=k,
        num_levels=levels,
        share_prototypes=share)
    banks = 1 if share else levels
    assert learner.prototypes.shape == (banks, k, d)
    assert len(learner.fusions) == levels
    assert len(learner.assigners) == len(learner.descriptors) == banks
    assert len(learner.out_convs) == banks
    per_bank = (
        k * d + (d * k + k) + (k * d * d + d) + (2 * d * d + d) + (d * d + d))
    fusion = sum(c_in) * d + d
    total = sum(p.numel() for p in learner.parameters())
    assert total == levels * fusion + banks * per_bank
    first, last = learner.get_prototypes(0), learner.get_prototypes(2)
    assert (first.data_ptr() == last.data_ptr()) == share


def test_prototype_init_unit_norm():
    learner = PrototypeLearner(in_channels=[2], channels=8, num_prototypes=4)
    norms = learner.get_prototypes(0).norm(dim=1)
    assert torch.allclose(norms, torch.ones(4))


def test_bad_levels_channels_sizes_and_arguments_are_refused():
    learner = PrototypeLearner(
        in_channels=[4, 3], channels=2, num_prototypes=2, num_levels=2)
    feats = [torch.rand(1, 4, 4, 4), torch.rand(1, 3, 2, 2)]
    sizes = [(4, 4), (2, 2)]
    name = 'PrototypeLearner'
    with pytest.raises(ValueError, match=f'{name}.*2 feature maps.*got 1'):
        learner(feats[:1], sizes)
    bad = [feats[0], torch.rand(1, 5, 2, 2)]
    with pytest.raises(ValueError, match=r'feats\[1\].*5 channels.*of 3'):
        learner(bad, sizes)
    with pytest.raises(ValueError, match=f'{name}.*2 out_sizes.*got 3'):
        learner(feats, sizes + [(1, 1)])
    with pytest.raises(ValueError, match=f'{name}: level.*got 2'):
        learner.get_prototypes(2)
    with pytest.raises(ValueError, match=f'{name}: num_prototypes.*got 0'):
        PrototypeLearner(in_channels=[4], num_prototypes=0)
    with pytest.raises(ValueError, match=f'{name}: in_channels'):
        PrototypeLearner(in_channels=[])


def test_input_norm_makes_the_fusion_scale_free():
    """[ours] input_norm standardises each teacher map per channel (batch
    statistics in train mode): scaling one teacher layer by 100 and shifting
    it changes nothing."""
    torch.manual_seed(0)
    learner = PrototypeLearner([4, 6],
                               channels=8,
                               num_prototypes=5,
                               input_norm=True).train()
    a, b = torch.randn(3, 4, 6, 6), torch.randn(3, 6, 3, 3)
    out = learner([a, b], [(6, 6)])[0]
    scaled = learner([100 * a + 7, b], [(6, 6)])[0]
    assert torch.allclose(out, scaled, atol=1e-4)
    plain = PrototypeLearner([4, 6], channels=8, num_prototypes=5)
    assert plain.input_norms is None
    assert len(learner.input_norms) == 2
    assert not learner.input_norms[0].affine


def test_fusion_convs_add_3x3_context_per_level():
    learner = PrototypeLearner([4],
                               channels=8,
                               num_prototypes=5,
                               num_levels=2,
                               fusion_convs=2)
    assert len(learner.context) == 2
    convs = [m for m in learner.context[0] if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (3, 3)]
    outs = learner([torch.randn(2, 4, 8, 8)], [(8, 8), (4, 4)])
    assert [tuple(o.shape) for o in outs] == [(2, 8, 8, 8), (2, 8, 4, 4)]

    # a token's output now depends on its neighbours. The global descriptor
    # mixes every token into every output, so zero it to see the local path
    # alone; eval mode, so that BN uses running statistics.

    def changed_by_one_pixel(m):
        nn.init.zeros_(m.descriptors[0].weight)
        nn.init.zeros_(m.descriptors[0].bias)
        m.eval()
        x = torch.randn(1, 4, 8, 8)
        x2 = x.clone()
        x2[:, :, 0, 0] += 5.0
        y0, y1 = m([x], [(8, 8)])[0], m([x2], [(8, 8)])[0]
        return (y0 - y1).abs().sum(1)[0] > 1e-6

    torch.manual_seed(0)
    local = changed_by_one_pixel(
        PrototypeLearner([4], channels=8, num_prototypes=5))
    context = changed_by_one_pixel(
        PrototypeLearner([4], channels=8, num_prototypes=5, fusion_convs=1))
    assert local[0, 0] and not local[1, 1]
    assert context[1, 1] and not context[4, 4]
    with pytest.raises(ValueError, match='fusion_convs'):
        PrototypeLearner([4], fusion_convs=-1)


def test_area_downsample_averages_every_pixel():
    """[ours] downsample='area': an 8x8 map to 2x2 is the mean of each 4x4
    block, and the fused form stays equal to the concatenated one."""
    learner = PrototypeLearner([1],
                               channels=2,
                               num_prototypes=3,
                               downsample='area')
    x = torch.arange(64.).view(1, 1, 8, 8)
    down = learner._resize(x, (2, 2))
    by_hand = torch.tensor([[x[0, 0, :4, :4].mean(), x[0, 0, :4, 4:].mean()],
                            [x[0, 0, 4:, :4].mean(), x[0, 0, 4:, 4:].mean()]])
    assert torch.allclose(down[0, 0], by_hand)
    # upsampling stays bilinear
    up = learner._resize(x[:, :, :2, :2], (4, 4))
    assert torch.allclose(
        up, F.interpolate(x[:, :, :2, :2], size=(4, 4), mode='bilinear'))
    big, small = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 1, 1)
    learner2 = PrototypeLearner([1, 1],
                                channels=2,
                                num_prototypes=3,
                                downsample='area')
    fused = learner2._fuse([big, small], (2, 2), 0)
    conv = learner2.fusions[0][0]
    cat = torch.cat([
        F.adaptive_avg_pool2d(big, (2, 2)),
        F.interpolate(small, size=(2, 2), mode='bilinear')
    ], 1)
    assert torch.allclose(fused, torch.relu(conv(cat)), atol=1e-6)
    with pytest.raises(ValueError, match='downsample'):
        PrototypeLearner([1], downsample='nearest')


def test_fpn_fusion_by_hand_with_extra_levels():
    """[ours] fusion='fpn': laterals, the top-down sum with nearest
    upsampling, a 3x3 conv per level; levels past the teacher's maps are a
    stride-2 conv on the previous level's output (P6/P7)."""
    torch.manual_seed(0)
    learner = PrototypeLearner([3, 5],
                               channels=4,
                               num_prototypes=6,
                               num_levels=4,
                               fusion='fpn')
    assert not hasattr(learner, 'fusions')
    assert len(learner.laterals) == 2 and len(learner.fpn_convs) == 4
    assert len(learner.extra_convs) == 2
    f0, f1 = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 4, 4)
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1)]
    outs = learner._fpn([f0, f1], sizes)

    lat0, lat1 = learner.laterals[0](f0), learner.laterals[1](f1)
    # nearest 2x upsampling repeats every cell of the 4x4 map in a 2x2 block
    up = lat1.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    p0 = learner.fpn_convs[0](lat0 + up)
    p1 = learner.fpn_convs[1](lat1)
    # 4x4 -> 2x2 and 2x2 -> 1x1: a 3x3 conv with stride 2 and padding 1
    p2 = learner.fpn_convs[2](learner.extra_convs[0](p1))
    p3 = learner.fpn_convs[3](learner.extra_convs[1](p2))
    for got, want in zip(outs, [p0, p1, p2, p3]):
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-6)
    assert [tuple(o.shape[-2:]) for o in outs] == sizes

    # the whole learner runs on it, and every parameter gets a gradient
    # (DDP needs each of them used)
    feats_out = learner([f0, f1], sizes)
    assert [tuple(o.shape) for o in feats_out] == [(2, 4, h, w)
                                                   for h, w in sizes]
    sum(o.sum() for o in feats_out).backward()
    missing = [n for n, p in learner.named_parameters() if p.grad is None]
    assert missing == []
    with pytest.raises(ValueError, match="fusion must be 'concat' or 'fpn'"):
        PrototypeLearner([4], fusion='sum')


def test_residual_adds_the_fused_features():
    """[ours] residual=True: F_v = F_t + out_convs([g; F_t]); with the last
    out conv zeroed the output is F_t itself, negative values included."""
    torch.manual_seed(0)
    learner = PrototypeLearner([3],
                               channels=4,
                               num_prototypes=5,
                               fusion='fpn',
                               residual=True)
    nn.init.zeros_(learner.out_convs[0][2].weight)
    nn.init.zeros_(learner.out_convs[0][2].bias)
    x = torch.randn(2, 3, 6, 6)
    f_t = learner._fpn([x], [(6, 6)])[0]
    out = learner([x], [(6, 6)])[0]
    assert torch.allclose(out, f_t, atol=1e-6)
    assert (out < 0).any()
    plain = PrototypeLearner([3], channels=4, num_prototypes=5, fusion='fpn')
    plain.load_state_dict(learner.state_dict())
    assert (plain([x], [(6, 6)])[0] == 0).all()  # ReLU(0) without the skip


def test_assignment_entropy_by_hand():
    """Per position: entropy over K / log K; per prototype: its mass. A
    uniform assignment is 1 and uses every prototype alike; one prototype
    everywhere is 0 and 0; one prototype per position, each prototype at
    the same number of positions, is 0 per position but 1 in usage; and
    (1/2, 1/2, 0, 0) over K = 4 is log 2 / log 4 = 0.5."""
    from mmprockd.models.necks.prototype_stats import (assignment_entropy,
                                                       usage_entropy)
    k = 4
    uniform = torch.full((2, k, 3, 5), 1 / k)
    ent, mass = assignment_entropy(uniform)
    assert ent.shape == (2, 3, 5)
    assert torch.allclose(ent, torch.ones(2, 3, 5), atol=1e-6)
    assert torch.allclose(mass, torch.full((k, ), 2 * 15 / k))
    assert usage_entropy(mass) == pytest.approx(1.0, abs=1e-6)
    one = torch.zeros(1, k, 2, 2)
    one[:, 0] = 1
    ent, mass = assignment_entropy(one)
    assert float(ent.abs().max()) == pytest.approx(0.0, abs=1e-6)
    assert usage_entropy(mass) == pytest.approx(0.0, abs=1e-6)
    each = torch.eye(k).view(1, k, 2, 2)  # position p -> prototype p
    ent, mass = assignment_entropy(each)
    assert float(ent.abs().max()) == pytest.approx(0.0, abs=1e-6)
    assert usage_entropy(mass) == pytest.approx(1.0, abs=1e-6)
    half = torch.tensor([0.5, 0.5, 0.0, 0.0]).view(1, k, 1, 1)
    ent, mass = assignment_entropy(half)
    assert float(ent) == pytest.approx(math.log(2) / math.log(4))
    assert usage_entropy(mass) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r'\(N, K, H, W\)'):
        assignment_entropy(torch.ones(4, 2))


def test_assign_init_from_prototypes_is_netvlads_by_hand():
    """[ours] assign_init='prototypes': w_k = 2 alpha c_k, b_k = -alpha
    |c_k|^2, so softmax over the conv's logits on a unit token equals
    softmax_k(-alpha |f^ - c_k|^2); init_weights keeps it after an
    init_cfg that re-initialises every conv."""
    torch.manual_seed(0)
    learner = PrototypeLearner(
        in_channels=[3],
        channels=4,
        num_prototypes=5,
        assign_init='prototypes',
        assign_alpha=3.0,
        init_cfg=dict(type='Normal', layer='Conv2d', std=1.0))
    learner.init_weights()
    protos = learner.prototypes[0].detach()
    conv = learner.assigners[0]
    assert torch.allclose(conv.weight[:, :, 0, 0], 6.0 * protos)
    assert torch.allclose(conv.bias, -3.0 * protos.pow(2).sum(1))
    token = F.normalize(torch.randn(4), dim=0)
    got = conv(token.view(1, 4, 1, 1)).view(5).softmax(0)
    dist = (token[None] - protos).pow(2).sum(1)
    assert torch.allclose(got, (-3.0 * dist).softmax(0), atol=1e-6)
    # the token's nearest prototype gets the largest share
    assert int(got.argmax()) == int(dist.argmin())
    with pytest.raises(ValueError, match="assign_init must be 'default'"):
        PrototypeLearner(in_channels=[3], channels=4, assign_init='kmeans')
    with pytest.raises(ValueError, match='assign_alpha must be positive'):
        PrototypeLearner(
            in_channels=[3],
            channels=4,
            assign_init='prototypes',
            assign_alpha=0)
