"""``tools/train.py`` then ``tools/test.py`` run every segmentation and
classification ProC-KD config end to end on tiny data, offline. Each
baseline (``*_student.py``) is its ProC-KD config less the distillation
(checked here), so that run trains on the baseline's data, schedule and
evaluator, and tests its model as the exported student.

Each config is loaded as shipped and only made small in Python: no
downloads (teacher checkpoint, pretrained student), a 2-iteration (seg) or
1-epoch (cls) schedule, 128x256 Cityscapes-style demo photos or a fake
4-image CIFAR-100. For the ProC-KD configs the student-only checkpoint and
``student_config.py`` that ``mmprockd.StudentCheckpointHook`` writes must
test, as a plain model, to exactly the metric and the predictions
(``--out`` dumps) of the full checkpoint.

CIFAR-100: mmpretrain's ``CIFAR100`` always checks the md5 of
``cifar-100-python/{train,test}`` against the real files (there is no
switch to skip it, and ``download=False`` only turns the download into an
error), so fake files can never pass it. The files are written in the exact
on-disk format and names, and read by ``UncheckedCIFAR100``: a subclass
whose only change is that its file lists carry no md5 (the class's own
mechanism: ``_check_integrity`` skips a ``None`` md5). It lives in a module
written to the test's tmp dir and loaded through ``custom_imports``; no
library code is patched.
"""
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import mmengine
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmprockd.utils import get_config_path, list_configs
from mmprockd.utils.offline import make_offline

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_DATA = osp.join(REPO, 'data', 'prockd_demo', 'cityscapes')
# not the ``*_paper`` configs: their flagship with the paper's switches
# pinned (test_paper_configs.py); not the user guide's recipes beside them
# (test_recipes.py)
RECIPES = ('seg/prockd_swin-t_deeplabv3plus_',
           'seg/prockd_swin-t_pspnet_r18-d8_4xb2-240k_',
           'cls/prockd_mobilenetv2_')
CONFIGS = [
    c for c in list_configs() if c.startswith(('seg/', 'cls/'))
    and not c.endswith('_paper.py') and not c.startswith(RECIPES)
]
SEG_SIZE = (128, 256)  # (h, w)
CIFAR_IMAGES = 4
FAKE_CIFAR_MODULE = 'prockd_e2e_fake_cifar'
FAKE_CIFAR_SOURCE = '''\
"""CIFAR-100 without the md5 check (fake files for a test)."""
from mmpretrain.datasets import CIFAR100
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class UncheckedCIFAR100(CIFAR100):
    train_list = [['train', None]]
    test_list = [['test', None]]
'''


def is_prockd(name: str) -> bool:
    return osp.basename(name).startswith('prockd_')


def write_fake_cifar100(root: str, num: int = CIFAR_IMAGES) -> str:
    """``cifar-100-python/{train,test,meta}`` as the real archive has them:
    pickled dicts with ``data`` (N, 3072) uint8 rows (R, G, B planes of
    32x32), ``fine_labels`` and ``coarse_labels``; ``meta`` has
    ``fine_label_names`` and ``coarse_label_names``. The keys are ``str``:
    the archive's Python 2 pickles give ``str`` keys under
    ``pickle.loads(..., encoding='latin1')``, which is how mmpretrain reads
    them (``entry['data']``); ``bytes`` keys would not be found."""
    folder = osp.join(root, 'cifar-100-python')
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(0)
    for seed, split in enumerate(('train', 'test')):
        entry = {
            'filenames': [f'{split}_{i}.png' for i in range(num)],
            'batch_label': f'fake {split} batch',
            'fine_labels': [(7 * i + seed) % 100 for i in range(num)],
            'coarse_labels': [i % 20 for i in range(num)],
            'data': rng.randint(0, 256, (num, 3072), dtype=np.uint8),
        }
        with open(osp.join(folder, split), 'wb') as f:
            pickle.dump(entry, f)
    meta = {
        'fine_label_names': [f'class_{i}' for i in range(100)],
        'coarse_label_names': [f'super_{i}' for i in range(20)],
    }
    with open(osp.join(folder, 'meta'), 'wb') as f:
        pickle.dump(meta, f)
    return root


