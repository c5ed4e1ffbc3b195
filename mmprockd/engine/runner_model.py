# Copyright (c) mmprockd contributors. All rights reserved.
"""The model a runner trains, out of its distributed wrapper."""
from mmengine.model import is_model_wrapper


def unwrapped_model(runner):
    """``runner.model``, or the model inside it when mmengine wrapped it
    for distributed training (``MMDistributedDataParallel``, FSDP and the
    other registered ``MODEL_WRAPPERS`` hold it as ``module``): the
    distiller whose switches and parts the hooks read."""
    model = runner.model
    return model.module if is_model_wrapper(model) else model
