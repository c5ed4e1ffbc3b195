"""The frozen teacher: built, loaded, frozen and run for its features only.

Rules (what users of other toolboxes complain about, ``docs/USERS.md``):
no parameter requires grad; every submodule (BatchNorm, DropPath, dropout)
stays in eval mode whatever ``train()`` is called with; it runs under
``no_grad`` and stops as soon as the last requested layer has produced its
output; it may run in bf16/fp16; it has its own normalisation and input
scale; it never computes a loss.
"""
import copy
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

from mmprockd.registry import MODELS
from mmprockd.utils.checkpoint_io import checkpoint_error_reason
from ..adapters.tokens_to_map import tokens_to_map
from .build_checks import suggest_layers

_DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
_NAMES = {v: k for k, v in _DTYPES.items()}
# ImageNet statistics on 0-255 RGB images: the convention of the ImageNet
# weights of mmpretrain, torchvision and timm
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
_ORDERS = ('rgb', 'bgr')

Convention = Tuple[Optional[Tensor], Optional[Tensor], bool]


def deepcopy_sharing(module: nn.Module, memo: dict,
                     shared: Sequence[str]) -> nn.Module:
    """A deep copy of ``module`` in which the attributes named ``shared``
    are the original objects, not copies.

    For a distiller's ``__deepcopy__``: the frozen teacher and its feature
    cache are held outside the module tree and never change, and a copy
    (mmengine's ``EMAHook`` makes one of the whole model) that duplicated
    them would hold a second teacher, and a second cache, that nothing
    uses. Everything else is copied as ``copy.deepcopy`` copies a module.
    """
    for name in shared:
        value = module.__dict__.get(name)
        if value is not None:
            memo[id(value)] = value
    new = type(module).__new__(type(module))
    memo[id(module)] = new
    new.__setstate__(copy.deepcopy(module.__dict__, memo))
    return new


def student_input_convention(preprocessor) -> Convention:
    """What a student's data preprocessor does to the loaded image.

    Returns ``(mean, std, flips)``: the mean and std it subtracts and
    divides by, in the channel order *after* its conversion (None when it
    does not normalise), and whether it reverses the channel order
    (``bgr_to_rgb``/``rgb_to_bgr`` of mmengine, mmdet and mmseg,
    ``to_rgb`` of mmpretrain). Raises ``TypeError`` for a preprocessor
    that states neither, naming it.
    """
    name = type(preprocessor).__name__
    flips = None
    # mmseg: channel_conversion; mmpretrain's classifier: to_rgb; mmengine,
    # mmdet and mmpretrain's self-supervised ones: _channel_conversion
    for attr in ('channel_conversion', 'to_rgb', '_channel_conversion'):
        if hasattr(preprocessor, attr):
            flips = bool(getattr(preprocessor, attr))
            break
    if flips is None:
        raise TypeError(
            f'FrozenTeacher: cannot tell what the student\'s data '
            f'preprocessor {name} does to the image: it has none of '
            'channel_conversion, to_rgb, _channel_conversion (the flags of '
            'the mmengine, mmdet, mmseg and mmpretrain preprocessors); use '
            'one of those or a subclass')
    mean = getattr(preprocessor, 'mean', None)
    std = getattr(preprocessor, 'std', None)
    if not getattr(preprocessor, '_enable_normalize', mean is not None):
        mean = std = None
    if mean is not None:
        mean = mean.detach().float().flatten().cpu()
        std = std.detach().float().flatten().cpu()
    return mean, std, flips


class _StopForward(Exception):
    """Raised by a hook once every requested layer has been recorded."""


