"""ProtoDistiller on a tiny RetinaNet: gradients, freezing, predict,
checkpoints, schedule, NaN guard and bad input."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmprockd.engine import export_student, student_config
from mmprockd.registry import MODELS
from mmprockd.testing import det_batch

NUM_CLASSES = 4


def tiny_student():
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(
            type='DetDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_size_divisor=32),
        backbone=dict(
            type='ResNet',
            depth=18,
            num_stages=4,
            out_indices=(1, 2, 3),
            norm_cfg=dict(type='BN', requires_grad=True),
            style='pytorch'),
        neck=dict(
            type='FPN',
            in_channels=[128, 256, 512],
            out_channels=32,
            start_level=0,
            add_extra_convs='on_input',
            num_outs=4),
        bbox_head=dict(
            type='RetinaHead',
            num_classes=NUM_CLASSES,
            in_channels=32,
            stacked_convs=1,
            feat_channels=32,
            anchor_generator=dict(
                type='AnchorGenerator',
                octave_base_scale=4,
                scales_per_octave=3,
                ratios=[0.5, 1.0, 2.0],
                strides=[8, 16, 32, 64]),
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[.0, .0, .0, .0],
                target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(
                type='FocalLoss',
                use_sigmoid=True,
                gamma=2.0,
                alpha=0.25,
                loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.4,
                min_pos_iou=0,
                ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        test_cfg=dict(
            nms_pre=100,
            min_bbox_size=0,
            score_thr=0.0,
            nms=dict(type='nms', iou_threshold=0.5),
            max_per_img=20))


def tiny_teacher(**kwargs):
    cfg = dict(
        type='mmprockd.FrozenTeacher',
        backbone=dict(
            type='mmpretrain.MobileNetV2',
            widen_factor=0.25,
            out_indices=(2, 4)),
        layers=['layer3', 'layer5'])
    cfg.update(kwargs)
    return cfg


def tiny_cfg(**kwargs):
    cfg = dict(
        type='mmprockd.ProtoDistiller',
        student=tiny_student(),
        teacher=tiny_teacher(),
        student_channels=[32] * 4,
        learner=dict(
            type='mmprockd.PrototypeLearner', channels=16, num_prototypes=6),
        kl_loss=dict(type='mmprockd.ConsistencyKLLoss'))
    cfg.update(kwargs)
    return cfg


def build(cfg=None, **kwargs):
    """The model of ``cfg``, by default :func:`tiny_cfg` with ``kwargs``,
    built with seed 0 and initialised."""
    init_default_scope('mmdet')
    torch.manual_seed(0)
    cfg = tiny_cfg(**kwargs) if cfg is None else cfg
    model = MODELS.build(Config(dict(model=cfg)).model)
    model.init_weights()
    return model


def loss_step(model, data=None):
    data = model.data_preprocessor(data or det_batch(2, (64, 96)), True)
    return model(**data, mode='loss')


def grads_of(module):
    return [p.grad for p in module.parameters()]


def test_teacher_is_frozen_outside_the_module_tree_and_in_eval():
    model = build()
    model.train()
    assert not model.teacher.training
    assert not any(m.training for m in model.teacher.modules())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    # not a submodule: never in the state dict, the optimizer or DDP
    assert not any(k.startswith('teacher') for k in model.state_dict())
    teacher_ids = {id(p) for p in model.teacher.parameters()}
    assert not teacher_ids & {id(p) for p in model.parameters()}


def test_an_ema_copy_shares_the_frozen_teacher_and_averages_the_rest():
    """mmengine's EMAHook deep-copies the whole model: the copy holds the
    same frozen teacher and feature cache (one teacher in memory, not two),
    its own student and branch, and averages them."""
    from mmengine.model import ExponentialMovingAverage
    model = build(teacher_cache=dict(max_items=8, dtype='fp32'))
    ema = ExponentialMovingAverage(model, momentum=0.5)
    avg = ema.module
    assert avg.teacher is model.teacher
    assert avg.teacher_cache is model.teacher_cache
    for name in ('student', 'learner', 'augment'):
        ours = dict(getattr(model, name).state_dict())
        theirs = dict(getattr(avg, name).state_dict())
        assert ours.keys() == theirs.keys()
        for k in ours:
            assert torch.equal(ours[k], theirs[k]), k
            assert ours[k].data_ptr() != theirs[k].data_ptr(), k
    # deepcopy elsewhere in the model still copies: the copy's student is
    # not the model's
    assert avg.student is not model.student
    w = model.student.bbox_head.retina_cls.weight
    start = w.detach().clone()
    ema.update_parameters(model)  # the first call copies
    with torch.no_grad():
        w.add_(2.0)
    ema.update_parameters(model)  # then (1 - m) * avg + m * model
    torch.testing.assert_close(avg.student.bbox_head.retina_cls.weight,
                               start + 1.0)
    # the copy distils: its teacher features come from the shared cache
    hits = model.teacher_cache.hits
    loss_step(model)
    assert 'distill.loss_kl' in loss_step(avg)
    assert model.teacher_cache.hits > hits


def test_teacher_dropout_and_droppath_stay_off_in_train_mode():
    teacher = MODELS.build(
        dict(
            type='mmprockd.FrozenTeacher',
            backbone=dict(
                type='mmpretrain.SwinTransformer',
                arch='tiny',
                out_indices=(1, ),
                drop_path_rate=0.5,
                drop_rate=0.5,
                pad_small_map=True),
            layers=['norm1']))
    teacher.train()
    assert not any(m.training for m in teacher.modules())
    # a part switched to training on its own is put back by the next call
    teacher.model.stages[0].train()
    assert teacher.model.stages[0].blocks[0].training
    teacher.train()
    assert not any(m.training for m in teacher.modules())
    x = torch.rand(1, 3, 64, 64)
    torch.manual_seed(1)
    a = teacher(x)[0]
    torch.manual_seed(2)
    b = teacher(x)[0]
    assert torch.equal(a, b)
    assert a.shape == (1, 192, 8, 8)


def test_teacher_runs_only_up_to_the_requested_layers():
    teacher = MODELS.build(tiny_teacher(layers=['layer3']))
    calls = []
    teacher.model.layer5.register_forward_hook(lambda *a: calls.append(1))
    teacher.model.conv2.register_forward_hook(lambda *a: calls.append(2))
    out = teacher(torch.rand(1, 3, 64, 64))
    assert calls == []
    assert out[0].shape == (1, 8, 8, 8)


def test_bf16_teacher_returns_float32_close_to_fp32():
    torch.manual_seed(0)
    t32 = MODELS.build(tiny_teacher())
    # forced: on the CPU a bf16 teacher runs in fp32 by default
    t16 = MODELS.build(tiny_teacher(dtype='bf16', force_dtype=True))
    t16.model.load_state_dict(t32.model.state_dict())
    x = torch.rand(1, 3, 64, 64)
    a, b = t32(x)[1], t16(x)[1]
    assert b.dtype == torch.float32
    assert torch.allclose(a, b, rtol=0.1, atol=0.1)


def test_loss_keys_and_gradient_routes():
    model = build()
    losses = loss_step(model)
    keys = set(losses)
    assert {
        'student.loss_cls', 'student.loss_bbox', 'distill.proto.loss_cls',
        'distill.proto.loss_bbox', 'distill.loss_kl'
    } <= keys
    proto = sum(
        sum(v) for k, v in losses.items() if k.startswith('distill.proto.'))
    proto.backward(retain_graph=True)
    # the prototype-branch loss trains the prototypes, learner and augment
    assert model.learner.prototypes.grad.abs().sum() > 0
    assert all(g is not None and g.abs().sum() > 0
               for g in grads_of(model.learner.fusions))
    assert all(g is not None for g in grads_of(model.augment))
    # ... and not the student's backbone (its features are not used there)
    assert all(g is None for g in grads_of(model.student.backbone))
    model.zero_grad(set_to_none=True)
    losses['distill.loss_kl'].backward()
    # the consistency loss trains the student, not the prototype branch
    assert any(g is not None and g.abs().sum() > 0
               for g in grads_of(model.student.backbone))
    assert all(g is None for g in grads_of(model.learner))
    assert all(p.grad is None for p in model.teacher.parameters())


def test_proto_head_grad_false_keeps_the_head_out_of_the_branch():
    shared = build()
    own = build(proto_head_grad=False)
    a, b = loss_step(shared), loss_step(own)
    # same weights (seeded), same values: only the gradient routes differ
    assert torch.allclose(
        sum(a['distill.proto.loss_cls']), sum(b['distill.proto.loss_cls']))
    for model, losses in ((shared, a), (own, b)):
        sum(
            sum(v) for k, v in losses.items()
            if k.startswith('distill.proto.')).backward()
    head_grads = grads_of(own.student.bbox_head)
    assert all(g is None for g in head_grads)
    assert all(g is not None and g.abs().sum() > 0
               for g in grads_of(shared.student.bbox_head))
    assert own.learner.prototypes.grad.abs().sum() > 0
    assert all(g is not None for g in grads_of(own.augment))


def test_distill_indices_draws_a_sorted_random_subset():
    model = build(distill_fraction=0.25)
    model.sampler.seed = 7
    seen = set()
    for _ in range(60):
        idx = model.distill_indices(8)
        assert idx.tolist() == sorted(set(idx.tolist()))
        assert len(idx) == 2  # 8 * 0.25, no fractional part
        seen.update(idx.tolist())
    assert seen == set(range(8))  # random, not always the first images
    # the sampler counts what it drew (benchmark_cost.py reports it)
    assert (model.sampler.used, model.sampler.seen) == (120, 480)
    # under 2 images expected, 2 images or none with the same expectation
    # (one image would break BN in pooled heads): 0.5 of 2, 0.8 of 8
    for batch, mean in ((2, 0.5), (8, 0.8)):
        model.distill_fraction = mean / batch
        counts = []
        for _ in range(400):
            idx = model.distill_indices(batch)
            counts.append(batch if idx is None else idx.numel())
        assert set(counts) == {0, 2}
        assert abs(sum(counts) / 400 - mean) < 0.15
    model.distill_fraction = 0.3  # 3 images expected of 10: 3 always
    assert {len(model.distill_indices(10)) for _ in range(20)} == {3}
    model.distill_fraction = 0.35  # 3.5 expected: 3 or 4
    assert {len(model.distill_indices(10)) for _ in range(60)} == {3, 4}
    model.distill_fraction = 1.0
    assert model.distill_indices(8) is None


def test_distill_draws_depend_on_seed_and_step_only():
    """Two ranks with the shared seed draw the same subsets step by step,
    whatever else consumed the global RNG in between."""
    a, b = build(distill_fraction=0.3), build(distill_fraction=0.3)
    a.sampler.seed = b.sampler.seed = 123
    draws_a = [a.distill_indices(4).tolist() for _ in range(20)]
    torch.rand(100)
    draws_b = [b.distill_indices(4).tolist() for _ in range(20)]
    assert draws_a == draws_b
    assert len({tuple(d) for d in draws_a}) > 3


def test_a_step_that_draws_no_image_skips_the_teacher():
    model = build(distill_fraction=0.25)
    model.distill_indices = lambda n: torch.tensor([], dtype=torch.long)
    calls = []
    model.teacher.from_student_input = lambda *a: calls.append(a)
    losses = loss_step(model)
    assert calls == []
    assert not any(k.startswith('distill.proto') for k in losses)
    assert 'distill.loss_kl' not in losses
    # every distillation parameter still gets a (zero) gradient for DDP
    losses['distill.loss_zero'].backward()
    assert all(p.grad is not None for p in model.learner.parameters())


def test_distill_fraction_runs_teacher_branch_and_kl_on_the_subset():
    model = build(distill_fraction=0.5)
    model.distill_indices = lambda n: torch.tensor([1, 3])
    teacher_batches, calls = [], []
    from_input = model.teacher.from_student_input

    def teacher_spy(inputs, preprocessor):
        teacher_batches.append(inputs.shape[0])
        return from_input(inputs, preprocessor)

    iface_loss = model.iface.loss

    def iface_spy(inputs, feats, samples, **kwargs):
        out = iface_loss(inputs, feats, samples, **kwargs)
        calls.append(([s.img_id for s in samples], out[1]))
        return out

    model.teacher.from_student_input = teacher_spy
    model.iface.loss = iface_spy
    losses = loss_step(model, det_batch(4, (64, 96)))
    # the student's own loss uses all 4 images, the branch images 1 and 3
    assert [ids for ids, _ in calls] == [[0, 1, 2, 3], [1, 3]]
    assert teacher_batches == [2]
    student_logits, proto_logits = calls[0][1], calls[1][1]
    assert student_logits[0].shape[0] == 4 and proto_logits[0].shape[0] == 2
    expected_kl = model.kl_loss([lg[[1, 3]] for lg in student_logits],
                                proto_logits, None)
    assert torch.allclose(losses['distill.loss_kl'], expected_kl)
    # the branch on images 1 and 3 equals the whole-batch recipe on them
    # (every level is a prototype level, so the branch does not depend on
    # the other images)
    full = build()
    batch = det_batch(4, (64, 96))
    pair = dict(
        inputs=[batch['inputs'][i] for i in (1, 3)],
        data_samples=[batch['data_samples'][i] for i in (1, 3)])
    ref = loss_step(full, pair)
    for key in ('distill.proto.loss_cls', 'distill.proto.loss_bbox'):
        assert torch.allclose(sum(losses[key]), sum(ref[key]), atol=1e-6)
    assert torch.allclose(
        sum(losses['student.loss_cls']),
        sum(loss_step(build(), batch)['student.loss_cls']))


def test_mixed_precision_step_is_finite_and_close_to_fp32():
    """A loss step under autocast (bf16 on the CPU, as ``--amp`` uses fp16
    on a GPU): every loss is float32 and finite, gradients reach the
    prototypes and the student, and the task losses stay within 5% of the
    fp32 step on the same weights."""
    fp32, mixed = build(), build()
    ref = loss_step(fp32)
    data = mixed.data_preprocessor(det_batch(2, (64, 96)), True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = mixed(**data, mode='loss')
    for key in ('student.loss_cls', 'distill.proto.loss_cls',
                'distill.proto.loss_bbox'):
        got, want = sum(losses[key]), sum(ref[key])
        assert got.dtype == torch.float32 and torch.isfinite(got), key
        assert abs(float(got) - float(want)) < 0.05 * abs(float(want)), key
    assert losses['distill.loss_kl'].dtype == torch.float32
    assert torch.isfinite(losses['distill.loss_kl'])
    total, _ = mixed.parse_losses(losses)
    total.backward()
    grad = mixed.learner.prototypes.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in mixed.student.backbone.parameters())


def test_level_adapter_gets_gradients_when_channels_differ():
    model = build(
        learner=dict(
            type='mmprockd.PrototypeLearner', channels=8, num_prototypes=6))
    losses = loss_step(model)
    sum(losses['distill.proto.loss_cls']).backward()
    convs = [
        c for c in model.level_adapter.convs if isinstance(c, torch.nn.Conv2d)
    ]
    assert len(convs) == 4
    assert all(c.weight.grad.abs().sum() > 0 for c in convs)


def test_the_students_preprocessor_is_used_whatever_the_runner_passes():
    # the Runner inserts a config's top-level data_preprocessor into a model
    # dict that has none; the distiller must keep the student's own
    model = build(
        data_preprocessor=dict(
            type='DetDataPreprocessor', mean=[0., 0., 0.], std=[1., 1., 1.]))
    assert model.data_preprocessor is model.student.data_preprocessor
    assert torch.allclose(model.data_preprocessor.mean.flatten(),
                          torch.tensor([123.675, 116.28, 103.53]))


def test_a_student_without_preprocessor_gets_the_runners():
    # mmpretrain configs keep data_preprocessor at the top level only; the
    # student must get it, or the exported student_config.py (plain model,
    # Runner inserts it) would normalise while the distilled one did not
    student = tiny_student()
    student.pop('data_preprocessor')
    model = build(
        student=student,
        data_preprocessor=dict(
            type='DetDataPreprocessor', mean=[1., 2., 3.], std=[4., 5., 6.]))
    assert model.data_preprocessor is model.student.data_preprocessor
    assert model.data_preprocessor.std.flatten().tolist() == [4., 5., 6.]


def test_predict_is_the_students_own():
    model = build().eval()
    data = model.data_preprocessor(det_batch(2, (64, 96)), False)
    ours = model(**copy.deepcopy(data), mode='predict')
    theirs = model.student(**copy.deepcopy(data), mode='predict')
    for a, b in zip(ours, theirs):
        assert torch.equal(a.pred_instances.bboxes, b.pred_instances.bboxes)
        assert torch.equal(a.pred_instances.scores, b.pred_instances.scores)
    calls = []
    model.teacher.model.conv1.register_forward_hook(lambda *a: calls.append(1))
    model(**data, mode='predict')
    model(data['inputs'], mode='tensor')
    assert calls == []


def test_schedule_scale_zero_skips_teacher_but_touches_params():
    model = build()
    model.distill_scale = 0.0
    calls = []
    model.teacher.model.conv1.register_forward_hook(lambda *a: calls.append(1))
    losses = loss_step(model)
    assert calls == []
    assert not any(k.startswith('distill.proto') for k in losses)
    assert float(losses['distill.loss_zero']) == 0.0
    losses['distill.loss_zero'].backward()
    # every distillation parameter has a (zero) gradient: DDP without
    # find_unused_parameters is happy
    assert all(g is not None for g in grads_of(model.learner))
    assert all(g is not None for g in grads_of(model.augment))


def test_distill_scale_multiplies_distill_losses():
    model = build()
    full = loss_step(model)
    model.distill_scale = 0.25
    quarter = loss_step(model)
    assert torch.allclose(quarter['distill.loss_kl'],
                          0.25 * full['distill.loss_kl'])
    assert torch.allclose(
        sum(quarter['distill.proto.loss_cls']),
        0.25 * sum(full['distill.proto.loss_cls']))
    assert torch.allclose(
        sum(quarter['student.loss_cls']), sum(full['student.loss_cls']))


def test_nan_guard_drops_distill_losses(monkeypatch):
    model = build()
    monkeypatch.setattr(model.kl_loss, 'forward',
                        lambda *a, **k: torch.tensor(float('nan')))
    losses = loss_step(model)
    assert model.nan_skips == 1
    assert 'distill.loss_kl' not in losses
    assert 'distill.loss_zero' in losses
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)


def _kl_from(monkeypatch, model, finite):
    """Make the KL loss NaN or finite, step by step, as ``finite`` says."""
    flags = iter(finite)
    monkeypatch.setattr(
        model.kl_loss, 'forward',
        lambda *a, **k: torch.tensor(0.5 if next(flags) else float('nan')))


@pytest.mark.parametrize('nan_guard', [True, False])
def test_max_nan_steps_stops_at_the_nth_consecutive_step(
        monkeypatch, nan_guard):
    model = build(max_nan_steps=3, nan_guard=nan_guard)
    # NaN, NaN, finite (the count resets), NaN, NaN, NaN (the 3rd in a row)
    _kl_from(monkeypatch, model, [False, False, True, False, False, False])
    streaks = []
    for _ in range(5):
        losses = loss_step(model)
        streaks.append(model.nan_streak)
        assert ('distill.loss_kl' in losses) == (not nan_guard
                                                 or streaks[-1] == 0)
    assert streaks == [1, 2, 0, 1, 2]
    assert model.nan_skips == (4 if nan_guard else 0)
    with pytest.raises(RuntimeError) as info:
        loss_step(model)
    assert model.nan_streak == 3
    message = str(info.value)
    assert "distillation loss ['distill.loss_kl'] was not finite" in message
    assert 'for 3 consecutive steps (max_nan_steps=3)' in message


def test_steps_without_distillation_leave_the_nan_count_alone(monkeypatch):
    model = build(max_nan_steps=2)
    _kl_from(monkeypatch, model, [False])
    loss_step(model)
    model.distill_scale = 0.0  # no teacher, no distillation loss
    loss_step(model)
    assert model.nan_streak == 1


def test_max_nan_steps_none_never_stops(monkeypatch):
    model = build(max_nan_steps=None)
    _kl_from(monkeypatch, model, [False] * 3)
    for _ in range(3):
        loss_step(model)
    assert model.nan_skips == 3
    with pytest.raises(ValueError, match='>= 1 or None, got 0'):
        build(max_nan_steps=0)


def test_student_only_checkpoint_loads_strictly_into_plain_student(tmp_path):
    model = build()
    out = tmp_path / 'student.pth'
    cfg = Config(
        dict(
            model=tiny_cfg(),
            default_scope='mmdet',
            custom_imports=dict(
                imports=['mmprockd'], allow_failed_imports=False)))
    cfg_path = export_student(model.state_dict(), str(out), cfg=cfg)
    ckpt = torch.load(out)
    keys = list(ckpt['state_dict'])
    assert not any(
        k.startswith(('teacher', 'learner', 'augment', 'level_adapter',
                      'student.')) for k in keys)
    plain_cfg = Config.fromfile(cfg_path)
    assert plain_cfg.model.type == 'RetinaNet'
    assert 'custom_imports' not in plain_cfg  # a plain mmdet model
    plain = MODELS.build(plain_cfg.model)
    plain.load_state_dict(ckpt['state_dict'], strict=True)
    data = plain.data_preprocessor(det_batch(1, (64, 96)), False)
    a = plain.eval()(**copy.deepcopy(data), mode='tensor')
    b = model.eval()(**data, mode='tensor')
    assert all(torch.equal(x, y) for x, y in zip(a[0], b[0]))


def test_student_config_keeps_custom_imports_with_the_plugin():
    cfg = Config(
        dict(
            model=tiny_cfg(),
            custom_imports=dict(
                imports=['mmprockd'], allow_failed_imports=False)))
    cfg.model.student.neck = dict(
        type='mmprockd.AugmentedNeck',
        neck=cfg.model.student.neck,
        augment=dict(type='mmprockd.TaskAdaptiveAugment', num_prototypes=6))
    assert student_config(cfg).custom_imports.imports == ['mmprockd']


def test_student_side_plugin_receives_the_prototypes():
    student = tiny_student()
    student['neck'] = dict(
        type='mmprockd.AugmentedNeck',
        neck=student['neck'],
        augment=dict(type='mmprockd.TaskAdaptiveAugment', num_prototypes=6))
    model = build(
        student=student,
        student_channels=[32] * 4,
        learner=dict(
            type='mmprockd.PrototypeLearner', channels=32, num_prototypes=6))
    loss_step(model)
    aug = model.student.neck.augments[0]
    assert torch.equal(aug.prototypes, model.learner.get_prototypes(0))
    assert not aug.prototypes.requires_grad


def test_an_old_feature_mimic_config_names_the_new_type():
    """The feature-mimic baseline is PKDDistiller (test_pkd_distiller.py):
    ProtoDistiller without a learner says so at build."""
    with pytest.raises(ValueError) as err:
        build(
            learner=None,
            kl_loss=None,
            feat_loss=dict(type='mmprockd.FeatureMimicLoss'))
    assert str(err.value).startswith('ProtoDistiller: learner=None')
    assert "type='mmprockd.PKDDistiller'" in str(err.value)


@pytest.mark.parametrize('kwargs,exc,text', [
    (dict(teacher=tiny_teacher(layers=['layer3', 'layer55'])), KeyError,
     "layer 'layer55' does not exist"),
    (dict(
        learner=dict(
            type='mmprockd.PrototypeLearner',
            in_channels=[8, 9],
            channels=16,
            num_prototypes=6)), ValueError,
     r'learner.in_channels=\[8, 9\] but the teacher layers'),
    (dict(teacher=tiny_teacher(ckpt='/no/such/teacher.pth')),
     FileNotFoundError, 'teacher checkpoint .*/no/such/teacher.pth'),
    (dict(student_ckpt='/no/such/student.pth'), FileNotFoundError,
     'student_ckpt'),
    (dict(proto_levels=[0, 7]), ValueError, r'proto_levels \[7\]'),
    (dict(learner=None), ValueError, 'mmprockd.PKDDistiller'),
    (dict(distill_fraction=0), ValueError,
     r'distill_fraction must be in \(0, 1\], got 0'),
    (dict(distill_fraction=1.5), ValueError,
     r'distill_fraction must be in \(0, 1\], got 1.5'),
])
def test_bad_input_is_a_clear_error_at_build(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        build(**kwargs)


def test_branch_pseudo_loss_needs_a_classifier_student():
    with pytest.raises(
            ValueError,
            match="it needs a classifier student, got a 'det' student"):
        build(branch_pseudo_loss=dict(type='mmprockd.PseudoLabelLoss'))


def test_wrong_student_channels_is_refused_at_build():
    with pytest.raises(
            ValueError,
            match=r'model.student_channels=\[64, 64, 64, 64\], but the '
            r'feature levels of the student RetinaNet \(ResNet backbone, '
            r'then FPN\) have \[32, 32, 32, 32\] channels: set '
            r'student_channels=\[32, 32, 32, 32\]'):
        build(student_channels=[64] * 4)


def test_teacher_checkpoint_errors_list_keys(tmp_path):
    teacher = MODELS.build(tiny_teacher())
    good = {'backbone.' + k: v for k, v in teacher.model.state_dict().items()}
    path = tmp_path / 'cls.pth'
    torch.save(dict(state_dict=good), path)
    loaded = MODELS.build(tiny_teacher(ckpt=str(path)))  # prefix auto
    k = 'conv1.conv.weight'
    assert torch.equal(loaded.model.state_dict()[k], good['backbone.' + k])
    bad = dict(good)
    bad.pop('backbone.conv1.conv.weight')
    torch.save(dict(state_dict=bad), path)
    with pytest.raises(ValueError, match=r"1 missing keys \['conv1.conv"):
        MODELS.build(tiny_teacher(ckpt=str(path), ckpt_prefix='backbone.'))
    (tmp_path / 'junk.pth').write_text('not a checkpoint')
    with pytest.raises(ValueError, match='not a readable checkpoint'):
        MODELS.build(tiny_teacher(ckpt=str(tmp_path / 'junk.pth')))


def test_softmax_detection_head_kl_per_anchor_by_hand():
    """A RetinaHead with a softmax classifier: scores are (N, A*(C+1), H, W).
    The KL takes its softmax over the C+1 classes of each anchor, never
    across anchors, and sums the anchors of a location."""
    student = tiny_student()
    student['bbox_head']['loss_cls'] = dict(
        type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
    model = build(student=student)
    iface = model.iface
    assert iface.kl_kind == 'softmax' and model.kl_loss.kind == 'softmax'
    a, c1 = 9, NUM_CLASSES + 1
    assert iface.num_anchors == a
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, a * c1, 3, 4, generator=g)
    target = torch.randn(2, a * c1, 3, 4, generator=g)
    p_lvl, t_lvl = iface._logits(([pred], )), iface._logits(([target], ))
    assert p_lvl[0].shape == (2, c1, a, 3, 4)
    # anchor 5 of location (1, 2) of image 1, by hand
    ch = slice(5 * c1, 6 * c1)
    assert torch.equal(p_lvl[0][1, :, 5, 1, 2], pred[1, ch, 1, 2])
    loss = model.kl_loss(p_lvl, t_lvl)
    p = target.view(2, a, c1, 3, 4).softmax(2)
    q = pred.view(2, a, c1, 3, 4).softmax(2)
    by_hand = (p * (p.log() - q.log())).sum(2).sum(1).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    losses = loss_step(model)
    assert torch.isfinite(losses['distill.loss_kl'])


def test_softmax_head_without_anchor_count_is_refused_at_build():
    from mmprockd.models.distillers.student_interface import StudentInterface
    student = tiny_student()
    student['bbox_head']['loss_cls'] = dict(
        type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
    init_default_scope('mmdet')
    model = MODELS.build(student)
    del model.bbox_head.num_base_priors  # a head that does not say it
    with pytest.raises(ValueError, match='kl_loss=None'):
        StudentInterface(model, 'det')


def test_own_branch_head_trains_its_copy_never_the_students_head():
    """[ours] branch_head='own': the branch runs a copy of the student's
    heads with its own weights. Its task loss trains that copy and the
    branch modules; the student's head learns only from its own loss and
    the KL, and the student-only checkpoint holds no branch weights."""
    model = build(branch_head='own')
    branch = model.branch_student
    assert branch is not None and branch.bbox_head is not \
        model.student.bbox_head
    assert isinstance(branch.backbone, torch.nn.Identity)
    assert isinstance(branch.neck, torch.nn.Identity)
    losses = loss_step(model)
    losses['distill.proto.loss_cls'][0].backward(retain_graph=True)
    assert all(p.grad is None for p in model.student.parameters())
    assert any(g is not None and g.abs().sum() > 0
               for g in grads_of(branch.bbox_head))
    assert model.learner.prototypes.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    # the KL trains the student's head and not the branch (target detached)
    losses['distill.loss_kl'].backward()
    assert any(g is not None and g.abs().sum() > 0
               for g in grads_of(model.student.bbox_head))
    assert all(g is None for g in grads_of(branch.bbox_head))
    keys = model.state_dict().keys()
    assert any(k.startswith('branch_student.bbox_head.') for k in keys)
    assert not any(k.startswith('student.') and 'branch' in k for k in keys)


def test_kl_scale_zero_skips_the_kl():
    model = build()
    model.kl_scale = 0.0
    assert 'distill.loss_kl' not in loss_step(model)
    model.kl_scale = 0.5
    half = loss_step(model)['distill.loss_kl']
    model.kl_scale = 1.0
    assert loss_step(model)['distill.loss_kl'].item() == pytest.approx(
        2 * half.item(), rel=1e-5)


def test_bad_branch_head_is_refused():
    with pytest.raises(ValueError, match="branch_head.*'copy'"):
        build(branch_head='copy')


def test_student_init_is_the_student_alone_init_for_the_same_seed():
    """Paired comparisons need the same student init: building the teacher
    and the branch must not shift the RNG the student's init draws from."""
    init_default_scope('mmdet')
    torch.manual_seed(3)
    alone = MODELS.build(tiny_student())
    alone.init_weights()
    for kwargs in (dict(), dict(branch_head='own')):
        torch.manual_seed(3)
        model = MODELS.build(Config(dict(model=tiny_cfg(**kwargs))).model)
        model.init_weights()
        want = alone.state_dict()
        got = model.student.state_dict()
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want), kwargs
    # and the branch is still randomly initialised, from its own draws
    torch.manual_seed(4)
    other = MODELS.build(Config(dict(model=tiny_cfg())).model)
    assert not torch.equal(other.learner.prototypes, model.learner.prototypes)


