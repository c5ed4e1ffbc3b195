"""Every segmentation and classification config loads, builds and runs one
loss step on a tiny random batch, offline (no teacher checkpoint, no
pretrained student), under its own ``default_scope``."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmprockd.registry import MODELS
from mmprockd.testing import cls_batch, seg_batch
from mmprockd.utils import get_config_path, list_configs
from mmprockd.utils.offline import make_offline

# the ``*_paper`` configs are their flagship with the paper's switches
# pinned (test_paper_configs.py checks they build the same model today);
# the user guide's recipes beside them are test_recipes.py's
RECIPES = ('seg/prockd_swin-t_deeplabv3plus_',
           'seg/prockd_swin-t_pspnet_r18-d8_4xb2-240k_',
           'cls/prockd_mobilenetv2_')
ALL = [
    c for c in list_configs()
    if not c.endswith('_paper.py') and not c.startswith(RECIPES)
]
SEG = [c for c in ALL if c.startswith('seg/')]
CLS = [c for c in ALL if c.startswith('cls/')]
PROCKD = [c for c in SEG + CLS if c.split('/')[-1].startswith('prockd_')]
LABELS = [0, 7]  # of the classification batches


def offline_model(cfg: Config) -> dict:
    model = make_offline(copy.deepcopy(cfg.model))
    student = model.get('student', model)
    student.pop('pretrained', None)  # mmseg's ImageNet R18 init
    return model, student


@pytest.mark.parametrize('name', SEG + CLS)
def test_config_declares_scope_and_imports(name):
    cfg = Config.fromfile(get_config_path(name))
    family = 'mmseg' if name.startswith('seg/') else 'mmpretrain'
    assert cfg.default_scope == family
    if name in PROCKD:
        assert cfg.model.type == 'mmprockd.ProtoDistiller'
        assert cfg.custom_imports == dict(
            imports=['mmprockd'], allow_failed_imports=False)
        teacher = cfg.model.teacher
        assert teacher.ckpt.startswith('https://download.openmmlab.com/')
        assert teacher.ckpt_prefix == 'backbone.'
        hooks = {h.type: h for h in cfg.custom_hooks}
        ckpt_hook = hooks['mmprockd.StudentCheckpointHook']
        # iteration-based mmseg schedules save per iteration
        assert ckpt_hook.by_epoch == (family == 'mmpretrain')


@pytest.mark.parametrize('name', SEG)
def test_seg_student_is_mmsegs_own(name):
    """The distilled student is exactly the baseline's model."""
    cfg = Config.fromfile(get_config_path(name))
    stem = name.split('/')[-1].replace('prockd_swin-t_', '')
    if not stem.endswith('_student.py'):
        stem = stem.replace('.py', '_student.py')
    base = Config.fromfile(get_config_path('seg/' + stem))
    student = cfg.model.student if name in PROCKD else cfg.model
    assert student == base.model
    assert cfg.train_cfg == base.train_cfg
    assert cfg.train_cfg.max_iters == 80000


@pytest.mark.parametrize('name', SEG)
def test_seg_config_builds_and_runs_a_loss_step(name):
    cfg = Config.fromfile(get_config_path(name))
    init_default_scope(cfg.default_scope)
    model_cfg, student = offline_model(cfg)
    student.data_preprocessor.size = (64, 128)  # pad to the tiny batch
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.train()
    data = model.data_preprocessor(
        seg_batch(hw=(64, 128), ignore_rows=8), True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    if name not in PROCKD:
        assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
        return
    assert {
        'student.decode.loss_ce', 'student.aux.loss_ce',
        'distill.proto.decode.loss_ce', 'distill.proto.aux.loss_ce',
        'distill.loss_kl'
    } <= set(losses), sorted(losses)
    assert model.proto_levels == [2, 3]
    total.backward()
    assert model.learner.prototypes.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    assert not model.teacher.training


@pytest.mark.parametrize('name', CLS)
def test_cls_config_builds_and_runs_a_loss_step(name):
    cfg = Config.fromfile(get_config_path(name))
    init_default_scope(cfg.default_scope)
    model_cfg, student = offline_model(cfg)
    # the ViT student works at 224 (CIFAR upsampled), the ResNet at 32
    size = student.backbone.get('img_size', 32)
    num = 1 if size == 224 else 2
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.train()
    data = model.data_preprocessor(cls_batch(LABELS[:num], size), True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    if name not in PROCKD:
        assert set(losses) == {'loss'}
        return
    assert {'student.loss', 'distill.proto.loss',
            'distill.loss_kl'} <= set(losses), sorted(losses)
    assert model.kl_loss.loss_weight == 10.0
    total.backward()
    assert model.learner.prototypes.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    # predict is the student's alone
    model.eval()
    data = model.data_preprocessor(cls_batch(LABELS[:num], size), False)
    with torch.no_grad():
        ours = model(**copy.deepcopy(data), mode='predict')
        ref = model.student(**copy.deepcopy(data), mode='predict')
    assert torch.equal(ours[0].pred_score, ref[0].pred_score)
