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

    Args:
        in_channels (int): Channels D of the input, equal to the prototype
            dimension.
        num_prototypes (int): Number of prototypes K. Defaults to 72.
        temperature (float): Softmax temperature of the attention; smaller
            is sharper. Defaults to 1.0.
        init_cfg (dict or list[dict], optional): Initialisation config.
            Defaults to None.
    """

    # name of the layer when built by mmcv's ``build_plugin_layer``
    _abbr_ = 'proto_aug'

    def __init__(self,
                 in_channels: int,
                 num_prototypes: int = 72,
                 temperature: float = 1.0,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = self.__class__.__name__
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

    def forward(self,
                x: Tensor,
                prototypes: Optional[Tensor] = None,
                return_attn: bool = False
                ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Augment a feature map with the prototypes.

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
        if prototypes is None:
            prototypes = self.prototypes
        self._check_prototypes(prototypes)

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
        out = torch.relu(self.psi(torch.cat([encoded, mixed], dim=1)) + x)
        if return_attn:
            return out, attn
        return out
