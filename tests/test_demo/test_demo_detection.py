"""A short run of the detection demo on the real demo photos.

One run (3 epochs of the 13 training photos, about 20 steps) is shared by
the tests: the COCO metric on the real val boxes, a falling loss, the
student-only checkpoint and the prototype viewer.
"""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

import mmprockd  # noqa: F401
import mmprockd.utils.pretrained  # noqa: F401

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(ROOT, 'configs', 'demo',
                  'prockd_mobilenetv2_retinanet_demo.py')
VAL_JSON = osp.join(ROOT, 'data', 'prockd_demo', 'annotations',
                    'instances_val.json')
VIEWER = osp.join(ROOT, 'tools', 'analysis_tools', 'visualize_prototypes.py')
EPOCHS = 3


def _scalars(work_dir: str):
    import glob
    files = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    from mmengine.config import Config
    from mmengine.runner import Runner
    work_dir = str(tmp_path_factory.mktemp('demo_det'))
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = work_dir
    cfg.chdir_root = ROOT
    cfg.train_cfg.max_epochs = EPOCHS
    cfg.train_cfg.val_interval = EPOCHS
    cfg.param_scheduler = cfg.param_scheduler[:1]  # warm-up only
    cfg.default_hooks.logger.interval = 1
    cfg.log_processor.window_size = 1  # per-step losses in scalars.json
    # full distillation from the first step: the total loss is then one
    # objective, and must fall
    cfg.custom_hooks[1].warmup = 0
    cfg.randomness = dict(seed=0)
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader].dataset.data_root = osp.join(ROOT, 'data', 'prockd_demo')
    cfg.val_evaluator.ann_file = VAL_JSON
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner, work_dir


def test_coco_metric_on_real_val_boxes(demo_run):
    runner, work_dir = demo_run
    with open(VAL_JSON) as f:
        val = json.load(f)
    coco = runner.val_evaluator.metrics[0]._coco_api
    assert len(coco.anns) == len(val['annotations']) == 18
    assert len(coco.imgs) == len(val['images']) == 6
    metrics = [s for s in _scalars(work_dir) if 'coco/bbox_mAP' in s]
    assert len(metrics) == 1
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_l'):
        assert 0.0 <= metrics[0][key] <= 1.0


def test_total_loss_falls(demo_run):
    _, work_dir = demo_run
    losses = [s['loss'] for s in _scalars(work_dir) if 'loss' in s]
    assert len(losses) == 7 * EPOCHS
    assert all(
        k in _scalars(work_dir)[0]
        for k in ('student.loss_cls', 'distill.proto.loss_cls',
                  'distill.loss_kl'))
    first, last = losses[:5], losses[-5:]
    assert sum(last) / 5 < sum(first) / 5, losses


def test_student_checkpoint_is_a_plain_detector(demo_run):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    runner, work_dir = demo_run
    path = osp.join(work_dir, f'student_epoch_{EPOCHS}.pth')
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    keys = list(ckpt['state_dict'])
    assert not any(
        k.split('.')[0] in ('teacher', 'learner', 'augment', 'student')
        for k in keys)
    cfg = Config.fromfile(osp.join(work_dir, 'student_config.py'))
    assert cfg.model.type == 'RetinaNet'
    init_default_scope('mmdet')
    student = MODELS.build(cfg.model)
    student.load_state_dict(ckpt['state_dict'], strict=True)
    student.eval()
    distiller = runner.model.eval()
    batch = next(iter(runner.val_dataloader))
    with torch.no_grad():
        ours = student.test_step(batch)[0].pred_instances
        theirs = distiller.test_step(batch)[0].pred_instances
    assert len(ours) > 0
    torch.testing.assert_close(ours.bboxes, theirs.bboxes)
    torch.testing.assert_close(ours.scores, theirs.scores)
    assert torch.equal(ours.labels, theirs.labels)


def test_prototype_viewer_writes_png(demo_run, tmp_path):
    from PIL import Image
    _, work_dir = demo_run
    image = osp.join(ROOT, 'data', 'prockd_demo', 'images',
                     'skimage_chelsea.jpg')
    cmd = [
        sys.executable, VIEWER, CONFIG,
        osp.join(work_dir, f'epoch_{EPOCHS}.pth'), image, '--num', '7'
    ]
    # no --out: into the work dir (the checkpoint's folder), not the cwd
    subprocess.run(cmd, check=True, cwd=str(tmp_path))
    out = osp.join(work_dir, 'prototypes', 'skimage_chelsea_level0.png')
    assert not list(tmp_path.iterdir())
    # 8 cells, 4 columns of 3 inches and the 1-inch colour bar column at
    # 100 dpi; chelsea is 451x300
    width, height = Image.open(out).size
    assert width == 1300
    assert abs(height - round(2 * (3.0 * 213 / 320 + 0.35) * 100)) <= 1
    out = tmp_path / 'protos.png'
    missing = subprocess.run(
        cmd[:4] +
        [image + '.nope', '--out', str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True)
    assert missing.returncode != 0
    assert 'does not exist' in missing.stderr
