"""``DistillScheduleHook(branch_stop=...)`` under real DDP: two gloo
processes through ``tools/dist_train.sh``.

The toy ProtoDistiller of ``test_dist_loss_log.py`` (deterministic data
order, every image distilled) trains 4 steps, 2 per epoch, and its branch is
frozen from the third. DDP must accept parameters that stop receiving
gradients mid-run (``find_unused_parameters=True``, which the hook checks),
the frozen branch must come out of steps 3 and 4 bit for bit as step 2 left
it on disk while the student goes on learning, and the log must keep
showing the branch's loss without counting it in the total. Without
``find_unused_parameters`` the hook refuses before the first step.

Run: ``pytest tests/test_tools/test_dist_branch_stop.py``
"""
import os.path as osp

import torch
from test_dist_loss_log import _config
from test_dist_train import _launcher_env
from tool_runner import logged_losses, run_tool, toy

HOOK = ("custom_hooks=[dict(type='mmprockd.DistillScheduleHook', "
        'branch_stop=2, by_epoch=False)]')
UNUSED = ("model_wrapper_cfg=dict(type='MMDistributedDataParallel', "
          'find_unused_parameters=True)')


def _dist_train(tmp_path, data_root, name, extra):
    work_dir = str(tmp_path / name)
    config = tmp_path / f'{name}.py'
    config.write_text(
        open(_config(tmp_path, 2)).read() + '\n'.join(extra) + '\n')
    args = ['dist_train.sh', str(config), '2', '--work-dir', work_dir]
    proc = run_tool(
        args + ['--cfg-options'] + toy.data_root_options(data_root),
        cwd=str(tmp_path),
        **_launcher_env())
    return proc, work_dir


def _state(work_dir, epoch):
    ckpt = torch.load(
        osp.join(work_dir, f'epoch_{epoch}.pth'),
        map_location='cpu',
        weights_only=False)
    return ckpt['state_dict']


def test_a_branch_frozen_mid_run_under_ddp(toy_data_root, tmp_path):
    proc, work_dir = _dist_train(tmp_path, toy_data_root, 'frozen',
                                 [HOOK, UNUSED])
    assert proc.returncode == 0, proc.output[-4000:]
    assert 'Distributed training: True' in proc.output
    step2, step4 = _state(work_dir, 1), _state(work_dir, 2)
    branch = [k for k in step2 if k.startswith(('learner.', 'augment.'))]
    assert any(k.startswith('learner.') for k in branch)
    for k in branch:
        assert torch.equal(step2[k], step4[k]), k
    student = [
        k for k in step2
        if k.startswith('student.') and step2[k].is_floating_point()
    ]
    assert any(not torch.equal(step2[k], step4[k]) for k in student)
    # the frozen branch's loss is still logged, and left out of the total
    steps = logged_losses(work_dir)
    assert sorted(steps) == [1, 2, 3, 4]
    # fresh values every step, not the last one before the stop repeated
    assert len({logged['distill.proto.loss']
                for logged in steps.values()}) == 4
    for step, logged in steps.items():
        trained = logged['student.loss'] + logged['distill.loss_kl']
        proto = logged['distill.proto.loss']
        assert proto > 0, step
        want = trained + (proto if step <= 2 else 0.0)
        assert abs(logged['loss'] - want) <= 1e-5 * abs(want), (step, logged)


def test_without_find_unused_parameters_it_is_refused(toy_data_root, tmp_path):
    proc, work_dir = _dist_train(tmp_path, toy_data_root, 'refused', [HOOK])
    assert proc.returncode != 0
    assert 'find_unused_parameters=True' in proc.output
    assert not osp.exists(osp.join(work_dir, 'epoch_1.pth'))
