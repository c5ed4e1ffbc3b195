"""Every recipe of docs/user_guides/your_project.md is a config that builds
and runs a distillation loss step (offline: no weights are fetched), and
does what its recipe says."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmprockd.registry import MODELS
from mmprockd.testing import cls_batch, det_batch, seg_batch
from mmprockd.utils import get_config_path, list_configs
from mmprockd.utils.offline import make_offline

N100 = 'prockd_mobilenetv2_resnet18-tiny_500i_fmnist-n100'

# the recipes of the user guide, in the task folders of configs/
RECIPES = [
    'cls/' + N100 + '_labelpool_stage1.py',
    'cls/' + N100 + '_labelpool_stage2.py',
    'cls/' + N100 + '_unlabelled_stage1.py',
    'cls/' + N100 + '_unlabelled_stage2.py',
    'det/prockd_convnext-t_retinanet_r50_fpn_1x_coco.py',
    'det/prockd_mobilenetv2_retinanet_r18_fpn_24e_custom-dataset.py',
    'det/prockd_swin-t_fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    'det/prockd_swin-t_retinanet_r50_fpn_1x_coco_from-student.py',
    'seg/prockd_swin-t_deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'seg/prockd_swin-t_pspnet_r18-d8_4xb2-240k_cityscapes-512x1024.py',
]
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_the_recipes_are_shipped_and_documented():
    shipped = list_configs()
    page = open(osp.join(REPO, 'docs', 'user_guides',
                         'your_project.md')).read()
    for name in RECIPES:
        assert name in shipped, name
        assert f'configs/{name}' in page, name


def _build(name):
    cfg = Config.fromfile(get_config_path(name))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    if cfg.default_scope == 'mmseg':
        cfg.model.student.data_preprocessor.size = (64, 64)
    model = MODELS.build(make_offline(cfg.model))
    if cfg.default_scope == 'mmseg':
        from mmengine.model import revert_sync_batchnorm
        model = revert_sync_batchnorm(model)
    model.init_weights()
    return cfg, model


# the two-stage classification pair with an unlabelled transfer set
CLS_STAGE1 = 'cls/' + N100 + '_unlabelled_stage1.py'
CLS_STAGE2 = 'cls/' + N100 + '_unlabelled_stage2.py'
# and with the pool labelled by label_pool.py first
LP_STAGE1 = 'cls/' + N100 + '_labelpool_stage1.py'
LP_STAGE2 = 'cls/' + N100 + '_labelpool_stage2.py'


@pytest.mark.parametrize('name',
                         sorted(set(RECIPES) - {CLS_STAGE2, LP_STAGE2}))
def test_recipe_builds_and_steps(name):
    cfg, model = _build(name)
    if cfg.default_scope == 'mmseg':
        batch = seg_batch()
    elif cfg.default_scope == 'mmpretrain':
        batch = cls_batch([1, 2], size=64)
        model.kl_loss = MODELS.build(
            dict(type='mmprockd.ConsistencyKLLoss', kind='softmax'))
    else:
        heads = cfg.model.student.bbox_head
        batch = det_batch(2, (128, 128), heads.num_classes)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert any(k.startswith('distill.proto.') for k in losses)
    assert torch.isfinite(losses['distill.loss_kl'])
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())


def test_another_teacher_recipe_replaces_the_whole_teacher():
    cfg = Config.fromfile(
        get_config_path('det/prockd_convnext-t_retinanet_r50_fpn_1x_'
                        'coco.py'))
    teacher = cfg.model.teacher
    assert teacher.backbone.type == 'mmpretrain.ConvNeXt'
    assert 'pad_small_map' not in teacher.backbone  # no Swin key leaks
    assert 'img_size' not in teacher.backbone
    assert teacher.layers == ['norm1', 'norm2', 'norm3']


def test_custom_dataset_recipe_trains_on_its_classes():
    """The recipe's data set is real: its first training sample carries
    boxes of the 4 named classes only, and a step on it is finite."""
    from mmengine.registry import DATASETS
    cfg, model = _build('det/prockd_mobilenetv2_retinanet_r18_fpn_24e_'
                        'custom-dataset.py')
    assert cfg.model.student.bbox_head.num_classes == 4
    data_cfg = cfg.train_dataloader.dataset
    data_cfg.data_root = osp.join(REPO, data_cfg.data_root)
    dataset = DATASETS.build(data_cfg)
    assert dataset.metainfo['classes'] == ('person', 'dog', 'horse', 'car')
    assert len(dataset) > 0
    batch = [dataset[i] for i in range(2)]
    labels = torch.cat([b['data_samples'].gt_instances.labels for b in batch])
    assert labels.numel() > 0 and int(labels.max()) < 4
    data = model.data_preprocessor(
        dict(
            inputs=[b['inputs'] for b in batch],
            data_samples=[b['data_samples'] for b in batch]), True)
    total, _ = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(total)


def test_student_weights_recipe_loads_them_into_the_student(tmp_path):
    cfg = Config.fromfile(
        get_config_path('det/prockd_swin-t_retinanet_r50_fpn_1x_coco_'
                        'from-student.py'))
    assert cfg.model.student_ckpt.startswith('https://download.openmmlab')
    init_default_scope('mmdet')
    torch.manual_seed(1)
    student = MODELS.build(make_offline(cfg.model).student)
    path = tmp_path / 'retinanet.pth'
    # a plain mmdet checkpoint of the student, as mmdet's zoo has them
    torch.save(dict(state_dict=student.state_dict(), meta={}), path)
    model_cfg = make_offline(cfg.model)
    model_cfg.student_ckpt = str(path)
    torch.manual_seed(2)
    model = MODELS.build(model_cfg)
    model.init_weights()
    for key, value in student.state_dict().items():
        torch.testing.assert_close(
            model.student.state_dict()[key], value, msg=key)


def test_cls_unlabelled_pair_distils_the_stage1_branch_on_both_sets(tmp_path):
    """Stage 1 trains the own-head branch without the KL and keeps its
    last checkpoint; stage 2 loads that branch, frozen from step 1, and
    its loader gives batches of 32 labelled images then 32 labelled -1.
    A step with unlabelled images gives the CE of the labelled ones and
    the KL and branch PKD of all."""
    import torch.nn.functional as F
    first_cfg, first = _build(CLS_STAGE1)
    second_cfg = Config.fromfile(get_config_path(CLS_STAGE2))
    assert first.kl_loss is None and first.branch_student is not None
    assert first_cfg.default_hooks.checkpoint.save_last is True
    assert first_cfg.train_cfg.max_iters == 500
    # the proxy row's schedule at 500 iterations (proxy.run._set_iters)
    warm, cosine = second_cfg.param_scheduler
    assert (warm.type, warm.end) == ('LinearLR', 50)
    assert (cosine.type, cosine.begin, cosine.end,
            cosine.T_max) == ('CosineAnnealingLR', 50, 500, 450)
    assert second_cfg.model.branch_ckpt == ('work_dirs/' + N100 +
                                            '_unlabelled_stage1/iter_500.pth')
    hook = second_cfg.custom_hooks[-1]
    assert hook.type == 'mmprockd.DistillScheduleHook'
    assert hook.branch_stop == 0
    loader = second_cfg.train_dataloader
    assert loader.batch_size == loader.sampler.batch_size == 64
    assert loader.sampler.source_ratio == [1, 1]
    assert [d.ann_file for d in loader.dataset.datasets
            ] == ['meta/train.txt', 'meta/unlabelled.txt']

    ckpt = tmp_path / 'iter_500.pth'
    torch.save(dict(state_dict=first.state_dict(), meta=dict()), ckpt)
    second_cfg.model.branch_ckpt = str(ckpt)
    init_default_scope(second_cfg.default_scope)
    torch.manual_seed(0)
    second = MODELS.build(make_offline(second_cfg.model))
    second.init_weights()  # as the Runner does: the branch is loaded here
    loaded = second.state_dict()
    for k, v in first.state_dict().items():
        if k.startswith(('learner.', 'augment.', 'branch_student.')):
            assert torch.equal(v, loaded[k]), k
    second.branch_frozen = True  # what branch_stop=0 sets before step 1
    second.train()
    data = second.data_preprocessor(cls_batch([4, -1, 7, -1], size=64), True)
    losses = second(**data, mode='loss')
    with torch.no_grad():
        student = second.student
        logits = student.head(student.neck(student.backbone(data['inputs'])))
    torch.testing.assert_close(
        losses['student.loss'],
        F.cross_entropy(logits[[0, 2]], torch.tensor([4, 7])))
    assert losses['distill.loss_kl'] > 0
    assert losses['distill.loss_branch_feat'] > 0
    total, _ = second.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for m in second._branch_modules()
               for p in m.parameters())


@pytest.mark.parametrize('name, row', [
    (LP_STAGE1, 'two_stage_t224_stage1_pool_propagated'),
    (LP_STAGE2, 'two_stage_t224_pool_propagated'),
])
def test_labelpool_pair_trains_what_the_proxy_rows_measured(
        name, row, tmp_path):
    """The recipes are the proxy rows of docs/benchmark.md: the same
    model, every key but the branch checkpoint's path (the teacher at 224
    px, the own-head branch, KD and branch PKD in stage 2), the same
    optimizer, schedule and batches of 32 labelled images and 32
    of the pool with the labels label_pool.py writes."""
    import sys
    tools = osp.join(REPO, 'tools')  # as tools/demo.py imports it
    if tools not in sys.path:
        sys.path.insert(0, tools)
    from analysis_tools.proxy.run import build_cfg

    # the stage-1 run a stage-2 row reads its branch from
    stage1 = tmp_path / 'two_stage_t224_stage1_pool_propagated' / 'seed0'
    stage1.mkdir(parents=True)
    (stage1 / 'iter_500.pth').write_bytes(b'')
    (stage1 / 'last_checkpoint').write_text(str(stage1 / 'iter_500.pth'))
    # the pool's labels, as label_pool.py writes them
    meta = tmp_path / 'data' / 'meta'
    meta.mkdir(parents=True)
    (meta / 'unlabelled_lp.txt').write_text('pool/000000.png 3\n')
    proxy = build_cfg(row, 0, str(tmp_path / row / 'seed0'),
                      str(tmp_path / 'data'), 500, 32, None, None, 'cls')
    recipe = Config.fromfile(get_config_path(name))
    assert recipe.model.teacher.input_scale == 3.5
    assert (recipe.model.kl_loss is None) == (name == LP_STAGE1)
    if name == LP_STAGE2:
        assert recipe.model.branch_ckpt == ('work_dirs/' + N100 +
                                            '_labelpool_stage1/iter_500.pth')
        assert proxy.model.branch_ckpt == str(stage1 / 'iter_500.pth')
    model = recipe.model.to_dict()
    expected = proxy.model.to_dict()
    model.pop('branch_ckpt', None)
    expected.pop('branch_ckpt', None)
    assert model == expected
    assert recipe.optim_wrapper == proxy.optim_wrapper
    assert recipe.param_scheduler == proxy.param_scheduler
    assert recipe.train_cfg.max_iters == proxy.train_cfg.max_iters == 500
    ours, theirs = recipe.train_dataloader, proxy.train_dataloader
    assert ours.batch_size == theirs.batch_size == 64
    assert ours.sampler == theirs.sampler
    assert ours.sampler.source_ratio == [1, 1]
    assert [d.ann_file for d in ours.dataset.datasets] == [
        d.ann_file for d in theirs.dataset.datasets
    ] == ['meta/train.txt', 'meta/unlabelled_lp.txt']
    hook = [
        h for h in recipe.custom_hooks
        if h.type == 'mmprockd.DistillScheduleHook'
    ]
    assert hook == list(proxy.custom_hooks)
