"""unwrapped_model: the model a runner trains, out of its distributed
wrapper."""
from types import SimpleNamespace

from mmengine.registry import MODEL_WRAPPERS
from torch import nn

from mmprockd.engine.runner_model import unwrapped_model


class _Wrapper(nn.Module):
    """A stand-in for MMDistributedDataParallel: a registered model wrapper
    that holds the model as ``module``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


MODEL_WRAPPERS.register_module(
    name='_MMPROCKDTestWrapper', module=_Wrapper, force=True)


def test_a_wrapped_model_is_taken_out_and_a_plain_one_returned_as_it_is():
    model = nn.Linear(2, 2)
    assert unwrapped_model(SimpleNamespace(model=model)) is model
    assert unwrapped_model(SimpleNamespace(model=_Wrapper(model))) is model


def test_a_module_attribute_alone_does_not_make_a_wrapper():
    """Only registered wrappers are taken apart: a model of ours that
    happens to have a ``module`` attribute is the model."""
    plain = nn.Sequential()
    plain.module = nn.Linear(2, 2)
    assert unwrapped_model(SimpleNamespace(model=plain)) is plain
