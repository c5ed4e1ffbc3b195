"""[ours] The two-stage ProC-KD pair of configs: stage 1 trains the signed
own-head branch without the KL; stage 2 loads that checkpoint's branch,
frozen from the first step, and teaches a fresh student through the KL and
PKD from the branch's features, on twice the schedule."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmprockd.registry import MODELS
from mmprockd.testing import det_batch
from mmprockd.utils import get_config_path
from mmprockd.utils.offline import make_offline

STAGE1 = 'det/prockd_swin-t_retinanet_r50_fpn_1x_coco_stage1.py'
STAGE2 = 'det/prockd_swin-t_retinanet_r50_fpn_2x_coco_stage2.py'
BRANCH = ('learner.', 'augment.', 'level_adapter.', 'branch_student.')


def _build(cfg):
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(make_offline(cfg.model))
    model.init_weights()
    return model


def test_stage2_distils_the_branch_that_stage1_trained(tmp_path):
    first_cfg = Config.fromfile(get_config_path(STAGE1))
    second_cfg = Config.fromfile(get_config_path(STAGE2))
    # stage 2's default branch is stage 1's last checkpoint, where
    # tools/train.py writes it (work_dirs/<config name>/, 12 epochs)
    assert first_cfg.train_cfg.max_epochs == 12
    assert second_cfg.model.branch_ckpt == (
        'work_dirs/prockd_swin-t_retinanet_r50_fpn_1x_coco_stage1/'
        'epoch_12.pth')
    assert second_cfg.train_cfg.max_epochs == 24
    hooks = [
        h for h in second_cfg.custom_hooks
        if h.type == 'mmprockd.DistillScheduleHook'
    ]
    assert len(hooks) == 1 and hooks[0].branch_stop == 0
    assert second_cfg.model_wrapper_cfg.find_unused_parameters is True

    first = _build(first_cfg)
    assert first.kl_loss is None and first.branch_student is not None
    assert first.learner.fusion == 'fpn' and first.learner.residual
    data = first.data_preprocessor(det_batch(1, (128, 128)), True)
    losses = first(**data, mode='loss')
    assert 'distill.loss_kl' not in losses
    assert 'distill.proto.loss_cls' in losses
    # what the runner saves: the whole distiller's state dict
    ckpt = tmp_path / 'epoch_12.pth'
    torch.save(dict(state_dict=first.state_dict(), meta=dict()), ckpt)

    second_cfg.model.branch_ckpt = str(ckpt)
    second = _build(second_cfg)
    trained = first.state_dict()
    loaded = second.state_dict()
    branch = [k for k in trained if k.startswith(BRANCH)]
    assert len(branch) > 20
    for k in branch:
        assert torch.equal(trained[k], loaded[k]), k
    second.branch_frozen = True  # what branch_stop=0 sets before step 1
    second.train()
    losses = second(**data, mode='loss')
    assert losses['distill.loss_kl'].item() >= 0
    assert losses['distill.loss_branch_feat'].item() > 0
    total, log_vars = second.parse_losses(losses)
    assert 'distill.proto.loss_cls' in log_vars  # logged, not trained
    total.backward()
    assert all(p.grad is None for m in second._branch_modules()
               for p in m.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in second.student.neck.parameters())


def test_stage2_without_stage1_names_the_missing_checkpoint(tmp_path):
    cfg = Config.fromfile(get_config_path(STAGE2))
    cfg.model.branch_ckpt = str(tmp_path / 'no_stage1.pth')
    init_default_scope(cfg.default_scope)
    with pytest.raises(FileNotFoundError, match='no_stage1.pth'):
        MODELS.build(make_offline(cfg.model))