def loss_with_branch_spy(model, levels):
    """One loss step that records what the prototype branch saw and gave at
    ``levels``: the student's maps, the branch's maps and assignments."""
    data = model.data_preprocessor(det_batch(2, (64, 96)), True)
    captured = {}
    real = model.prototype_branch

    def spy(teacher_feats, student_feats, return_assign=False):
        out, assigns = real(teacher_feats, student_feats, return_assign=True)
        captured['student'] = [student_feats[i] for i in levels]
        captured['branch'] = [out[i] for i in levels]
        captured['assigns'] = assigns
        return (out, assigns) if return_assign else out

    model.prototype_branch = spy
    return model(**data, mode='loss'), captured


def test_branch_feature_mimic_by_hand_and_its_gradient_route():
    """[ours] branch_feat_loss: PKD between each student prototype level
    and the branch's map of that level; it trains the student, never the
    branch (detached target)."""
    from mmprockd.models.losses import BranchMimicLoss
    from mmprockd.models.losses.feature_mimic_loss import pkd_standardise

    # by hand on one level: s = (0, 2) and b = (1, 3) standardise to the
    # same map, so the loss is 0; s = (0, 2), b = (3, 1) gives
    # MSE((-1/sqrt2, 1/sqrt2), (1/sqrt2, -1/sqrt2)) / 2 = 2 / 2 = 1 per
    # unit weight
    s = torch.tensor([0., 2.]).view(1, 1, 1, 2)
    crit = BranchMimicLoss(loss_weight=3.0)
    assert crit([s], [s + 1]).item() == pytest.approx(0.0, abs=1e-6)
    assert crit([s], [3 - s]).item() == pytest.approx(3.0, rel=1e-5)
    with pytest.raises(ValueError, match='differ'):
        crit([s], [s.view(1, 1, 2, 1)])

    model = build(
        kl_loss=None,
        branch_head='own',
        proto_levels=[1, 2],
        branch_feat_loss=dict(type='mmprockd.BranchMimicLoss'))
    losses, captured = loss_with_branch_spy(model, levels=(1, 2))
    by_hand = sum(
        torch.nn.functional.mse_loss(pkd_standardise(a), pkd_standardise(b)) /
        2 for a, b in zip(captured['student'], captured['branch']))
    assert losses['distill.loss_branch_feat'].item() == pytest.approx(
        by_hand.item(), rel=1e-5)
    model.zero_grad()
    losses['distill.loss_branch_feat'].backward()
    assert any(g is not None and g.abs().sum() > 0
               for g in grads_of(model.student.neck))
    assert all(g is None or g.abs().sum() == 0
               for g in grads_of(model.learner))