def offline_model(cfg: Config):
    """No downloads: teacher checkpoint, Pretrained init_cfgs and mmseg's
    ``pretrained`` ImageNet backbone are dropped."""
    make_offline(cfg.model)
    student = cfg.model.student if is_prockd_cfg(cfg) else cfg.model
    student.pop('pretrained', None)
    return student


def is_prockd_cfg(cfg: Config) -> bool:
    return cfg.model.get('type') in ('mmprockd.ProtoDistiller',
                                     'mmprockd.PKDDistiller')


def set_student_hook_interval(cfg: Config, interval: int) -> None:
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') == 'mmprockd.StudentCheckpointHook':
            hook['interval'] = interval


def shrink_seg(cfg: Config) -> None:
    """Two iterations at batch 2 (PSPNet's 1x1 pooled branch has a BN that
    needs more than one sample) on the 128x256 demo photos, then a val."""
    student = offline_model(cfg)
    student.data_preprocessor.size = SEG_SIZE
    if cfg.get('data_preprocessor') is not None:
        cfg.data_preprocessor.size = SEG_SIZE
    load, resize = dict(type='LoadImageFromFile'), dict(
        type='Resize', scale=SEG_SIZE[::-1], keep_ratio=False)
    train_pipeline = [
        load,
        dict(type='LoadAnnotations'), resize,
        dict(type='PackSegInputs')
    ]
    # as in mmseg: labels loaded after the resize, so that the prediction
    # (resized back to the photo's size) is scored at full resolution
    test_pipeline = [
        load, resize,
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')
    ]

    def loader(split, batch_size, sampler):
        pipeline = train_pipeline if split == 'train' else test_pipeline
        dataset = dict(
            type='CityscapesDataset',
            data_root=SEG_DATA,
            img_suffix='_leftImg8bit.jpg',
            seg_map_suffix='_gtFine_labelTrainIds.png',
            data_prefix=dict(
                img_path=f'leftImg8bit/{split}',
                seg_map_path=f'gtFine/{split}'),
            pipeline=pipeline)
        return dict(
            batch_size=batch_size,
            num_workers=0,
            persistent_workers=False,
            sampler=sampler,
            dataset=dataset)

    cfg.train_dataloader = loader('train', 2,
                                  dict(type='InfiniteSampler', shuffle=True))
    cfg.val_dataloader = loader('val', 1,
                                dict(type='DefaultSampler', shuffle=False))
    cfg.test_dataloader = loader('val', 1,
                                 dict(type='DefaultSampler', shuffle=False))
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=2)
    cfg.default_hooks.logger = dict(
        type='LoggerHook', interval=1, log_metric_by_epoch=False)
    set_student_hook_interval(cfg, 2)


def shrink_cls(cfg: Config, data_root: str) -> None:
    """One epoch on the fake CIFAR-100: 4 images at batch 2 (the ResNet at
    32 px), 2 at batch 1 for the 224-px DeiT pair (its teacher and student
    need 224); the 4 test images at batch 1."""
    student = offline_model(cfg)
    vit = student.backbone.get('img_size', 32) == 224
    cfg.custom_imports = dict(
        imports=cfg.get('custom_imports', {}).get('imports', []) +
        [FAKE_CIFAR_MODULE],
        allow_failed_imports=False)
    for key, split in (('train_dataloader', 'train'),
                       ('val_dataloader', 'test'), ('test_dataloader',
                                                    'test')):
        loader = cfg[key]
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.batch_size = 1 if vit or split == 'test' else 2
        loader.dataset.update(
            type='UncheckedCIFAR100',
            data_root=data_root,
            split=split,
            download=False)
        if vit and split == 'train':
            loader.dataset.indices = 2
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    # schedulers that start after the single epoch (DeiT's cosine after a
    # 5-epoch warm-up) cannot be built: end at the schedule's end instead
    schedulers = cfg.get('param_scheduler', [])
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    cfg.param_scheduler = [
        s for s in schedulers
        if s.get('begin', 0) < 1 or not s.get('by_epoch', True)
    ]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    set_student_hook_interval(cfg, 1)


