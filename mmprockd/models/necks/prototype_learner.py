"""Prototype learning from frozen teacher features (ProC-KD, METHOD 2.1).

The learner fuses several teacher feature maps onto the grid of each output
level, softly assigns every token to a bank of learnable prototypes,
aggregates the residuals to the prototypes into one global descriptor per
image (NetVLAD style) and mixes that descriptor back into every token. Its
prototypes are the part-level knowledge that ProC-KD transfers; the
``TaskAdaptiveAugment`` plugin reads them through :meth:`get_prototypes`.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmprockd.registry import MODELS

OptMultiConfig = Optional[Union[dict, List[dict]]]


@MODELS.register_module()
class PrototypeLearner(BaseModule):
    """Learn a bank of K prototypes of dimension D from teacher features.

    For every output level ``l``:

    1. every teacher map is resized to ``out_sizes[l]`` (bilinear),
       the maps are concatenated on channels and a 1x1 conv + ReLU (one per
       level) projects them to ``channels``: ``F_t`` of shape (N, D, H, W)
       (computed map by map in the cheaper order, see :meth:`_fuse`);
    2. each token of ``F_t`` is L2-normalised: ``f^_n``;
    3. a 1x1 conv D->K followed by a softmax over K gives the soft
       assignment ``a_kn``;
    4. ``V_k = sum_n a_kn (f^_n - c_k)``; each ``V_k`` is L2-normalised,
       the K x D matrix is flattened and L2-normalised again;
    5. ``g = Linear(K*D -> D)(V)``, one vector per image;
    6. ``g`` is broadcast over the grid and concatenated **before** ``F_t``
       (channels ``[g; F_t]``), then 1x1 conv 2D->D, ReLU, 1x1 conv D->D,
       ReLU give ``F_v`` of shape (N, D, H, W).

    The prototypes are initialised as random unit-norm rows (a normal draw
    normalised over D), so that they lie on the same sphere as the
    normalised tokens they are compared with. Convolutions and the linear
    layer keep PyTorch's default init unless ``init_cfg`` says otherwise.

    Args:
        in_channels (Sequence[int]): Channels of each teacher feature map.
        channels (int): Prototype and output dimension D. Defaults to 256.
        num_prototypes (int): Number of prototypes K. Defaults to 72.
        num_levels (int): Number of output levels (one grid each).
            Defaults to 1.
        share_prototypes (bool): If True, the prototypes, the assignment
            conv, the descriptor linear layer and the output convs are shared
            by all levels; otherwise each level has its own. The fusion conv
            is always per level. Defaults to True.
        align_corners (bool): ``align_corners`` of the bilinear resize.
            Defaults to False.
        input_norm (bool): [ours] standardise every teacher map per channel
            (``BatchNorm2d`` without affine) before the fusion, so that no
            layer dominates by its scale (MobileNetV2's layer3 is ~8x
            layer7). Defaults to False (the authors' fusion).
        downsample (str): how a teacher map larger than the output grid is
            brought to it: ``'bilinear'`` (the default, as upsampling) or
            ``'area'`` [ours]: the mean over each output cell's input
            pixels (``adaptive_avg_pool2d``). A bilinear 4x downsample (an
            8x8 layer to a 2x2 level) reads only 4 of every 16 pixels.
        fusion_convs (int): [ours] number of 3x3 conv + BN + ReLU blocks
            after the fusion (one stack per level), which give the branch
            the spatial context of an FPN's output convs; the authors' fusion
            is 1x1 only. Defaults to 0.
        fusion (str): how ``F_t`` is made from the teacher maps.
            ``'concat'`` (the authors'): steps 1 above, every map resized
            to every level. ``'fpn'`` [ours]: an FPN over the teacher maps
            (ordered from the finest to the coarsest): a 1x1 lateral conv
            per map, the top-down sum (nearest upsampling) and a 3x3 output
            conv per level; output level ``l`` reads the ``l``-th merged
            map (resized when the grids differ), and levels beyond the
            teacher's maps are stride-2 3x3 convs on the previous level's
            output, as mmdet's FPN builds P6/P7. It is the fusion of the
            probe that shows what the frozen teacher knows
            (docs/benchmark.md). Defaults to ``'concat'``.
        residual (bool): [ours] ``F_v = F_t + out_convs([g; F_t])``: the
            prototype summary is added to the fused teacher features
            instead of replacing them, so the branch starts from what the
            teacher's maps say (signed, as an FPN's output) and the
            prototypes only add to it. Defaults to False (the authors').
        assign_init (str): how the assignment conv of step 3 starts.
            ``'default'`` (the authors'): PyTorch's default init; on
            unit-norm tokens its logits are tiny, so every position starts
            (and, on our proxies, stays: docs/benchmark.md) spread almost
            evenly over all K prototypes. ``'prototypes'`` [ours]: NetVLAD's
            init (Arandjelovic et al., 2016), ``w_k = 2 alpha c_k``,
            ``b_k = -alpha |c_k|^2``, so the logits are ``-alpha |f^ -
            c_k|^2`` up to a constant per position and a token goes to its
            nearest prototypes; the conv trains freely from there. Applied
            at construction and again in :meth:`init_weights`. Defaults to
            ``'default'``.
        assign_alpha (float): ``alpha`` of ``assign_init='prototypes'``.
            Defaults to 10.
        init_cfg (dict or list[dict], optional): Initialisation config.
            Defaults to None.

    Example:
        >>> import torch
        >>> learner = PrototypeLearner(
        ...     in_channels=[8, 16], channels=4, num_prototypes=6,
        ...     num_levels=2)
        >>> feats = [torch.rand(2, 8, 16, 16), torch.rand(2, 16, 8, 8)]
        >>> outs = learner(feats, out_sizes=[(16, 16), (8, 8)])
        >>> for out in outs:
        ...     print(tuple(out.shape))
        (2, 4, 16, 16)
        (2, 4, 8, 8)
        >>> print(tuple(learner.get_prototypes(0).shape))
        (6, 4)
    """

    eps: float = 1e-12

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int = 256,
                 num_prototypes: int = 72,
                 num_levels: int = 1,
                 share_prototypes: bool = True,
                 align_corners: bool = False,
                 input_norm: bool = False,
                 downsample: str = 'bilinear',
                 fusion_convs: int = 0,
                 fusion: str = 'concat',
                 residual: bool = False,
                 assign_init: str = 'default',
                 assign_alpha: float = 10.0,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = self.__class__.__name__
        if len(in_channels) == 0 or min(in_channels) <= 0:
            raise ValueError(f'{name}: in_channels must be a non-empty list '
                             f'of positive ints, got {in_channels}')
        positive = dict(
            channels=channels,
            num_prototypes=num_prototypes,
            num_levels=num_levels)
        if downsample not in ('bilinear', 'area'):
            raise ValueError(f"{name}: downsample must be 'bilinear' or "
                             f"'area', got {downsample!r}")
        self.downsample = downsample
        if fusion not in ('concat', 'fpn'):
            raise ValueError(f"{name}: fusion must be 'concat' or 'fpn', "
                             f'got {fusion!r}')
        self.fusion = fusion
        self.residual = residual
        if assign_init not in ('default', 'prototypes'):
            raise ValueError(f"{name}: assign_init must be 'default' or "
                             f"'prototypes', got {assign_init!r}")
        if assign_alpha <= 0:
            raise ValueError(f'{name}: assign_alpha must be positive, '
                             f'got {assign_alpha}')
        self.assign_init = assign_init
        self.assign_alpha = float(assign_alpha)
        if fusion_convs < 0:
            raise ValueError(f'{name}: fusion_convs must be >= 0, '
                             f'got {fusion_convs}')
        for key, value in positive.items():
            if value <= 0:
                raise ValueError(f'{name}: {key} must be positive, '
                                 f'got {value}')
        self.in_channels = list(in_channels)
        self.channels = channels
        self.num_prototypes = num_prototypes
        self.num_levels = num_levels
        self.share_prototypes = share_prototypes
        self.align_corners = align_corners

        num_banks = 1 if share_prototypes else num_levels
        # (P, K, D) random unit-norm rows, see the class docstring
        self.prototypes = nn.Parameter(
            F.normalize(
                torch.randn(num_banks, num_prototypes, channels), dim=-1))

        self.input_norms = nn.ModuleList(
            nn.BatchNorm2d(c, affine=False)
            for c in self.in_channels) if input_norm else None
        self.context = nn.ModuleList([
            nn.Sequential(*[
                m for _ in range(fusion_convs) for m in (
                    nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                    nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            ]) for _ in range(num_levels)
        ]) if fusion_convs else None
        fused_channels = sum(self.in_channels)
        if fusion == 'concat':
            self.fusions = nn.ModuleList([
                nn.Sequential(
                    nn.Conv2d(fused_channels, channels, 1),
                    nn.ReLU(inplace=True)) for _ in range(num_levels)
            ])
        else:
            self.laterals = nn.ModuleList(
                nn.Conv2d(c, channels, 1) for c in self.in_channels)
            self.fpn_convs = nn.ModuleList(
                nn.Conv2d(channels, channels, 3, padding=1)
                for _ in range(num_levels))
            self.extra_convs = nn.ModuleList(
                nn.Conv2d(channels, channels, 3, stride=2, padding=1)
                for _ in range(max(0, num_levels - len(self.in_channels))))
        self.assigners = nn.ModuleList(
            [nn.Conv2d(channels, num_prototypes, 1) for _ in range(num_banks)])
        self.descriptors = nn.ModuleList([
            nn.Linear(num_prototypes * channels, channels)
            for _ in range(num_banks)
        ])
        self.out_convs = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(2 * channels, channels, 1), nn.ReLU(inplace=True),
                nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True))
            for _ in range(num_banks)
        ])

        if assign_init == 'prototypes':
            self._init_assigners_from_prototypes()

    def _init_assigners_from_prototypes(self) -> None:
        """NetVLAD's init of the assignment conv from the prototypes."""
        with torch.no_grad():
            for bank, conv in enumerate(self.assigners):
                protos = self.prototypes[bank]  # (K, D)
                conv.weight.copy_(2 * self.assign_alpha *
                                  protos[:, :, None, None])
                conv.bias.copy_(-self.assign_alpha * protos.pow(2).sum(1))

    def init_weights(self) -> None:
        """``init_cfg`` first, then ``assign_init`` (which must win)."""
        super().init_weights()
        if self.assign_init == 'prototypes':
            self._init_assigners_from_prototypes()

    def _bank(self, level: int) -> int:
        """Index of the prototype bank (and shared layers) of a level."""
        if not 0 <= level < self.num_levels:
            raise ValueError(f'{self.__class__.__name__}: level must be in '
                             f'[0, {self.num_levels}), got {level}')
        return 0 if self.share_prototypes else level

    def get_prototypes(self, level: int = 0) -> Tensor:
        """Return the prototypes used at one output level.

        Args:
            level (int): Output level. Defaults to 0.

        Returns:
            Tensor: Prototypes of shape (K, D), still attached to the graph.
        """
        return self.prototypes[self._bank(level)]

    def assign_log_probs(self, tokens: Tensor, level: int = 0) -> Tensor:
        """[ours] The log soft assignment of other tokens over a level's
        prototypes: steps 2-3 above (L2 norm over D, the assignment conv, a
        log-softmax over K), with no gradient into the assignment conv, so
        that what learns to be assigned like the teacher's tokens is
        whatever made ``tokens`` (:class:`PrototypeAssignLoss`).

        Args:
            tokens (Tensor): (N, D, H, W), D = ``channels``.
            level (int): Output level whose prototype bank assigns them.

        Returns:
            Tensor: (N, K, H, W) log-probabilities over the K prototypes.
        """
        if tokens.dim() != 4 or tokens.size(1) != self.channels:
            raise ValueError(
                f'{self.__class__.__name__}: assign_log_probs expects '
                f'tokens of shape (N, {self.channels}, H, W), got '
                f'{tuple(tokens.shape)}')
        conv = self.assigners[self._bank(level)]
        tokens = F.normalize(tokens, dim=1, eps=self.eps)
        return F.conv2d(tokens, conv.weight.detach(),
                        conv.bias.detach()).log_softmax(dim=1)

    def _check_inputs(self, feats: Sequence[Tensor],
                      out_sizes: Sequence[Tuple[int, int]]) -> None:
        name = self.__class__.__name__
        if len(feats) != len(self.in_channels):
            raise ValueError(
                f'{name}: expected {len(self.in_channels)} feature maps '
                f'(len(in_channels)), got {len(feats)}')
        for i, (feat, expected) in enumerate(zip(feats, self.in_channels)):
            if feat.dim() != 4 or feat.size(1) != expected:
                raise ValueError(
                    f'{name}: feats[{i}] must have shape (N, {expected}, H, '
                    f'W), got {tuple(feat.shape)} ({feat.size(1)} channels '
                    f'instead of {expected})')
        if len(out_sizes) != self.num_levels:
            raise ValueError(
                f'{name}: expected {self.num_levels} out_sizes (num_levels), '
                f'got {len(out_sizes)}')

    def _resize(self, feat: Tensor, size: Tuple[int, int]) -> Tensor:
        """Bilinear resize to ``size``; a map of that size is returned as
        is."""
        if tuple(feat.shape[-2:]) == size:
            return feat
        h, w = feat.shape[-2:]
        if self.downsample == 'area' and h >= size[0] and w >= size[1]:
            return F.adaptive_avg_pool2d(feat, size)
        return F.interpolate(
            feat, size=size, mode='bilinear', align_corners=self.align_corners)

    def _fuse(self, feats: Sequence[Tensor], size: Tuple[int, int],
              level: int) -> Tensor:
        """Project the teacher maps onto the grid ``size``: F_t.

        Computes ``ReLU(conv(cat_i resize(f_i)))`` with the 1x1 conv
        ``fusions[level][0]`` (weight ``W``, bias ``b``) without building the
        (N, sum C_i, H, W) concatenation. Splitting ``W`` on its input
        channels into the blocks ``W_i`` of each map gives
        ``conv(cat_i resize(f_i)) = sum_i W_i resize(f_i) + b``. ``W_i`` mixes
        channels only and the resize (bilinear without antialias, either
        ``align_corners``, or the area mean) mixes pixels only, with the same
        weights for every channel, so the two commute:
        ``W_i resize(f_i) = resize(W_i f_i)``. Each map therefore takes the
        cheaper order:

        - more pixels than ``size``: resize its C_i channels, then apply
          ``W_i`` on the output grid;
        - at most as many pixels: apply ``W_i`` at its own resolution, then
          resize the D-channel result;
        - already of size ``size``: apply ``W_i``, no resize.

        ``b`` is added once, to the sum: inside the first projection computed
        on the output grid, or at the end if there is none (adding it before
        a resize would also be exact, the bilinear weights of each output
        pixel summing to 1, but costs more). Only the order of floating point
        operations differs from the concatenated form. The outputs follow the
        dtype of the convolutions (the inputs', or autocast's).
        """
        conv, act = self.fusions[level][0], self.fusions[level][1]
        # views of the weight, W_i = weight[:, start_i:end_i]
        weights = conv.weight.split(self.in_channels, dim=1)
        bias = conv.bias
        num_pixels = size[0] * size[1]
        fused = None
        for feat, weight in zip(feats, weights):
            h, w = feat.shape[-2:]
            if (h, w) == size or h * w > num_pixels:
                # (N, C_i, H, W) -> (N, D, H, W), with the bias if not yet
                term = F.conv2d(self._resize(feat, size), weight, bias)
                bias = None
            else:
                # (N, C_i, h, w) -> (N, D, h, w) -> (N, D, H, W)
                term = self._resize(F.conv2d(feat, weight), size)
            # every term is a fresh tensor whose backward does not need it
            fused = term if fused is None else fused.add_(term)
        if bias is not None:
            fused = fused.add_(bias.to(fused.dtype).view(1, -1, 1, 1))
        return act(fused)

    def _fpn(self, feats: Sequence[Tensor],
             sizes: Sequence[Tuple[int, int]]) -> List[Tensor]:
        """``F_t`` of every level by the FPN fusion (``fusion='fpn'``)."""
        merged = [lat(f) for lat, f in zip(self.laterals, feats)]
        for i in range(len(merged) - 2, -1, -1):  # top-down
            merged[i] = merged[i] + F.interpolate(
                merged[i + 1], size=merged[i].shape[-2:], mode='nearest')
        outs: List[Tensor] = []
        for level, size in enumerate(sizes):
            if level < len(merged):
                out = self.fpn_convs[level](self._resize(merged[level], size))
            else:  # P6/P7-style: a stride-2 conv on the previous level
                out = self.extra_convs[level - len(merged)](outs[-1])
                out = self.fpn_convs[level](self._resize(out, size))
            outs.append(out)
        return outs

    def _forward_level(self, fused: Tensor,
                       level: int) -> Tuple[Tensor, Tensor]:
        bank = self._bank(level)
        prototypes = self.prototypes[bank]  # (K, D)
        if self.context is not None:
            fused = self.context[level](fused)  # (N, D, H, W)
        n, d, h, w = fused.shape
        tokens = F.normalize(fused, dim=1, eps=self.eps)  # f^: (N, D, H, W)
        # soft assignment over the K prototypes: (N, K, H, W)
        assign = self.assigners[bank](tokens).softmax(dim=1)
        assign_flat = assign.flatten(2)  # (N, K, HW)
        tokens_flat = tokens.flatten(2)  # (N, D, HW)
        # V_k = sum_n a_kn f^_n - (sum_n a_kn) c_k: (N, K, D)
        residuals = torch.einsum('nkt,ndt->nkd', assign_flat, tokens_flat)
        residuals = residuals - assign_flat.sum(dim=2).unsqueeze(-1) \
            * prototypes.unsqueeze(0)
        residuals = F.normalize(residuals, dim=2, eps=self.eps)
        # (N, K, D) -> (N, K*D)
        vlad = F.normalize(residuals.flatten(1), dim=1, eps=self.eps)
        descriptor = self.descriptors[bank](vlad)  # g: (N, D)
        # (N, D) -> (N, D, H, W)
        descriptor = descriptor[:, :, None, None].expand(n, d, h, w)
        # [g; F_t]: (N, 2D, H, W) -> F_v: (N, D, H, W)
        out = self.out_convs[bank](torch.cat([descriptor, fused], dim=1))
        if self.residual:  # [ours] F_v = F_t + out_convs([g; F_t])
            out = out + fused
        return out, assign

    def forward(
        self,
        feats: Sequence[Tensor],
        out_sizes: Sequence[Tuple[int, int]],
        return_assign: bool = False
    ) -> Union[List[Tensor], Tuple[List[Tensor], List[Tensor]]]:
        """Fuse teacher features and augment them with the prototypes.

        Args:
            feats (Sequence[Tensor]): Teacher feature maps, the i-th of shape
                (N, in_channels[i], H_i, W_i).
            out_sizes (Sequence[tuple[int, int]]): Output grid (H_l, W_l) of
                each level, ``num_levels`` of them.
            return_assign (bool): Also return the soft assignments.
                Defaults to False.

        Returns:
            list[Tensor] | tuple[list[Tensor], list[Tensor]]: ``F_v`` of each
            level, of shape (N, D, H_l, W_l); with ``return_assign`` also the
            assignment maps of shape (N, K, H_l, W_l), which sum to 1 over K.
        """
        self._check_inputs(feats, out_sizes)
        if self.input_norms is not None:
            feats = [norm(f) for norm, f in zip(self.input_norms, feats)]
        sizes = [(int(h), int(w)) for h, w in out_sizes]
        if self.fusion == 'fpn':
            fused = self._fpn(feats, sizes)
        else:  # F_t: (N, D, H, W) per level
            fused = [
                self._fuse(feats, size, level)
                for level, size in enumerate(sizes)
            ]
        outs, assigns = [], []
        for level, f_t in enumerate(fused):
            out, assign = self._forward_level(f_t, level)
            outs.append(out)
            assigns.append(assign)
        if return_assign:
            return outs, assigns
        return outs