def test_assignment_distillation_by_hand_and_its_gradient_route():
    """[ours] assign_loss: the student's prototype levels, projected, are
    assigned over the branch's prototypes and matched (KL) to the branch's
    assignment; it trains the student and the projectors, never the
    branch."""
    model = build(
        kl_loss=None,
        branch_head='own',
        proto_levels=[1, 2],
        assign_loss=dict(type='mmprockd.PrototypeAssignLoss', loss_weight=2.))
    assert model.assign_loss.student_channels == [32, 32]
    assert model.assign_loss.channels == 16
    losses, captured = loss_with_branch_spy(model, levels=(1, 2))
    by_hand = 0.
    for j, (s, p) in enumerate(zip(captured['student'], captured['assigns'])):
        assert p.shape == (2, 6) + s.shape[-2:]
        conv = model.learner.assigners[0]
        tokens = torch.nn.functional.normalize(
            model.assign_loss.projectors[j](s), dim=1)
        log_q = torch.nn.functional.conv2d(tokens, conv.weight,
                                           conv.bias).log_softmax(1)
        by_hand = by_hand + (p * (p.log() - log_q)).sum(1).mean()
    assert losses['distill.loss_assign'].item() == pytest.approx(
        2 * by_hand.item(), rel=1e-5)
    model.zero_grad()
    losses['distill.loss_assign'].backward()
    assert any(g is not None and g.abs().sum() > 0
               for g in grads_of(model.student.neck))
    assert all(g is not None and g.abs().sum() > 0
               for g in grads_of(model.assign_loss))
    assert all(g is None or g.abs().sum() == 0
               for g in grads_of(model.learner))


