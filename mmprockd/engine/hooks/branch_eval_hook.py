"""[ours] The prototype branch's val metric at the end of the branch phase
of two-stage ProC-KD, beside the student's baseline."""
from typing import Optional

from mmengine.hooks import Hook

from mmprockd.registry import HOOKS
from ..branch_eval import evaluate_branch
from ..runner_model import unwrapped_model


@HOOKS.register_module()
class BranchEvalHook(Hook):
    """Evaluate the prototype branch on the val split when the student
    phase starts (``DistillScheduleHook(student_start=...)``), so that a
    run of 36 epochs says at epoch 12 whether the remaining 24 can pay.

    The branch is put in the student's place and run through the val
    loop's data and evaluator, without the loop's hooks (no checkpoint or
    best-model hook takes its figures for the student's). Its metrics are
    logged as ``branch/<metric>`` and written to the visualizer; with
    ``baseline``, the log line also gives the branch's lead over it, the
    figure ``tools/analysis_tools/teacher_fit.py`` bases its verdict on.
    A run resumed inside the student phase does not evaluate again.

    Args:
        baseline (dict, optional): the student's own figure on this val
            split, e.g. ``dict(metric='coco/bbox_mAP', value=0.365)`` for
            mmdet's RetinaNet-R50 1x, in the evaluator's units.
    """
    priority = 'LOW'  # after DistillScheduleHook has set the phase

    def __init__(self, baseline: Optional[dict] = None) -> None:
        if baseline is not None and (not isinstance(baseline, dict)
                                     or set(baseline) != {'metric', 'value'}):
            raise ValueError(
                'BranchEvalHook: baseline must be dict(metric=..., '
                f'value=...), e.g. dict(metric=\'coco/bbox_mAP\', '
                f'value=0.365); got {baseline!r}')
        self.baseline = baseline
        self._paused: Optional[bool] = None
        self.metrics: Optional[dict] = None

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        model = unwrapped_model(runner)
        paused = bool(getattr(model, 'student_paused', False))
        ended = self._paused is True and not paused
        self._paused = paused
        if ended:
            self.evaluate(runner)

    def evaluate(self, runner) -> dict:
        """Evaluate the branch now, log and return its metrics (none,
        with a warning, when the run has no val loop)."""
        if runner.val_loop is None:
            runner.logger.warning(
                'BranchEvalHook: the run has no val loop (val_dataloader, '
                'val_evaluator, val_cfg), so the branch is not evaluated')
            return {}
        metrics = evaluate_branch(runner)
        self.metrics = metrics
        runner.visualizer.add_scalars(
            {
                f'branch/{k}': v
                for k, v in metrics.items()
            }, step=runner.iter)
        text = ', '.join(f'{k} {v:.4f}' for k, v in metrics.items())
        line = f'BranchEvalHook: the branch at the end of its phase: {text}'
        if self.baseline is not None:
            name, value = self.baseline['metric'], self.baseline['value']
            if name not in metrics:
                raise KeyError(
                    f'BranchEvalHook: baseline metric {name!r} is not among '
                    f'the val metrics {sorted(metrics)}; name one of them')
            lead = metrics[name] - value
            line += (f'; the student\'s baseline {name} {value:.4f}: the '
                     f'branch leads by {lead:+.4f}')
            if lead <= 0:
                line += (' (no lead: the student phase is unlikely to beat '
                         'the student given the same time; see '
                         'teacher_fit.py in docs/user_guides)')
        runner.logger.info(line)
        return metrics
