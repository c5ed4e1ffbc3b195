"""The frozen teacher: built, loaded, frozen and run for its features only.

Rules (what users of other toolboxes complain about, ``docs/USERS.md``):
no parameter requires grad; every submodule (BatchNorm, DropPath, dropout)
stays in eval mode whatever ``train()`` is called with; it runs under
``no_grad`` and stops as soon as the last requested layer has produced its
output; it may run in bf16/fp16; it has its own normalisation and input
scale; it never computes a loss.
"""
import difflib
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

from mmprockd.registry import MODELS
from ..adapters.tokens_to_map import tokens_to_map

_DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


class _StopForward(Exception):
    """Raised by a hook once every requested layer has been recorded."""


def _load_state_dict(path: str) -> Dict[str, Tensor]:
    if '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(
            f'FrozenTeacher: teacher checkpoint {path!r} does not exist')
    try:
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except Exception as err:  # corrupt or not a checkpoint
        raise ValueError(f'FrozenTeacher: {path!r} is not a readable '
                         f'checkpoint: {err}') from err
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model'):
            if isinstance(ckpt.get(key), dict):
                return ckpt[key]
        return ckpt
    raise ValueError(f'FrozenTeacher: {path!r} holds a {type(ckpt)}, not a '
                     'state dict')


@MODELS.register_module()
class FrozenTeacher(nn.Module):
    """A pretrained backbone used only as a source of features.

    Args:
        backbone (dict): config of the backbone, with its scope, e.g.
            ``dict(type='mmpretrain.SwinTransformer', arch='tiny', ...)``.
        layers (Sequence[str]): names of the modules whose outputs are the
            teacher features (``named_modules`` names, e.g. ``'norm3'``).
        ckpt (str, optional): checkpoint file or URL. Defaults to None
            (random weights: tests only).
        ckpt_prefix (str, optional): keep only keys under this prefix and
            strip it (``'backbone.'`` for a classifier checkpoint). None
            strips ``'backbone.'`` when the backbone's own keys are absent.
        strict (bool): every backbone key must be in the checkpoint.
            Defaults to True.
        mean, std (Sequence[float], optional): the teacher's normalisation,
            in the channel order of the student's preprocessed input.
            Defaults to None (same as the student).
        flip_channels (bool): reverse RGB<->BGR before normalising.
        input_scale (float): resize the input by this factor first.
        dtype (str): ``'fp32'``, ``'bf16'`` or ``'fp16'`` autocast.
    """

    def __init__(self,
                 backbone: dict,
                 layers: Sequence[str],
                 ckpt: Optional[str] = None,
                 ckpt_prefix: Optional[str] = None,
                 strict: bool = True,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 flip_channels: bool = False,
                 input_scale: float = 1.0,
                 dtype: str = 'fp32') -> None:
        super().__init__()
        if dtype not in _DTYPES:
            raise ValueError(f'FrozenTeacher: dtype must be one of '
                             f'{list(_DTYPES)}, got {dtype!r}')
        if not layers:
            raise ValueError('FrozenTeacher: `layers` names no layer')
        self.model = MODELS.build(backbone)
        self.layers = list(layers)
        self.dtype = _DTYPES[dtype]
        self.flip_channels = flip_channels
        self.input_scale = float(input_scale)
        self.mean = None if mean is None else torch.tensor(mean).view(
            1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std).view(1, -1, 1, 1)
        modules = dict(self.model.named_modules())
        for name in self.layers:
            if name not in modules:
                close = difflib.get_close_matches(name, list(modules), n=5)
                raise KeyError(
                    f'FrozenTeacher: layer {name!r} does not exist in '
                    f'{type(self.model).__name__}; closest names: {close}')
        if ckpt is not None:
            self.load(ckpt, ckpt_prefix, strict)
        self._records: Dict[str, object] = {}
        for name in self.layers:
            modules[name].register_forward_hook(self._make_hook(name))
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def load(self, path: str, prefix: Optional[str], strict: bool) -> None:
        """Load weights; mismatched keys are a clear error listing them."""
        state = _load_state_dict(path)
        own = self.model.state_dict()
        if prefix is None and not set(own) & set(state) and any(
                k.startswith('backbone.') for k in state):
            prefix = 'backbone.'
        if prefix:
            state = {
                k[len(prefix):]: v
                for k, v in state.items() if k.startswith(prefix)
            }
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        bad_shape = sorted(
            k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if bad_shape or (strict and missing):
            raise ValueError(
                f'FrozenTeacher: checkpoint {path!r} does not fit '
                f'{type(self.model).__name__} (prefix {prefix!r}): '
                f'{len(missing)} missing keys {missing[:8]}, '
                f'{len(unexpected)} unexpected {unexpected[:8]}, '
                f'{len(bad_shape)} with other shapes {bad_shape[:8]}')
        self.model.load_state_dict({
            k: v
            for k, v in state.items() if k in own
        },
                                   strict=False)

    def _make_hook(self, name: str):

        def hook(module, args, output):
            self._records[name] = output
            if len(self._records) == len(self.layers):
                raise _StopForward

        return hook

    def train(self, mode: bool = True) -> 'FrozenTeacher':
        """Stay in eval mode: DropPath, dropout and BatchNorm included."""
        return super().train(False)

    def preprocess(self,
                   inputs: Tensor,
                   student_mean: Optional[Tensor] = None,
                   student_std: Optional[Tensor] = None) -> Tensor:
        """From the student's preprocessed input to the teacher's."""
        x = inputs
        if self.input_scale != 1.0:
            x = F.interpolate(
                x,
                scale_factor=self.input_scale,
                mode='bilinear',
                align_corners=False)
        if self.mean is None and not self.flip_channels:
            return x
        if student_mean is not None:
            x = x * student_std.view(1, -1, 1, 1) + student_mean.view(
                1, -1, 1, 1)
        if self.flip_channels:
            x = x.flip(1)
        if self.mean is not None:
            x = (x - self.mean.to(x)) / self.std.to(x)
        return x

    def from_student_input(self, inputs: Tensor,
                           student_preprocessor) -> List[Tensor]:
        """Teacher maps for a batch preprocessed by the student's data
        preprocessor: moves the teacher to the batch's device on first use,
        undoes the student's normalisation and applies its own."""
        if next(self.parameters()).device != inputs.device:
            self.to(inputs.device)
        mean = getattr(student_preprocessor, 'mean', None)
        std = getattr(student_preprocessor, 'std', None)
        if not getattr(student_preprocessor, '_enable_normalize', mean
                       is not None):
            mean = std = None
        return self(self.preprocess(inputs, mean, std))

    @torch.no_grad()
    def forward(self, inputs: Tensor) -> List[Tensor]:
        """Teacher maps ``(N, C_i, H_i, W_i)``, one per entry of ``layers``.

        ``inputs`` is already in the teacher's normalisation
        (:meth:`preprocess`).
        """
        self._records = {}
        hw: Tuple[int, int] = tuple(inputs.shape[-2:])
        try:
            with torch.autocast(
                    device_type=inputs.device.type,
                    dtype=self.dtype or torch.float32,
                    enabled=self.dtype is not None):
                self.model(inputs)
        except _StopForward:
            pass
        if len(self._records) != len(self.layers):
            missing = [n for n in self.layers if n not in self._records]
            raise RuntimeError(f'FrozenTeacher: layers {missing} did not run '
                               'in the backbone forward')
        outs = [
            tokens_to_map(self._records[n], hw).float() for n in self.layers
        ]
        self._records = {}
        return outs