def test_frozen_branch_is_a_fixed_teacher_that_still_teaches():
    """[ours] branch_frozen (DistillScheduleHook(branch_stop=...)): the
    branch runs in eval mode without gradient, its parameters and norm
    buffers stay exactly as they were through an optimiser step, its task
    loss is gone, and the KL still trains the student."""
    model = build(
        branch_head='own',
        learner=dict(
            type='mmprockd.PrototypeLearner',
            channels=16,
            num_prototypes=6,
            fusion_convs=1))
    model.train()
    assert 'distill.proto.loss_cls' in loss_step(model)
    model.branch_frozen = True
    branch = model._branch_modules()
    assert len(branch) == 4
    model.train()  # what the runner calls after each validation
    assert all(not m.training for b in branch for m in b.modules())
    assert model.student.training
    bn = [
        m for m in model.learner.modules()
        if isinstance(m, torch.nn.BatchNorm2d) and m.track_running_stats
    ]
    assert bn, 'the test needs norm buffers in the branch'
    before = {
        k: v.clone()
        for b in ('learner', 'augment', 'level_adapter', 'branch_student')
        for k, v in getattr(model, b).state_dict(prefix=b + '.').items()
    }
    student_before = {
        k: v.clone()
        for k, v in model.student.state_dict().items()
    }
    losses = loss_step(model)
    # its losses are logged (no stale value in the log) but not trained
    frozen = {k: v for k, v in losses.items() if k.startswith('distill.proto')}
    assert 'distill.proto.loss_cls' in frozen
    assert all(not t.requires_grad for v in frozen.values()
               for t in (v if isinstance(v, list) else [v]))
    assert losses['distill.loss_kl'].item() > 0
    total, log_vars = model.parse_losses(losses)
    trained, _ = model.parse_losses({
        k: v
        for k, v in losses.items() if k not in frozen
    })
    assert torch.equal(total, trained)
    assert log_vars['loss'] == total
    cls_loss = losses['distill.proto.loss_cls']
    expected = sum(
        x.mean()
        for x in cls_loss) if isinstance(cls_loss, list) else cls_loss.mean()
    assert log_vars['distill.proto.loss_cls'].item() == pytest.approx(
        expected.item())
    assert log_vars['distill.proto.loss_cls'].item() > 0
    optim = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    optim.zero_grad(set_to_none=True)
    total.backward()
    assert all(p.grad is None for b in branch for p in b.parameters())
    assert any(g is not None and g.abs().sum() > 0
               for g in grads_of(model.student.bbox_head))
    optim.step()
    after = {
        k: v
        for b in ('learner', 'augment', 'level_adapter', 'branch_student')
        for k, v in getattr(model, b).state_dict(prefix=b + '.').items()
    }
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    changed = [
        k for k, v in model.student.state_dict().items()
        if not torch.equal(v, student_before[k])
    ]
    assert any(k.startswith('bbox_head.') for k in changed)
    # unfrozen again: back in train mode, its task loss back
    model.branch_frozen = False
    assert all(m.training for b in branch for m in b.modules())
    assert 'distill.proto.loss_cls' in loss_step(model)