def _load_state_dict(path: str) -> Dict[str, Tensor]:
    """The teacher's weights, loaded with ``weights_only=True``: a local
    file directly, a URL or ``mmprockd://`` name through mmengine's
    ``CheckpointLoader``, whose loaders ``import mmprockd`` made
    weights-only (:func:`mmprockd.utils.compat.use_weights_only_loaders`).
    Errors never repeat torch's advice to load with ``weights_only=False``.
    """
    if '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(
            f'FrozenTeacher: teacher checkpoint {path!r} does not exist')
    try:
        if '://' in path:
            ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        else:
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # corrupt or not a checkpoint
        # from None: torch's own message (chained) advises weights_only=False
        raise ValueError(
            f'FrozenTeacher: {path!r} is not a readable checkpoint: '
            f'{checkpoint_error_reason(err)}') from None
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
        mean, std (Sequence[float]): the normalisation the teacher was
            trained with, on 0-255 images in ``channel_order``. Defaults to
            the ImageNet statistics in RGB (mmpretrain, torchvision and timm
            ImageNet weights).
        channel_order (str): the channel order the teacher was trained on,
            ``'rgb'`` (default) or ``'bgr'``.
        source_channel_order (str): the channel order the data pipeline
            loads images in, before the student's preprocessor:
            ``'bgr'`` (default; mmcv's ``LoadImageFromFile``) or ``'rgb'``.
        input_scale (float): resize the input by this factor first.
        dtype (str): ``'fp32'``, ``'bf16'`` or ``'fp16'`` autocast, applied
            where it is fast: bf16 on a CUDA device that supports it, fp16
            on CUDA. Elsewhere (the CPU, where bf16 autocast is several
            times slower than fp32) the teacher runs in fp32. The log says
            which it uses on each device. Defaults to ``'fp32'``.
        force_dtype (bool): use ``dtype`` on every device, the CPU
            included. Defaults to False.

    The teacher always sees its own convention, whatever the student's
    preprocessor does (:meth:`bind_student`): the student's normalisation
    is undone exactly, its channel order is brought to the teacher's, and
    the teacher's ``mean``/``std`` are applied. When both conventions are
    the same this is the identity and the input is passed on untouched.
    """

    def __init__(self,
                 backbone: dict,
                 layers: Sequence[str],
                 ckpt: Optional[str] = None,
                 ckpt_prefix: Optional[str] = None,
                 strict: bool = True,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 channel_order: str = 'rgb',
                 source_channel_order: str = 'bgr',
                 input_scale: float = 1.0,
                 dtype: str = 'fp32',
                 force_dtype: bool = False) -> None:
        super().__init__()
        if dtype not in _DTYPES:
            raise ValueError(f'FrozenTeacher: dtype must be one of '
                             f'{list(_DTYPES)}, got {dtype!r}')
        if not layers:
            raise ValueError('FrozenTeacher: `layers` names no layer')
        self.model = MODELS.build(backbone)
        self.layers = list(layers)
        self.dtype = _DTYPES[dtype]
        self.force_dtype = force_dtype
        # device type -> the autocast dtype used there (None: fp32)
        self._run_dtypes: Dict[str, Optional[torch.dtype]] = {}
        self.input_scale = float(input_scale)
        if mean is None or std is None:
            raise ValueError(
                'FrozenTeacher: mean/std must be the normalisation the '
                'teacher was trained with (None no longer means "the '
                'student\'s"); ImageNet weights use the defaults, '
                f'mean={list(IMAGENET_MEAN)}, std={list(IMAGENET_STD)}')
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError('FrozenTeacher: mean and std need 3 values, std '
                             f'> 0; got mean={list(mean)}, std={list(std)}')
        for key, order in (('channel_order', channel_order),
                           ('source_channel_order', source_channel_order)):
            if order not in _ORDERS:
                raise ValueError(f'FrozenTeacher: {key} must be one of '
                                 f'{list(_ORDERS)}, got {order!r}')
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.channel_order = channel_order
        self.source_channel_order = source_channel_order
        # student preprocessor -> (channel permutation, scale, shift)
        self._transforms: Dict[int, tuple] = {}
        modules = dict(self.model.named_modules())
        for name in self.layers:
            if name not in modules:
                raise KeyError(
                    f'FrozenTeacher: layer {name!r} does not exist in '
                    f'{type(self.model).__name__}: `layers` takes '
                    'named_modules() names; '
                    f'{suggest_layers(name, list(modules))}')
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
        """Stay in eval mode: DropPath, dropout and BatchNorm included.
        mmengine's train loop calls ``model.train()`` every iteration; a
        teacher already in eval throughout is left as it is."""
        if any(m.training for m in self.modules()):
            super().train(False)
        return self

    def bind_student(self, student_preprocessor) -> tuple:
        """The map from the student's preprocessed input to the teacher's.

        With the student's ``x = (flip?(img) - m_s) / s_s`` (``img`` as
        loaded, in ``source_channel_order``), the teacher's input is
        ``(P(x * s_s + m_s) - m_t) / s_t``, ``P`` the channel permutation
        to the teacher's order: per channel ``P(x) * a + b`` with ``a =
        P(s_s) / s_t`` and ``b = (P(m_s) - m_t) / s_t``. Returns ``(perm,
        a, b)``; ``perm`` is None for no reordering and ``a``/``b`` are
        None for the identity. Computed once per preprocessor; an
        unknown preprocessor is a ``TypeError`` here, at build.
        """
        key = id(student_preprocessor)
        if key in self._transforms:
            return self._transforms[key]
        mean, std, flips = student_input_convention(student_preprocessor)
        self._check_scale(mean, std)
        if mean is None:  # no normalisation: the raw 0-255 image
            mean, std = torch.zeros(3), torch.ones(3)
        if mean.numel() != 3:
            raise ValueError(
                'FrozenTeacher: the student normalises '
                f'{mean.numel()} channels; the teacher takes 3 (RGB/BGR)')
        student_order = self.source_channel_order
        if flips:
            student_order = 'rgb' if student_order == 'bgr' else 'bgr'
        perm = None if student_order == self.channel_order else [2, 1, 0]
        if perm is not None:
            mean, std = mean[perm], std[perm]
        a, b = std / self.std, (mean - self.mean) / self.std
        if torch.equal(a, torch.ones(3)) and torch.equal(b, torch.zeros(3)):
            a = b = None
        else:
            a, b = a.view(1, 3, 1, 1), b.view(1, 3, 1, 1)
        self._transforms[key] = (perm, a, b)
        return self._transforms[key]

    def _check_scale(self, mean: Optional[Tensor],
                     std: Optional[Tensor]) -> None:
        """Refuse a teacher ``mean``/``std`` on the 0-1 scale (the timm and
        torchvision habit) when the images are 0-255: the student's
        preprocessor does not normalise, or divides by a std above 1."""
        on_255 = mean is None or float(std.max()) > 1.0
        # (a std of 1 with a mean of 0 is the raw image: not the 0-1 scale)
        if not on_255 or float(self.mean.abs().max()) > 1.0 or \
                float(self.std.max()) >= 1.0:
            return
        given = [round(float(v), 4) for v in self.mean]
        given_std = [round(float(v), 4) for v in self.std]
        fixed = [round(float(v) * 255, 3) for v in self.mean]
        fixed_std = [round(float(v) * 255, 3) for v in self.std]
        raise ValueError(
            f'FrozenTeacher: mean={given}, std={given_std} look like the 0-1 '
            'scale, but the images are 0-255 (what the student\'s data '
            'preprocessor is given); the teacher would see inputs 255 times '
            f'too large. Give them on 0-255: mean={fixed}, std={fixed_std}')

    def preprocess(self, inputs: Tensor, student_preprocessor) -> Tensor:
        """From the student's preprocessed input to the teacher's: its
        own normalisation and channel order (:meth:`bind_student`), then
        ``input_scale``."""
        perm, a, b = self.bind_student(student_preprocessor)
        x = inputs
        if perm is not None:
            x = x[:, perm]
        if a is not None:
            x = x * a.to(x) + b.to(x)
        if self.input_scale != 1.0:
            x = F.interpolate(
                x,
                scale_factor=self.input_scale,
                mode='bilinear',
                align_corners=False)
        return x

    def from_student_input(self, inputs: Tensor,
                           student_preprocessor) -> List[Tensor]:
        """Teacher maps for a batch preprocessed by the student's data
        preprocessor (:meth:`preprocess`); moves the teacher to the batch's
        device on first use."""
        if next(self.parameters()).device != inputs.device:
            self.to(inputs.device)
        return self(self.preprocess(inputs, student_preprocessor))

    def run_dtype(self, device: torch.device) -> Optional[torch.dtype]:
        """The autocast dtype the teacher runs in on ``device`` (None:
        fp32): ``dtype`` on CUDA (bf16 only where the device supports it),
        fp32 elsewhere unless ``force_dtype``. Logged once per device
        type."""
        kind = torch.device(device).type
        if kind in self._run_dtypes:
            return self._run_dtypes[kind]
        dtype, why = self.dtype, ''
        if dtype is not None and not self.force_dtype:
            if kind != 'cuda':
                dtype, why = None, (f' (dtype={_NAMES[self.dtype]!r} '
                                    'applies on CUDA only; force_dtype='
                                    f'True runs it on {kind})')
            elif dtype == torch.bfloat16 and \
                    not torch.cuda.is_bf16_supported():
                dtype, why = None, ' (this GPU has no bf16 support)'
        self._run_dtypes[kind] = dtype
        MMLogger.get_current_instance().info(
            f'FrozenTeacher: runs in {_NAMES[dtype]} on {kind}{why}')
        return dtype

    @torch.no_grad()
    def forward(self, inputs: Tensor) -> List[Tensor]:
        """Teacher maps ``(N, C_i, H_i, W_i)``, one per entry of ``layers``.

        ``inputs`` is already in the teacher's normalisation
        (:meth:`preprocess`).
        """
        self._records = {}
        hw: Tuple[int, int] = tuple(inputs.shape[-2:])
        dtype = self.run_dtype(inputs.device)
        try:
            with torch.autocast(
                    device_type=inputs.device.type,
                    dtype=dtype or torch.float32,
                    enabled=dtype is not None):
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
