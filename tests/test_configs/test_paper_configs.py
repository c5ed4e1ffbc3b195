"""The ``*_paper`` configs: the flagship configs with every switch pinned to
the authors' recipe (``configs/_base_/models/prockd_paper_recipe.py``).

Each flagship is itself the paper's recipe (the [ours] recipe that won on
the low-data detection proxy, docs/benchmark.md, ships as a separate
two-stage pair): every pinned value must be what the
flagship sets or, where it sets nothing, the default of the class it
configures. When a flagship takes a recipe that wins, this test names the
switch, and the README's config table must say so.
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
        'prockd_retinanet_coco_paper.py',
        'seg/prockd_swin-t_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024_'
        'paper.py',
    ]


@pytest.mark.parametrize('name', PAPER)
def test_paper_config_pins_the_recipe_and_equals_its_flagship(name):
    paper = Config.fromfile(get_config_path(name)).model
    flagship = Config.fromfile(
        get_config_path(name.replace('_paper.py', '.py'))).model
    recipe = Config.fromfile(
        get_config_path(
            '_base_/models/prockd_paper_recipe.py')).prockd_paper_recipe
    top = defaults(ProtoDistiller)
    for key, want in recipe.items():
        if isinstance(want, dict):
            for sub, value in want.items():
                assert paper[key][sub] == value, (name, key, sub)
                given = (flagship.get(key) or {}).get(sub, inspect.Parameter)
                if given is inspect.Parameter:
                    cls = CLASSES[key]
                    # LevelAdapter's out_kernel defaults to 0 (1x1 or none)
                    given = 0 if cls is None else defaults(cls)[sub]
                assert given == value, (name, key, sub, given)
        else:
            assert paper[key] == want, (name, key)
            assert flagship.get(key, top.get(key)) == want, (name, key)
    # the rest of the model is the flagship's, the KL weight included
    assert paper.kl_loss.loss_weight == flagship.kl_loss.loss_weight
    assert paper.student == flagship.student
    assert paper.teacher == flagship.teacher