def run_tool(tool: str, args, env_path: str) -> str:
    """``python tools/TOOL ARGS`` from the repo root; returns the output
    and fails the test (with its tail) on a non-zero exit."""
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (env_path, env.get('PYTHONPATH')) if p)
    proc = subprocess.run(
        [sys.executable, osp.join('tools', tool)] + list(args),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{tool} {args}:\n{output[-4000:]}'
    return output


def metric_value(output: str, key: str) -> str:
    found = re.findall(re.escape(key) + r': (\S+)', output)
    assert found, f'no {key} in the output:\n{output[-3000:]}'
    return found[-1]


PROCKD = [c for c in CONFIGS if is_prockd(c)]
# what a ProC-KD config adds to its baseline, besides the teacher base's
# variable (``*_teacher``)
DISTILLATION_KEYS = {
    'model', 'custom_hooks', 'custom_imports', 'prockd_distiller',
    'prockd_hooks'
}


def test_each_baseline_is_its_prockd_config_less_the_distillation():
    """A baseline's model is the student of exactly one ProC-KD config, and
    every other key of the two (data, schedule, optimizer, evaluator,
    runtime) is the same: the ProC-KD run below covers the baseline."""
    absent = object()
    prockd = {
        name: Config.fromfile(get_config_path(name)).to_dict()
        for name in PROCKD
    }
    baselines = [c for c in CONFIGS if not is_prockd(c)]
    assert baselines
    for name in baselines:
        base = Config.fromfile(get_config_path(name)).to_dict()
        twins = [
            p for p, cfg in prockd.items()
            if cfg['model']['student'] == base['model']
        ]
        assert len(twins) == 1, (name, twins)
        ours = prockd[twins[0]]
        differ = {
            k
            for k in set(ours) | set(base)
            if ours.get(k, absent) != base.get(k, absent)
            and not k.endswith('_teacher')
        }
        assert differ <= DISTILLATION_KEYS, (name, twins[0],
                                             differ - DISTILLATION_KEYS)


@pytest.mark.parametrize('name', PROCKD)
def test_train_then_test_end_to_end(name, tmp_path):
    cfg = Config.fromfile(get_config_path(name))
    if name.startswith('seg/'):
        shrink_seg(cfg)
        metric, unit = 'mIoU', 'iter_2'
    else:
        (tmp_path / f'{FAKE_CIFAR_MODULE}.py').write_text(FAKE_CIFAR_SOURCE)
        shrink_cls(cfg, write_fake_cifar100(str(tmp_path / 'cifar100')))
        metric, unit = 'accuracy/top1', 'epoch_1'
    cfg.randomness = dict(seed=0)
    config = str(tmp_path / 'cfg.py')
    cfg.dump(config)
    work = tmp_path / 'work'

    run_tool('train.py', [config, '--work-dir', str(work)], str(tmp_path))
    ckpt = work / f'{unit}.pth'
    assert ckpt.is_file(), sorted(os.listdir(work))

    out = run_tool('test.py', [
        config,
        str(ckpt), '--work-dir',
        str(tmp_path / 'test_full'), '--out',
        str(tmp_path / 'full.pkl')
    ], str(tmp_path))
    full = metric_value(out, metric)
    print(f'{name}: {metric} {full}')

    student_ckpt = work / f'student_{unit}.pth'
    student_cfg = work / 'student_config.py'
    assert student_ckpt.is_file(), sorted(os.listdir(work))
    assert student_cfg.is_file(), sorted(os.listdir(work))
    out = run_tool('test.py', [
        str(student_cfg),
        str(student_ckpt), '--work-dir',
        str(tmp_path / 'test_student'), '--out',
        str(tmp_path / 'student.pkl')
    ], str(tmp_path))
    assert 'loaded into model.student' not in out  # a plain model
    assert metric_value(out, metric) == full
    # not only the metric: every prediction is the same
    key = 'pred_sem_seg' if name.startswith('seg/') else 'pred_score'
    ours = mmengine.load(str(tmp_path / 'full.pkl'))
    plain = mmengine.load(str(tmp_path / 'student.pkl'))
    assert len(ours) == len(plain) > 0
    for i, (a, b) in enumerate(zip(ours, plain)):
        a, b = a[key], b[key]
        if isinstance(a, dict):  # PixelData as a dict
            a, b = a['data'], b['data']
        assert torch.equal(a, b), (
            f'{name}: sample {i}: the distiller ({ckpt.name}) and the plain '
            f'student ({student_cfg.name}, {student_ckpt.name}) predict '
            f'differently: {key} max abs difference '
            f'{(a.float() - b.float()).abs().max().item():.4g}')
