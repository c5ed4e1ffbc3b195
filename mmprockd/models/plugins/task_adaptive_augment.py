"""Task-adaptive feature augmentation with prototypes (ProC-KD, METHOD 2.2).

Every token of a feature map attends over the K prototypes learned by
``PrototypeLearner`` and is augmented with the resulting mix of prototypes.
During distillation the prototypes are passed in (and receive gradients);
a deployed student carries a frozen copy in the ``prototypes`` buffer, so
the module also works as an mmcv plugin, e.g. in mmdet's ResNet::

    plugins=[dict(cfg=dict(type='mmprockd.TaskAdaptiveAugment'),
                  stages=(False, False, False, True),
                  position='after_conv2')]
"""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmprockd.registry import MODELS

OptMultiConfig = Optional[Union[dict, List[dict]]]


@MODELS.register_module()
class TaskAdaptiveAugment(BaseModule):
    """Augment every token with an attention-weighted mix of prototypes.

    With ``X`` the input map and ``C`` the (K, D) prototypes:

    1. ``X' = phi(X)`` and ``C' = phi(C)`` with one shared 1x1 conv ``phi``
       (applied to the prototypes as a linear layer with the same weights);
    2. ``A = softmax_k(C' X'^T / temperature)`` of shape (N, K, H, W);
    3. ``Z = C'^T A`` of shape (N, D, H, W);
    4. ``out = ReLU(psi([X'; Z]) + X)``, with ``psi`` = 1x1 conv 2D->D, ReLU,
       1x1 conv D->D, ReLU.

    The default temperature 1.0 applies no 1/sqrt(D) scaling, as the authors'
    code does.

    Deployed path. With the prototypes fixed (the ``prototypes`` buffer),
    ``C'`` is a constant and every step before the softmax and before the
    first ReLU of ``psi`` is linear in ``X``. Writing ``phi(X) = W X + b``
    and splitting the first conv of ``psi`` into ``W_x`` (acting on ``X'``),
    ``W_z`` (acting on ``Z``) and its bias ``b_1``:

    * ``C' X'^T / T = (C' W / T) X + C' b / T``: one 1x1 conv D->K;
    * ``W_x X' + W_z Z + b_1 = (W_x W) X + (W_z C'^T) A + (W_x b + b_1)``:
      one 1x1 conv D->D on ``X`` plus one K->D on ``A``.

    Per token this is about ``2 D^2 + 2 D K`` multiply-adds instead of
    ``4 D^2 + 2 D K`` (``phi``, the 2D->D conv and the D->D conv), and
    ``X'``, ``Z`` and ``[X'; Z]`` are never built. The results equal the
    unfolded path up to float rounding.

    The forward takes this path in eval mode with gradients disabled and
    the buffer used (``prototypes=None``); training, gradient mode and
    explicit prototypes (the distiller) run the unfolded path. The folded
    weights are computed in float64, cast to the input's dtype and cached
    until ``phi``, the first conv of ``psi``, the buffer or the temperature
    change, in place (``set_prototypes``, ``load_state_dict``, optimiser
    steps) or by replacement. Writes through ``.data``
    (``p.data.copy_(...)``) bypass PyTorch's version counter and are not
    seen: call :meth:`clear_folded_cache` after them. The deployed path
    calls no submodule, so forward hooks on ``phi`` and ``psi`` do not fire
    there.

    Args:
        in_channels (int): Channels D of the input, equal to the prototype
            dimension.
        num_prototypes (int): Number of prototypes K. Defaults to 72.
        temperature (float): Softmax temperature of the attention; smaller
            is sharper. Defaults to 1.0.
        out_relu (bool): the ReLU of step 4. False [ours] returns
            ``psi([X'; Z]) + X``, so a signed input (an FPN's output, or the
            learner's with ``residual=True``) keeps its negative half.
            Defaults to True (the authors').
        init_cfg (dict or list[dict], optional): Initialisation config.
            Defaults to None.
    """

    # name of the layer when built by mmcv's ``build_plugin_layer``
    _abbr_ = 'proto_aug'

    def __init__(self,
                 in_channels: int,
                 num_prototypes: int = 72,
                 temperature: float = 1.0,
                 out_relu: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = self.__class__.__name__
        self.out_relu = out_relu
        positive = dict(
            in_channels=in_channels,
            num_prototypes=num_prototypes,
            temperature=temperature)
        for key, value in positive.items():
            if value <= 0:
                raise ValueError(f'{name}: {key} must be positive, '
                                 f'got {value}')
        self.in_channels = in_channels
        self.num_prototypes = num_prototypes
        self.temperature = temperature

        self.phi = nn.Conv2d(in_channels, in_channels, 1)
        self.psi = nn.Sequential(
            nn.Conv2d(2 * in_channels, in_channels, 1), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, in_channels, 1), nn.ReLU(inplace=True))
        # frozen copy of the prototypes shipped with a deployed model: (K, D)
        self.register_buffer('prototypes',
                             torch.zeros(num_prototypes, in_channels))
        # (key, pinned sources, folded weights) of the deployed path; a plain
        # attribute, so neither in the state dict nor moved by ``.to()``
        self._folded: Optional[tuple] = None

    def _check_prototypes(self, prototypes: Tensor) -> None:
        expected = (self.num_prototypes, self.in_channels)
        if tuple(prototypes.shape) != expected:
            raise ValueError(
                f'{self.__class__.__name__}: prototypes must have shape '
                f'(num_prototypes, in_channels) = {expected}, got '
                f'{tuple(prototypes.shape)}')

    @torch.no_grad()
    def set_prototypes(self, prototypes: Tensor) -> None:
        """Copy prototypes into the ``prototypes`` buffer.

        The copy is detached: later changes to ``prototypes`` do not reach
        the buffer and no gradient flows back to it.

        Args:
            prototypes (Tensor): Prototypes of shape (K, D).
        """
        self._check_prototypes(prototypes)
        self.prototypes.copy_(prototypes.detach())

    def clear_folded_cache(self) -> None:
        """Drop the cached folded weights of the deployed path.

        Only needed after writing the weights or the prototypes through
        ``.data``, which the cache cannot detect; every other change is
        detected by itself.
        """
        self._folded = None

    def _fold_sources(self) -> Tuple[Tensor, ...]:
        """The tensors the folded weights are computed from."""
        return (self.phi.weight, self.phi.bias, self.psi[0].weight,
                self.psi[0].bias, self.prototypes)

    @torch.no_grad()
    def _fold(self, dtype: torch.dtype,
              device: torch.device) -> Tuple[Tensor, ...]:
        """Fold ``phi``, the prototypes and the first conv of ``psi``.

        Computed in float64 on the CPU (some devices lack float64), then
        cast to ``dtype`` on ``device``.

        Returns:
            tuple[Tensor]: ``(logit_weight (K, D), logit_bias (K,),
            hidden_weight (D, D), hidden_bias (D,), attn_weight (D, K))``,
            with the 1/temperature folded into the logit weight and bias.
        """
        phi_w, phi_b, psi_w, psi_b, protos = (
            t.detach().to('cpu', torch.float64) for t in self._fold_sources())
        phi_w = phi_w.flatten(1)  # W: (D, D)
        psi_w = psi_w.flatten(1)  # [W_x, W_z]: (D, 2D)
        psi_x, psi_z = psi_w.split(self.in_channels, dim=1)
        encoded_protos = torch.addmm(phi_b, protos, phi_w.t())  # C': (K, D)
        scaled = encoded_protos / self.temperature
        folded = (
            scaled @ phi_w,  # C' W / T
            scaled @ phi_b,  # C' b / T
            psi_x @ phi_w,  # W_x W
            psi_x @ phi_b + psi_b,  # W_x b + b_1
            psi_z @ encoded_protos.t(),  # W_z C'^T
        )
        return tuple(t.to(device, dtype).contiguous() for t in folded)

    def _folded_weights(self, x: Tensor) -> Tuple[Tensor, ...]:
        """The folded weights for ``x``'s dtype and device, cached.

        The cache key holds the address, version counter, dtype and device
        of every source tensor, so in-place updates (which bump the version)
        and replaced tensors both invalidate it. The cache also keeps the
        sources it was built from alive, so that their memory cannot be
        reused by a replacement and alias an old key.
        """
        sources = self._fold_sources()
        if any(t.is_inference() for t in sources):
            # inference tensors have no version counter to key on
            return self._fold(x.dtype, x.device)
        key = (self.temperature, x.dtype, x.device) + tuple(
            (t.data_ptr(), t._version, t.dtype, t.device) for t in sources)
        if self._folded is None or self._folded[0] != key:
            self._folded = (key, tuple(t.detach() for t in sources),
                            self._fold(x.dtype, x.device))
        return self._folded[2]

    def _forward_folded(self, x: Tensor, return_attn: bool
                        ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """The deployed forward with folded weights (see the class doc).

        Every 1x1 conv is one batched GEMM on the (N, C, H*W) view; on the
        CPU this measured as fast as ``F.conv2d`` or faster.
        """
        logit_w, logit_b, hidden_w, hidden_b, attn_w = \
            self._folded_weights(x)
        n, d, h, w = x.shape
        tokens = x.flatten(2)  # (N, D, HW), a view for NCHW and NHWC

        def conv1x1(weight: Tensor, bias: Tensor, inp: Tensor) -> Tensor:
            return torch.baddbmm(bias[:, None].expand(n, -1, inp.size(2)),
                                 weight.expand(n, -1, -1), inp)

        attn = conv1x1(logit_w, logit_b, tokens).softmax(dim=1)  # (N, K, HW)
        # psi[0] and its ReLU: (W_x W) X + (W_x b + b_1) + (W_z C'^T) A
        hidden = conv1x1(hidden_w, hidden_b, tokens)
        hidden = hidden.baddbmm_(attn_w.expand(n, -1, -1), attn).relu_()
        conv2 = self.psi[2]
        out = conv1x1(conv2.weight.flatten(1), conv2.bias, hidden).relu_()
        out = out.add_(tokens)
        if self.out_relu:
            out = out.relu_()
        out = out.view(n, d, h, w)
        if return_attn:
            return out, attn.view(n, -1, h, w)
        return out

    def forward(self,
                x: Tensor,
                prototypes: Optional[Tensor] = None,
                return_attn: bool = False
                ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Augment a feature map with the prototypes.

        In eval mode with gradients disabled and ``prototypes=None`` this
        runs the folded deployed path (see the class docstring).

        Args:
            x (Tensor): Feature map of shape (N, D, H, W).
            prototypes (Tensor, optional): Prototypes of shape (K, D). If
                None, the ``prototypes`` buffer is used. Defaults to None.
            return_attn (bool): Also return the attention. Defaults to False.

        Returns:
            Tensor | tuple[Tensor, Tensor]: The augmented map of shape
            (N, D, H, W); with ``return_attn`` also the attention over the
            prototypes of shape (N, K, H, W), which sums to 1 over K.
        """
        if x.dim() != 4 or x.size(1) != self.in_channels:
            raise ValueError(f'{self.__class__.__name__}: x must have shape '
                             f'(N, in_channels={self.in_channels}, H, W), got '
                             f'{tuple(x.shape)}')
        use_buffer = prototypes is None
        if use_buffer:
            prototypes = self.prototypes
        self._check_prototypes(prototypes)
        if use_buffer and not self.training and not torch.is_grad_enabled():
            return self._forward_folded(x, return_attn)

        encoded = self.phi(x)  # X': (N, D, H, W)
        # phi as a linear layer on the prototypes: (D, D, 1, 1) -> (D, D)
        weight = self.phi.weight.flatten(1)
        encoded_protos = F.linear(
            prototypes.to(encoded.dtype), weight, self.phi.bias)  # C': (K, D)
        # similarity of every token to every prototype: (N, K, H, W)
        logits = torch.einsum('kd,ndhw->nkhw', encoded_protos, encoded)
        attn = (logits / self.temperature).softmax(dim=1)
        # Z = C'^T A: (N, D, H, W)
        mixed = torch.einsum('kd,nkhw->ndhw', encoded_protos, attn)
        # [X'; Z]: (N, 2D, H, W) -> (N, D, H, W)
        out = self.psi(torch.cat([encoded, mixed], dim=1)) + x
        if self.out_relu:
            out = torch.relu(out)
        if return_attn:
            return out, attn
        return out