def _counting_teacher(model):
    """Record the batch size of every teacher call of ``model``."""
    calls = []
    real = model.teacher.from_student_input

    def counted(inputs, *args):
        calls.append(inputs.shape[0])
        return real(inputs, *args)

    model.teacher.from_student_input = counted
    return calls


def test_branch_cache_serves_a_frozen_branch_exactly_without_the_teacher():
    """[ours] branch_cache: a frozen branch's logits (and the maps of
    branch_feat_loss and the assignments of assign_loss) are stored per
    image; a later step takes them from
    the store, skips the teacher and the branch, and distils the same
    values as a model without the store; a new image runs alone."""
    kwargs = dict(
        branch_head='own',
        branch_feat_loss=dict(type='mmprockd.BranchMimicLoss'),
        assign_loss=dict(type='mmprockd.PrototypeAssignLoss'))
    cached = build(branch_cache=dict(dtype='fp32'), **kwargs)
    plain = build(**kwargs)
    assert copy.deepcopy(cached).branch_cache is cached.branch_cache
    for m in (cached, plain):
        m.branch_frozen = True
        m.train()
    calls = _counting_teacher(cached)
    ref = loss_step(plain)
    first = loss_step(cached)
    assert calls == [2] and len(cached.branch_cache) == 2
    assert 'distill.proto.loss_cls' in first
    second = loss_step(cached)
    assert calls == [2], 'a cached step must not run the teacher'
    assert cached.branch_cache.hits == 2
    # nothing ran the branch: no frozen-branch loss to log this step
    assert not any(k.startswith('distill.proto') for k in second)
    for losses in (first, second):
        for key in ('distill.loss_kl', 'distill.loss_branch_feat',
                    'distill.loss_assign'):
            assert losses[key].item() == pytest.approx(
                ref[key].item(), rel=1e-5, abs=1e-9), key
    assert second['distill.loss_kl'].item() > 0
    # the cached targets still train the student
    cached.zero_grad()
    (second['distill.loss_kl'] + second['distill.loss_branch_feat'] +
     second['distill.loss_assign']).backward()
    assert any(g is not None and g.abs().sum() > 0
               for g in grads_of(cached.student.bbox_head))
    assert all(p.grad is None for b in cached._branch_modules()
               for p in b.parameters())
    # images 0 and 1 stored, image 2 new: the teacher runs on one image; a
    # batch of 1 rounds differently from a batch of 3 (about 1e-6 relative,
    # depending on the threads), so the targets agree to float rounding
    batch = det_batch(3, (64, 96))
    third = loss_step(cached, batch)
    assert calls == [2, 1] and len(cached.branch_cache) == 3
    assert third['distill.loss_kl'].item() == pytest.approx(
        loss_step(plain, det_batch(3, (64, 96)))['distill.loss_kl'].item(),
        rel=1e-4)
    # another branch state empties the store; a training branch never uses
    # it
    cached.branch_frozen = False
    assert len(cached.branch_cache) == 0
    assert 'distill.proto.loss_cls' in loss_step(cached)
    assert len(cached.branch_cache) == 0 and calls[-1] == 2


