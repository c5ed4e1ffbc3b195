"""[ours] Two-stage ProC-KD in one run (``DistillScheduleHook(student_start=
..., branch_stop=..., student_schedule=...)``), trained by mmengine's Runner
on the toy ProtoDistiller (``toy_distill.py``, branch with its own head).

Before ``student_start`` only the branch learns and the student, BatchNorm
buffers included, stays exactly as built; from it on the branch is frozen
and the student trains under its own schedule, which starts from the base
learning rate as in a run of its own, also when the run is resumed in the
student phase."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from tool_runner import toy

BASE_LR = 0.05  # toy_cls.py's SGD
START = 2
# LinearLR over 4 steps from a quarter: factors 0.25, 0.5, 0.75, 1.0
STUDENT_LRS = [0.25 * BASE_LR, 0.5 * BASE_LR, 0.75 * BASE_LR, BASE_LR]
# the branch phase: cosine from the base LR to 0 over 2 steps
BRANCH_LRS = [BASE_LR, 0.5 * BASE_LR]


class _Recorder(Hook):
    """What each step trains with: the LR, the phase, the weights."""

    def __init__(self) -> None:
        self.steps = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model
        self.steps.append(
            dict(
                iter=runner.iter,
                lr=runner.optim_wrapper.get_lr()['lr'][0],
                logged_lr=runner.message_hub.get_scalar('train/lr').current(),
                paused=model.student_paused,
                frozen=model.branch_frozen,
                schedulers=[type(s).__name__ for s in runner.param_schedulers],
                student={
                    k: v.clone()
                    for k, v in model.student.state_dict().items()
                },
                branch={
                    k: v.clone()
                    for k, v in model.learner.state_dict().items()
                }))


def _train(data_root, work_dir, by_epoch, resume_from=None):
    """6 steps, 2 an epoch (8 images, batch 4): the student starts at step
    2, given as iteration 2 or as epoch 1."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(osp.join(toy.TOY_DIR, 'toy_distill.py'))
    cfg.merge_from_dict({
        f'{loader}.dataset.data_root': data_root
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    })
    cfg.model.branch_head = 'own'
    cfg.model.distill_fraction = 1.0
    if by_epoch:
        cfg.train_cfg = dict(
            type='EpochBasedTrainLoop', max_epochs=3, val_interval=100)
    else:
        cfg.train_cfg = dict(
            type='IterBasedTrainLoop', max_iters=START + 4, val_interval=100)
    cfg.log_processor = dict(by_epoch=by_epoch, window_size=1)
    cfg.param_scheduler = [
        dict(
            type='CosineAnnealingLR',
            by_epoch=False,
            begin=0,
            end=START,
            T_max=START,
            eta_min=0.0)
    ]
    cfg.custom_hooks = [
        dict(
            type='mmprockd.DistillScheduleHook',
            by_epoch=by_epoch,
            student_start=START // 2 if by_epoch else START,
            branch_stop=START // 2 if by_epoch else START,
            student_schedule=[
                dict(
                    type='LinearLR',
                    start_factor=0.25,
                    by_epoch=False,
                    begin=0,
                    end=4)
            ])
    ]
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook',
        by_epoch=by_epoch,
        interval=2 if by_epoch else 4)
    cfg.work_dir = work_dir
    if resume_from:
        cfg.resume, cfg.load_from = True, resume_from
    runner = Runner.from_cfg(cfg)
    recorder = _Recorder()
    runner.register_hook(recorder, priority='LOW')
    runner.train()
    return recorder.steps


@pytest.fixture(scope='module', params=['iter', 'epoch'])
def one_run(request, toy_data_root, tmp_path_factory):
    by_epoch = request.param == 'epoch'
    work_dir = str(tmp_path_factory.mktemp('one_run') / 'work')
    return work_dir, by_epoch, _train(toy_data_root, work_dir, by_epoch)


def test_the_branch_phase_leaves_the_student_as_built(one_run):
    _, _, steps = one_run
    assert [s['iter'] for s in steps] == list(range(START + 4))
    assert [(s['paused'], s['frozen']) for s in steps] == \
        [(True, False)] * START + [(False, True)] * 4
    built = steps[0]['student']
    assert any(k.endswith('running_mean') for k in built)
    for k, v in steps[START]['student'].items():
        assert torch.equal(v, built[k]), k  # weights and BN buffers
    # the branch learned in its phase and is frozen in the student's
    assert any(not torch.equal(v, steps[0]['branch'][k])
               for k, v in steps[START]['branch'].items())
    for s in steps[START:]:
        for k, v in s['branch'].items():
            assert torch.equal(v, steps[START]['branch'][k]), k
    # and the student learns in its phase
    assert any(v.is_floating_point() and not torch.equal(v, built[k])
               for k, v in steps[-1]['student'].items())


def test_the_student_phase_starts_its_own_schedule(one_run):
    _, _, steps = one_run
    assert [s['lr'] for s in steps] == pytest.approx(BRANCH_LRS + STUDENT_LRS)
    # and the log shows the LR each step trains with
    assert [s['logged_lr'] for s in steps] == [s['lr'] for s in steps]
    assert steps[START - 1]['schedulers'] == ['CosineAnnealingLR']
    assert steps[START]['schedulers'] == ['LinearLR']


def test_a_run_resumed_in_the_student_phase_keeps_its_schedule(
        one_run, toy_data_root, tmp_path):
    work_dir, by_epoch, steps = one_run
    ckpt = osp.join(work_dir, 'epoch_2.pth' if by_epoch else 'iter_4.pth')
    assert osp.isfile(ckpt)
    resumed = _train(toy_data_root, str(tmp_path / 'resumed'), by_epoch, ckpt)
    assert [s['iter'] for s in resumed] == [4, 5]
    assert [s['schedulers'] for s in resumed] == [['LinearLR']] * 2
    assert [s['lr'] for s in resumed] == pytest.approx(STUDENT_LRS[2:])
    assert all(s['paused'] is False and s['frozen'] for s in resumed)
    for k, v in resumed[0]['branch'].items():
        assert torch.equal(v, steps[4]['branch'][k]), k
