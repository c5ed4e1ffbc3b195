"""[ours] BranchEvalHook: the branch's val metric once, when the student
phase starts, beside the student's baseline."""
import pytest

from mmprockd.engine.hooks import BranchEvalHook
from mmprockd.engine.hooks import branch_eval_hook as module


class _Model:
    student_paused = True


class _Logger:

    def __init__(self):
        self.lines = []

    def info(self, line):
        self.lines.append(line)

    def warning(self, line):
        self.lines.append('warning: ' + line)


class _Visualizer:

    def __init__(self):
        self.scalars = []

    def add_scalars(self, scalars, step):
        self.scalars.append((step, scalars))


class _Runner:
    val_loop = 'a loop'

    def __init__(self):
        self.model = _Model()
        self.logger = _Logger()
        self.visualizer = _Visualizer()
        self.iter = 0


def _steps(hook, runner, phases, monkeypatch, metrics):
    calls = []

    def fake(r):
        calls.append(r.iter)
        return dict(metrics)

    monkeypatch.setattr(module, 'evaluate_branch', fake)
    for i, paused in enumerate(phases):
        runner.iter = i
        runner.model.student_paused = paused
        hook.before_train_iter(runner, i)
    return calls


def test_evaluates_once_when_the_student_phase_starts(monkeypatch):
    hook = BranchEvalHook(baseline=dict(metric='coco/bbox_mAP', value=0.2))
    runner = _Runner()
    calls = _steps(hook, runner, [True, True, False, False, False],
                   monkeypatch, {'coco/bbox_mAP': 0.29})
    assert calls == [2]
    assert runner.visualizer.scalars == [(2, {'branch/coco/bbox_mAP': 0.29})]
    (line, ) = runner.logger.lines
    assert 'coco/bbox_mAP 0.2900' in line
    assert 'baseline coco/bbox_mAP 0.2000' in line
    assert 'leads by +0.0900' in line
    assert hook.metrics == {'coco/bbox_mAP': 0.29}


def test_a_branch_behind_the_baseline_is_said_so(monkeypatch):
    hook = BranchEvalHook(baseline=dict(metric='mIoU', value=40.0))
    runner = _Runner()
    _steps(hook, runner, [True, False], monkeypatch, {'mIoU': 35.5})
    assert 'leads by -4.5000 (no lead' in runner.logger.lines[0]


def test_a_run_resumed_in_the_student_phase_does_not_evaluate(monkeypatch):
    runner = _Runner()
    calls = _steps(BranchEvalHook(), runner, [False, False], monkeypatch,
                   {'mIoU': 1.0})
    assert calls == []


def test_bad_baselines_are_refused(monkeypatch):
    with pytest.raises(ValueError, match=r'dict\(metric=..., value=...\)'):
        BranchEvalHook(baseline=dict(value=0.3))
    hook = BranchEvalHook(baseline=dict(metric='bbox_mAP', value=0.3))
    with pytest.raises(KeyError, match="'bbox_mAP' is not among"):
        _steps(hook, _Runner(), [True, False], monkeypatch,
               {'coco/bbox_mAP': 0.1})


def test_a_run_without_a_val_loop_is_warned_not_evaluated(monkeypatch):
    runner = _Runner()
    runner.val_loop = None
    calls = _steps(BranchEvalHook(), runner, [True, False], monkeypatch,
                   {'mIoU': 1.0})
    assert calls == []
    assert runner.logger.lines[0].startswith('warning: BranchEvalHook: the '
                                             'run has no val loop')