@pytest.mark.parametrize('kwargs, text', [
    (dict(), "branch_head='own', got branch_head='shared'"),
    (dict(proto_levels=[0, 1], branch_head='own'),
     r'the head reads \(\[0, 1, 2, 3\] of 4\).*proto_levels=\[0, 1\]'),
])
def test_branch_cache_refuses_what_it_cannot_serve(kwargs, text):
    with pytest.raises(ValueError, match=text):
        build(branch_cache=dict(), **kwargs)


@pytest.mark.parametrize('cache', ['teacher_cache', 'branch_cache'])
def test_caches_are_refused_with_batch_augments(cache):
    """A batch augment (here mmdet's multi-scale resize; Mixup or CutMix
    alike) changes the image after the path and flip that key a cache: a
    stored map would be another image's."""
    student = tiny_student()
    student['data_preprocessor']['batch_augments'] = [
        dict(type='BatchSyncRandomResize', random_size_range=(64, 96))
    ]
    with pytest.raises(ValueError, match='image path and flip.*batch_augme'):
        build(student=student, branch_head='own', **{cache: dict()})
    # without a cache the same student builds
    build(student=student, branch_head='own')


def test_branch_ckpt_loads_the_branch_and_leaves_the_student_fresh(tmp_path):
    """[ours] ProC-KD in two stages: the branch of a first run's checkpoint
    is loaded whole (learner, augment, adapters, own head copy), and the
    student starts exactly as it does without it."""
    learner = dict(
        type='mmprockd.PrototypeLearner', channels=16, num_prototypes=6)
    first = build(branch_head='own', learner=learner)
    with torch.no_grad():  # a trained branch, unlike any fresh init
        for b in first._branch_modules():
            for p in b.parameters():
                p.add_(torch.randn_like(p))
    path = tmp_path / 'stage1.pth'
    torch.save(
        dict(state_dict={
            f'module.{k}': v
            for k, v in first.state_dict().items()
        }), path)
    second = build(branch_head='own', learner=learner, branch_ckpt=str(path))
    fresh = build(branch_head='own', learner=learner)
    saved = first.state_dict()
    loaded = 0
    branch = ('learner.', 'augment.', 'level_adapter.', 'branch_student.')
    for k, v in second.state_dict().items():
        if k.startswith(branch):
            assert torch.equal(v, saved[k]), k
            loaded += 1
        else:
            assert torch.equal(v, fresh.state_dict()[k]), k
    assert loaded > 0 and any(
        k.startswith('branch_student.') for k in second.state_dict())


