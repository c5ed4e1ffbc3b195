"""[ours] How well the prototype branch alone does the student's task: the
branch (frozen teacher -> learner -> augment -> the branch's head) put in
the student's place and run through a loop's data and metric.

The gap between this figure and the student's is what says whether
distillation from this teacher can pay (``tools/analysis_tools/
teacher_fit.py``, :class:`BranchEvalHook`, docs/benchmark.md).
"""
import contextlib
from typing import Dict, Iterator

import torch

from .runner_model import unwrapped_model


@contextlib.contextmanager
def branch_as_student(model) -> Iterator[None]:
    """Inside, ``model.student`` is the branch: its features are the
    student's maps with the prototype levels replaced by the branch's, and
    its heads the branch's own (``branch_head='own'``) or the student's.
    ``predict`` then gives the branch's predictions. Restored on exit."""
    student = model.student
    heads = model.branch_student or student
    cls = model.iface.family == 'cls'
    own = student.extract_feat

    def branch_feat(inputs, *args, **kwargs):
        # the maps the branch replaces: FPN levels, or a classifier's
        # backbone maps (then the heads' own neck pools the branch's)
        feats = tuple(student.backbone(inputs)) if cls else own(inputs)
        feats = model.prototype_branch(model._teacher_features(inputs), feats)
        if cls and heads.with_neck:
            return heads.neck(feats)
        return feats

    heads.extract_feat = branch_feat
    model._modules['student'] = heads
    try:
        yield
    finally:
        model._modules['student'] = student
        del heads.extract_feat


def evaluate_branch(runner, loop=None) -> Dict[str, float]:
    """The metrics of the prototype branch on ``loop``'s data and evaluator
    (the runner's val loop by default), computed without the loop's hooks:
    no checkpoint, best-model or logging hook sees the branch's figures as
    the student's. The model's train/eval mode is restored.

    Raises:
        ValueError: if the model has no prototype branch, or there is no
            loop to run.
    """
    model = unwrapped_model(runner)
    if getattr(model, 'learner', None) is None:
        raise ValueError(
            f'evaluate_branch: the model is {type(model).__name__}, which '
            'has no prototype branch (a ProtoDistiller with a learner)')
    loop = runner.val_loop if loop is None else loop
    if loop is None:
        raise ValueError(
            'evaluate_branch: the runner has no val loop (val_dataloader, '
            'val_evaluator and val_cfg); give the config one, or pass a '
            'loop')
    was_training = model.training
    model.eval()
    try:
        with branch_as_student(model), torch.no_grad():
            for data_batch in loop.dataloader:
                outputs = runner.model.val_step(data_batch)
                loop.evaluator.process(
                    data_samples=outputs, data_batch=data_batch)
            metrics = loop.evaluator.evaluate(len(loop.dataloader.dataset))
    finally:
        model.train(was_training)
    return {k: float(v) for k, v in metrics.items()}
