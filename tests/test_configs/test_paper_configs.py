"""The ``*_paper`` configs: the flagship configs with every switch pinned to
the authors' recipe (``configs/_base_/models/prockd_paper_recipe.py``).

Every pinned value must be what the flagship sets or, where it sets
nothing, the default of the class it configures, except the switches a
flagship took from a recipe that won (``RECIPE``, [ours]; the README's
config table says which): the detection flagship runs two-stage ProC-KD
in one run, the recipe that won on the detection proxy of
docs/benchmark.md; the segmentation and classification flagships are the
paper's recipe.
"""
import inspect

import pytest
from mmengine.config import Config

from mmprockd.models.distillers import ProtoDistiller
from mmprockd.models.losses import ConsistencyKLLoss
from mmprockd.models.necks import PrototypeLearner
from mmprockd.models.plugins import TaskAdaptiveAugment
from mmprockd.utils import get_config_path, list_configs

PAPER = [c for c in list_configs() if c.endswith('_paper.py')]
DET_PAPER = 'det/prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py'
# a paper config's flagship is its name without ``_paper``, but for the
# detection flagship, which runs 36 epochs where its paper twin runs 1x
FLAGSHIP = {DET_PAPER: 'prockd_retinanet_coco.py'}
# [ours] what a flagship sets beyond its paper twin: (key, sub-key) -> value
RECIPE = {
    DET_PAPER: {
        ('learner', 'fusion'):
        'fpn',
        ('learner', 'residual'):
        True,
        ('augment', 'out_relu'):
        False,
        ('branch_head', None):
        'own',
        ('branch_feat_loss', None):
        dict(type='mmprockd.BranchMimicLoss', loss_weight=1.0),
    }
}
CLASSES = dict(
    learner=PrototypeLearner,
    augment=TaskAdaptiveAugment,
    kl_loss=ConsistencyKLLoss,
    level_adapter=None)


def defaults(cls) -> dict:
    return {
        k: p.default
        for k, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def test_every_flagship_has_a_paper_config():
    assert sorted(PAPER) == [
        'cls/prockd_deit-b_deit-b-6l_8xb64-100e_cifar100-224px_paper.py',
        'cls/prockd_swin-t_resnet18_8xb16_cifar100_paper.py',
        DET_PAPER,
        'seg/prockd_swin-t_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024_'
        'paper.py',
    ]


@pytest.mark.parametrize('name', PAPER)
def test_paper_config_pins_the_recipe_and_equals_its_flagship(name):
    paper = Config.fromfile(get_config_path(name)).model
    flagship = Config.fromfile(
        get_config_path(FLAGSHIP.get(name, name.replace('_paper.py',
                                                        '.py')))).model
    recipe = Config.fromfile(
        get_config_path(
            '_base_/models/prockd_paper_recipe.py')).prockd_paper_recipe
    top = defaults(ProtoDistiller)
    ours = RECIPE.get(name, {})
    for key, want in recipe.items():
        if isinstance(want, dict):
            for sub, value in want.items():
                assert paper[key][sub] == value, (name, key, sub)
                given = (flagship.get(key) or {}).get(sub, inspect.Parameter)
                if given is inspect.Parameter:
                    cls = CLASSES[key]
                    # LevelAdapter's out_kernel defaults to 0 (1x1 or none)
                    given = 0 if cls is None else defaults(cls)[sub]
                assert given == ours.get((key, sub), value), \
                    (name, key, sub, given)
        else:
            assert paper[key] == want, (name, key)
            assert flagship.get(key, top.get(key)) == ours.get(
                (key, None), want), (name, key)
    # the rest of the model is the flagship's, the KL weight included
    assert paper.kl_loss.loss_weight == flagship.kl_loss.loss_weight
    assert paper.student == flagship.student
    assert paper.teacher == flagship.teacher


def test_the_detection_flagship_is_two_stage_prockd_in_one_run():
    """[ours] 12 epochs in which only the branch learns (mmdet's 1x), then
    24 of the student under mmdet's 2x schedule from its start, the branch
    frozen; its paper twin keeps the plain 1x run."""
    flagship = Config.fromfile(get_config_path('prockd_retinanet_coco.py'))
    paper = Config.fromfile(get_config_path(DET_PAPER))
    hook, = [
        h for h in flagship.custom_hooks
        if h.type == 'mmprockd.DistillScheduleHook'
    ]
    assert hook.by_epoch and hook.student_start == hook.branch_stop == 12
    assert flagship.train_cfg.max_epochs == 36
    assert flagship.train_cfg.val_begin == 13
    assert [s.type
            for s in hook.student_schedule] == ['LinearLR', 'MultiStepLR']
    assert hook.student_schedule[1].end == 24
    assert hook.student_schedule[1].milestones == [16, 22]
    # the config's own schedule is the branch phase's and ends with it
    assert max(s.end for s in flagship.param_scheduler if s.by_epoch) == 12
    assert flagship.model_wrapper_cfg.find_unused_parameters is True
    plain, = [
        h for h in paper.custom_hooks
        if h.type == 'mmprockd.DistillScheduleHook'
    ]
    assert not plain.get('student_start') and plain.get('branch_stop') is None
    assert paper.train_cfg.max_epochs == 12