def test_branch_ckpt_bad_input_names_the_file_and_what_differs(tmp_path):
    learner = dict(
        type='mmprockd.PrototypeLearner', channels=16, num_prototypes=6)
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        build(branch_head='own', learner=learner, branch_ckpt=missing)
    other = build(branch_head='own', learner=dict(learner, num_prototypes=4))
    path = tmp_path / 'k4.pth'
    torch.save(dict(state_dict=other.state_dict()), path)
    with pytest.raises(ValueError, match='shared head'):
        build(learner=learner, branch_ckpt=str(path))
    with pytest.raises(ValueError, match=r'k4\.pth.*of another shape'):
        build(branch_head='own', learner=learner, branch_ckpt=str(path))
    student_only = tmp_path / 'student.pth'
    torch.save(dict(state_dict=other.student.state_dict()), student_only)
    with pytest.raises(ValueError, match=r'student\.pth.*tensors missing'):
        build(
            branch_head='own', learner=learner, branch_ckpt=str(student_only))
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='corrupt.pth.*could not be read'):
        build(branch_head='own', learner=learner, branch_ckpt=str(corrupt))


def test_prototype_assignments_are_per_level_and_sum_to_one():
    """What the benchmark's prototype entropy reads: the learner's NetVLAD
    assignment and the augment's attention at each prototype level, on the
    student level's grid, summing to 1 over the K prototypes."""
    model = build(proto_levels=[0, 2])
    model.eval()
    data = model.data_preprocessor(det_batch(2, (64, 96)), False)
    feats = model.iface.extract(data['inputs'])
    assigns, attns = model.prototype_assignments(data['inputs'])
    assert len(assigns) == len(attns) == 2
    for level, a, t in zip((0, 2), assigns, attns):
        shape = (2, 6) + tuple(feats[level].shape[-2:])
        assert tuple(a.shape) == tuple(t.shape) == shape
        assert torch.allclose(a.sum(1), torch.ones(()), atol=1e-5)
        assert torch.allclose(t.sum(1), torch.ones(()), atol=1e-5)


