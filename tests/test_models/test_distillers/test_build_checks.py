"""What a new pair gets wrong is refused while the distiller is built, with
the key and the fix: ``student_channels`` (necked and neckless students),
a partial or stray sub-config, a wrong teacher layer name, a teacher
``mean``/``std`` on the 0-1 scale; the teacher's dtype follows the device;
the query-detector refusal says what trains with the branch's own head.

Run: ``pytest tests/test_models/test_distillers/test_build_checks.py``
"""
import logging

import pytest
import torch
from mmengine.hub import get_config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from test_proto_distiller import build, tiny_student, tiny_teacher

from mmprockd.models.distillers.build_checks import suggest_layers
from mmprockd.registry import MODELS


def test_neckless_student_channels_are_checked_at_build():
    student = tiny_student()
    student.pop('neck')
    student['type'] = 'SingleStageDetector'  # RetinaNet demands a neck
    with pytest.raises(
            ValueError,
            match=r'model.student_channels=\[32, 32, 32, 32\], but the '
            r'feature levels of the student SingleStageDetector \(ResNet '
            r'backbone, no neck\) have \[128, 256, 512\] channels: set '
            r'student_channels=\[128, 256, 512\]'):
        build(student=student)


def test_right_channels_build_and_leave_the_student_in_train_mode():
    model = build()
    assert model.student.training
    # the dry forward ran in eval mode: no norm statistics were updated
    bn = model.student.backbone.bn1
    assert int(bn.num_batches_tracked) == 0
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))


@pytest.mark.parametrize('key,cfg,pattern', [
    ('augment', dict(out_relu=False),
     r"model.augment=dict\(out_relu=False\) has no 'type'"),
    ('kl_loss', dict(loss_weight=3.0),
     r"model.kl_loss=dict\(loss_weight=3.0\) has no 'type'.*"
     r'kl_loss=dict\(_base_.<recipe>.kl_loss, ...\) or --cfg-options '
     r'model.kl_loss.<name>=<value>'),
    ('branch_feat_loss', dict(type='mmprockd.BranchMimicLoss', _delete_=True),
     r"model.branch_feat_loss has a '_delete_' key left in it"),
])
def test_a_partial_or_stray_sub_config_is_refused(key, cfg, pattern):
    with pytest.raises(ValueError, match=pattern):
        build(**{key: cfg})


def test_a_wrong_teacher_layer_gets_real_suggestions():
    # ViT's blocks are `layers.N`; `blocks.3` (timm's name) matched
    # nothing with difflib's default cutoff
    teacher = dict(
        type='mmprockd.FrozenTeacher',
        backbone=dict(
            type='mmpretrain.VisionTransformer',
            arch=dict(
                embed_dims=24,
                num_layers=4,
                num_heads=2,
                feedforward_channels=48)),
        layers=['blocks.3'])
    with pytest.raises(KeyError) as err:
        MODELS.build(teacher)
    msg = str(err.value)
    close = msg[msg.index('closest names: '):msg.
                index(';', msg.index('closest names'))]
    assert "'layers.3'" in close
    # and the blocks two levels deep, where feature maps come from
    assert "'layers.0'" in msg[msg.index('two levels deep'):]


def test_suggest_layers_finds_a_stage_under_another_parent():
    names = ['', 'patch_embed', 'stages', 'stages.0', 'stages.1', 'norm3']
    text = suggest_layers('stage3', names)
    close = text[:text.index(';')]
    assert close == "closest names: ['stages', 'stages.1', 'stages.0']"
    assert text.endswith("['patch_embed', 'stages', 'stages.0', 'stages.1', "
                         "'norm3']")


def test_teacher_mean_std_on_the_0_1_scale_is_refused():
    teacher = tiny_teacher(
        mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    with pytest.raises(
            ValueError,
            match=r'mean=\[0.485, 0.456, 0.406\], std=\[0.229, 0.224, '
            r'0.225\] look like the 0-1 scale, but the images are 0-255.*'
            r'mean=\[123.675, 116.28, 103.53\], std=\[58.395, 57.12, '
            r'57.375\]'):
        build(teacher=teacher)


def test_a_raw_image_teacher_is_not_taken_for_the_0_1_scale():
    model = build(teacher=tiny_teacher(mean=[0, 0, 0], std=[1, 1, 1]))
    _, a, b = model.teacher.bind_student(model.data_preprocessor)
    # undoes the student's normalisation: x * std_s + mean_s, RGB
    torch.testing.assert_close(a.flatten(),
                               torch.tensor([58.395, 57.12, 57.375]))
    torch.testing.assert_close(b.flatten(),
                               torch.tensor([123.675, 116.28, 103.53]))


@pytest.fixture
def log_lines():
    logger = MMLogger.get_current_instance()
    lines = []

    class Keep(logging.Handler):

        def emit(self, record):
            lines.append(record.getMessage())

    handler = Keep(level=logging.INFO)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_bf16_teacher_runs_fp32_on_the_cpu_unless_forced(log_lines):
    torch.manual_seed(0)
    ref = MODELS.build(tiny_teacher())
    auto = MODELS.build(tiny_teacher(dtype='bf16'))
    forced = MODELS.build(tiny_teacher(dtype='bf16', force_dtype=True))
    for t in (auto, forced):
        t.model.load_state_dict(ref.model.state_dict())
    x = torch.rand(1, 3, 64, 64)
    want = ref(x)[1]
    assert torch.equal(auto(x)[1], want)
    got = forced(x)[1]
    assert got.dtype == torch.float32 and not torch.equal(got, want)
    assert (auto.run_dtype('cpu'), forced.run_dtype('cpu')) == \
        (None, torch.bfloat16)
    assert "FrozenTeacher: runs in fp32 on cpu (dtype='bf16' applies on " \
        'CUDA only; force_dtype=True runs it on cpu)' in log_lines
    assert 'FrozenTeacher: runs in bf16 on cpu' in log_lines


@pytest.mark.parametrize('supported,want', [(True, torch.bfloat16),
                                            (False, None)])
def test_bf16_teacher_on_cuda_needs_bf16_support(monkeypatch, supported, want):
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: supported)
    teacher = MODELS.build(tiny_teacher(dtype='bf16'))
    assert teacher.run_dtype(torch.device('cuda', 0)) == want
    fp16 = MODELS.build(tiny_teacher(dtype='fp16'))
    assert fp16.run_dtype('cuda') == torch.float16
    assert fp16.run_dtype('cpu') is None


def test_query_detector_refusal_says_what_the_own_head_trains():
    init_default_scope('mmdet')
    student = get_config('mmdet::detr/detr_r18_8xb2-500e_coco.py').model
    student.backbone.init_cfg = None
    with pytest.raises(ValueError) as err:
        build(
            student=student,
            student_channels=[256],
            branch_head='own',
            kl_loss=dict(type='mmprockd.ConsistencyKLLoss'))
    msg = str(err.value)
    assert 'query-based detector' in msg and 'shared head' not in msg
    assert "branch's own copy of the head (distill.proto.*)" in msg
    assert "add branch_feat_loss=dict(type='mmprockd.BranchMimicLoss')" in msg