def test_a_paused_student_is_left_as_built_while_the_branch_trains():
    """[ours] student_paused (DistillScheduleHook(student_start=...)): only
    the branch's task loss is computed; through an optimiser step with
    momentum and weight decay every student parameter and norm buffer
    (running stats, num_batches_tracked) stays as built, while the branch
    learns. Unpaused, the step is the usual one."""
    student = tiny_student()
    student['backbone']['norm_eval'] = False  # BN buffers that move
    model = build(
        student=student,
        branch_head='own',
        branch_feat_loss=dict(type='mmprockd.BranchMimicLoss'),
        learner=dict(
            type='mmprockd.PrototypeLearner',
            channels=16,
            num_prototypes=6,
            fusion_convs=1))
    model.train()
    model.student_paused = True
    student_before = {
        k: v.clone()
        for k, v in model.student.state_dict().items()
    }
    assert any(k.endswith('num_batches_tracked') for k in student_before)
    branch_before = {
        k: v.clone()
        for k, v in model.learner.state_dict().items()
    }
    losses = loss_step(model)
    assert set(losses) == {'distill.proto.loss_cls', 'distill.proto.loss_bbox'}
    total, _ = model.parse_losses(losses)
    optim = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    optim.zero_grad(set_to_none=True)
    total.backward()
    assert all(p.grad is None for p in model.student.parameters())
    assert model.learner.prototypes.grad.abs().sum() > 0
    optim.step()
    for k, v in model.student.state_dict().items():
        assert torch.equal(v, student_before[k]), k
    assert any(not torch.equal(v, branch_before[k])
               for k, v in model.learner.state_dict().items())
    model.student_paused = False
    losses = loss_step(model)
    assert {'student.loss_cls', 'distill.loss_kl',
            'distill.loss_branch_feat'} <= set(losses)
    tracked = [
        k for k, v in model.student.state_dict().items()
        if k.endswith('num_batches_tracked') and v != student_before[k] + 1
    ]
    assert not tracked  # a student step counts its batch, once
    # a paused student and a frozen branch: nothing would train
    model.student_paused = True
    model.branch_frozen = True
    with pytest.raises(RuntimeError, match='nothing would train'):
        loss_step(model)


def test_pausing_the_student_needs_an_own_branch_head():
    model = build()  # the paper's shared head
    with pytest.raises(ValueError, match="branch_head='own'.*'shared'"):
        model.student_paused = True
    assert model.student_paused is False


def test_a_paused_student_runs_once_per_input_size_when_the_branch_can():
    """[ours] When the branch's own head reads only levels the branch
    replaces, a step of the branch alone needs nothing of the student's
    maps but their shapes: the student runs on the first batch of each
    input size, zeros stand in afterwards, and the branch's losses are
    those it gets from the student's real maps. When the head reads a
    level the branch does not replace, the student runs every step."""

    def counted(model):
        calls = []
        extract = model.iface.extract
        model.iface.extract = lambda x: calls.append(tuple(x.shape)) or \
            extract(x)
        return calls

    model = build(branch_head='own')
    assert model.branch_cache_refusal('own') is None
    model.train()
    model.student_paused = True
    calls = counted(model)
    first = loss_step(model)
    again = loss_step(model)
    assert calls == [(2, 3, 64, 96)]
    assert set(first) == set(again) == {
        'distill.proto.loss_cls', 'distill.proto.loss_bbox'
    }
    for k in first:  # mmdet's per-level losses
        assert len(first[k]) == 4
        for a, b in zip(first[k], again[k]):
            assert torch.equal(a, b), k
    # the stand-ins have the student's shapes and hold one element each
    inputs = model.data_preprocessor(det_batch(2, (64, 96)), True)['inputs']
    stand_ins = model._paused_student_feats(inputs)
    assert [f.shape[1:] for f in stand_ins] == [(32, 8, 12), (32, 4, 6),
                                                (32, 2, 3), (32, 1, 2)]
    assert all(f.shape[0] == 2 and f.stride() == (0, 0, 0, 0) and not f.any()
               for f in stand_ins)
    loss_step(model, det_batch(2, (96, 64)))
    assert calls == [(2, 3, 64, 96), (2, 3, 96, 64)]

    partial = build(branch_head='own', proto_levels=[0, 1, 2])
    assert partial.branch_cache_refusal('own') is not None
    partial.train()
    partial.student_paused = True
    calls = counted(partial)
    loss_step(partial)
    loss_step(partial)
    assert calls == [(2, 3, 64, 96)] * 2
