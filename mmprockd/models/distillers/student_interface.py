"""How the distiller talks to a student of each OpenMMLab task family.

ProC-KD runs the student's own task head twice: on the student's features and
on the prototype-augmented teacher features. OpenMMLab models compute their
loss from inputs, not from features, so instead of re-implementing each
family's loss we run the student's own ``loss`` with its feature extractor
swapped for one that returns the given features
(:func:`substitute_features`), and we record the head's raw output on the way
(:func:`capture_forward`) for the consistency loss. The head runs once per
branch, and any detector, segmentor or classifier whose loss starts from
``extract_feat`` works without new code.

What differs per family is small and lives in :class:`StudentInterface`:
where the substituted features sit, which head gives the logits, and whether
they are sigmoid (dense detection) or softmax scores.
"""
import contextlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor


@contextlib.contextmanager
def patch_method(obj: Any, name: str, fn: Callable) -> Iterator[None]:
    """Shadow ``obj.name`` with ``fn`` on the instance, restored on exit."""
    had_own = name in obj.__dict__
    old = obj.__dict__.get(name)
    setattr(obj, name, fn)
    try:
        yield
    finally:
        if had_own:
            setattr(obj, name, old)
        else:
            delattr(obj, name)


@contextlib.contextmanager
def keep_norm_stats(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in train mode without changing its norm buffers.

    Batch-norm layers (``BatchNorm*d``, ``SyncBatchNorm``, instance norms
    with running stats) normalise with the statistics of the batch they see
    and, in train mode, fold them into ``running_mean`` / ``running_var`` and
    count the batch in ``num_batches_tracked``. Inside this context they still
    normalise with the batch statistics, but they update throw-away copies of
    their buffers; on exit the original tensors are put back, untouched.
    (Copying the old values back in place instead would break the backward
    pass: autograd saves the running buffers of a train-mode BN and checks
    their version.)
    """
    from torch.nn.modules.batchnorm import _NormBase
    saved = []
    for m in module.modules():
        if isinstance(m, _NormBase):
            for name, buf in m._buffers.items():
                if buf is not None:
                    saved.append((m, name, buf))
    for m, name, buf in saved:
        m._buffers[name] = buf.clone()
    try:
        yield
    finally:
        for m, name, buf in saved:
            m._buffers[name] = buf


class _Recorder:
    """Holds the output of the last call of a captured module."""

    def __init__(self) -> None:
        self.output: Any = None


@contextlib.contextmanager
def capture_forward(module: nn.Module) -> Iterator[_Recorder]:
    """Record what ``module.forward`` returns, however it is called.

    mmseg heads call ``self.forward`` directly (no ``__call__``, so forward
    hooks would miss it); shadowing ``forward`` on the instance catches both.
    """
    rec = _Recorder()
    original = module.forward

    def forward(*args, **kwargs):
        rec.output = original(*args, **kwargs)
        return rec.output

    with patch_method(module, 'forward', forward):
        yield rec


# the label of an image without one (a transfer-set image, [ours])
UNLABELLED = -1


def _is_query_detector(model: nn.Module, head: nn.Module) -> bool:
    """DETR family (``DetectionTransformer``: DETR, Deformable DETR,
    Conditional/DAB-DETR, DINO) and learned-proposal detectors (Sparse
    R-CNN, QueryInst: ``EmbeddingRPNHead``)."""
    from mmdet.models.dense_heads import DETRHead, EmbeddingRPNHead
    from mmdet.models.detectors import DetectionTransformer
    return isinstance(model, DetectionTransformer) or isinstance(
        head, (DETRHead, EmbeddingRPNHead))


def query_semantic_logits(cls_scores: Tensor,
                          mask_preds: Tensor,
                          eps: float = 1e-6) -> Tensor:
    """The per-pixel class scores of a MaskFormer-style head, as logits.

    ``cls_scores`` ``(N, Q, C + 1)`` (the last class is "no object") and
    ``mask_preds`` ``(N, Q, H, W)`` of the last decoder layer give the
    semantic map MaskFormer's inference computes, ``s[c, p] = sum_q
    softmax(cls_q)[c] * sigmoid(mask_q[p])``, which does not depend on the
    order of the queries (unlike the raw per-query outputs, whose order is
    arbitrary). Returns ``log(s + eps)``, ``(N, C, H, W)``: a softmax over
    axis 1 gives ``s`` normalised per pixel, so the softmax consistency KL
    compares the two runs' class distributions pixel by pixel.
    """
    probs = cls_scores.softmax(-1)[..., :-1]
    sem = torch.einsum('nqc,nqhw->nchw', probs, mask_preds.sigmoid())
    return torch.log(sem + eps)


class StudentInterface:
    """Task-family glue between :class:`ProtoDistiller` and a student.

    Args:
        model (nn.Module): the student (mmdet detector, mmseg segmentor or
            mmpretrain classifier).
        family (str): ``'det'``, ``'seg'`` or ``'cls'``.
    """

    def __init__(self, model: nn.Module, family: str) -> None:
        self.model = model
        self.family = family
        # anchors per location: one int, or one per level (SSD)
        self.num_anchors: Optional[Union[int, List[int]]] = None
        # MaskFormer-style segmentation heads: per-query classes and masks
        self.query_masks = False
        # why the consistency KL cannot be computed for this head (None:
        # it can); the distiller refuses ``kl_loss`` at build with it
        self.kl_unsupported: Optional[str] = None
        self.logit_head, self.kl_kind = self._find_logit_head()
        # a dense detection head's box deltas from the last :meth:`loss`
        # or :meth:`head_outputs`, one (N, A * 4, H, W) map per level
        # ([ours] box distillation); empty for other heads
        self.last_boxes: List[Tensor] = []

    @classmethod
    def from_model(cls, model: nn.Module) -> 'StudentInterface':
        """Pick the family from the student's base class."""
        from mmdet.models.detectors import BaseDetector
        from mmseg.models.segmentors import BaseSegmentor
        if isinstance(model, BaseDetector):
            return cls(model, 'det')
        if isinstance(model, BaseSegmentor):
            return cls(model, 'seg')
        from mmpretrain.models.classifiers import ImageClassifier
        if isinstance(model, ImageClassifier):
            return cls(model, 'cls')
        raise TypeError(
            'ProtoDistiller: the student must be an mmdet detector, an mmseg '
            f'segmentor or an mmpretrain ImageClassifier, got '
            f'{type(model).__name__}')

    def _find_logit_head(self) -> Tuple[nn.Module, str]:
        m = self.model
        if self.family == 'det':
            head = getattr(m, 'bbox_head', None) or getattr(m, 'rpn_head')
            if _is_query_detector(m, head):
                # each run matches its queries to the boxes on its own (and
                # two-stage DETRs pick their queries as top-k proposals), so
                # query i of one run is not query i of the other
                self.kl_unsupported = (
                    f'{type(m).__name__} with {type(head).__name__} is a '
                    'query-based detector: the two runs match their queries '
                    'to the objects independently, so pairing query i of '
                    'the student run with query i of the prototype run '
                    'compares unrelated predictions')
                return head, 'softmax'
            sigmoid = getattr(head, 'use_sigmoid_cls', True)
            if not sigmoid:
                # (N, A * (C + 1), H, W): the KL needs the anchors apart
                self.num_anchors = getattr(head, 'num_base_priors', None)
                if self.num_anchors is None or \
                        not hasattr(head, 'cls_out_channels'):
                    raise ValueError(
                        'ProtoDistiller: the softmax detection head '
                        f'{type(head).__name__} does not say how many '
                        'anchors share a location (num_base_priors, '
                        'cls_out_channels), so the consistency KL cannot '
                        'take its softmax over the classes of each anchor; '
                        'set kl_loss=None (the prototype branch still '
                        'trains)')
            return head, 'sigmoid' if sigmoid else 'softmax'
        if self.family == 'seg':
            from mmdet.models.dense_heads import MaskFormerHead
            head = m.decode_head
            if isinstance(head, nn.ModuleList):
                # CascadeEncoderDecoder (OCRNet): each head refines the
                # previous one's output; the last one gives the prediction
                head = head[-1]
            self.query_masks = isinstance(head, MaskFormerHead)
            return head, 'softmax'
        return m.head, 'softmax'

    def logit_levels(self, n_levels: int) -> List[int]:
        """The feature levels the consistency KL's logits depend on.

        A segmentor's decode head reads the levels of its ``in_index``
        (mmseg's ``BaseDecodeHead``); any other head, or one without
        ``in_index``, is taken to read all ``n_levels``.
        """
        index = getattr(self.logit_head, 'in_index', None)
        if self.family != 'seg' or index is None:
            return list(range(n_levels))
        index = index if isinstance(index, (list, tuple)) else [index]
        return sorted({i % n_levels for i in index})

    def extract(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """The student's features that the prototype branch replaces.

        Detection and segmentation: ``extract_feat`` (backbone and neck).
        Classification: the backbone's maps, before the neck's pooling.
        """
        if self.family == 'cls':
            return tuple(self.model.backbone(inputs))
        return tuple(self.model.extract_feat(inputs))

    def _features_fn(self, feats: Tuple[Tensor, ...]) -> Callable:
        if self.family != 'cls':
            return lambda *args, **kwargs: feats
        model = self.model

        def extract_feat(inputs, stage='neck'):
            return model.neck(feats) if model.with_neck else feats

        return extract_feat

    def loss(self,
             inputs: Tensor,
             feats: Tuple[Tensor, ...],
             data_samples: List,
             param_grad: bool = True,
             update_stats: bool = True
             ) -> Tuple[Dict[str, Tensor], List[Tensor]]:
        """The student's own task loss computed on ``feats``.

        Args:
            param_grad (bool): False runs the student's heads with detached
                copies of their parameters (``torch.func.functional_call``):
                the loss then trains only what produced ``feats``.
            update_stats (bool): False leaves the running statistics of the
                student's norm layers as they were (:func:`keep_norm_stats`):
                a second pass on other features (the prototype branch) must
                not leak its statistics into the deployed student.

        Returns:
            tuple: the loss dict and the logits of the head that feeds the
            consistency loss, as a list of tensors (one per level for dense
            detection heads; one ``(N, C, H, W)`` or ``(N, C)`` tensor
            otherwise).
        """
        unlabelled = self.unlabelled(data_samples)
        if unlabelled:
            return self._loss_partly_labelled(inputs, feats, data_samples,
                                              unlabelled, param_grad,
                                              update_stats)
        keep = contextlib.nullcontext() if update_stats else \
            keep_norm_stats(self.model)
        with patch_method(self.model, 'extract_feat',
                          self._features_fn(feats)), \
                capture_forward(self.logit_head) as rec, keep:
            if param_grad:
                losses = self.model.loss(inputs, data_samples)
            else:
                detached = {
                    n: p.detach()
                    for n, p in self.model.named_parameters()
                }
                losses = torch.func.functional_call(self.model, detached,
                                                    (inputs, data_samples),
                                                    dict(mode='loss'))
        self.last_boxes = self._boxes(rec.output)
        return losses, self._logits(rec.output)

    def head_outputs(self, feats: Tuple[Tensor, ...]) -> List[Tensor]:
        """The logits of the head on ``feats``, with the head's parameters
        detached and its norm buffers kept: gradients reach ``feats`` and
        nothing else (the student's maps through a frozen branch's head,
        [ours] ``kd_head='branch'``). Detection and segmentation heads;
        the box deltas go to :attr:`last_boxes`."""
        if self.family == 'cls':
            raise ValueError('head_outputs: a classifier student has no '
                             'dense head to run on maps')
        head = self.logit_head
        detached = {n: p.detach() for n, p in head.named_parameters()}
        with keep_norm_stats(head):
            out = torch.func.functional_call(head, detached, (feats, ))
        self.last_boxes = self._boxes(out)
        return self._logits(out)

    def _boxes(self, output: Any) -> List[Tensor]:
        """A dense detection head's box deltas, per level."""
        if self.family != 'det' or self.kl_unsupported or \
                not isinstance(output, (tuple, list)) or len(output) < 2:
            return []
        return list(output[1])

    def unlabelled(self, data_samples: Optional[List]) -> List[int]:
        """The images of the batch that have no label (classification).

        An image whose ``gt_label`` holds :data:`UNLABELLED` (-1, the
        annotation line ``path -1`` of mmpretrain's ``CustomDataset``) is
        an unlabelled image of a transfer set [ours]: the distillation
        terms use it, the task loss does not. Detection and segmentation
        samples always count as labelled.
        """
        if self.family != 'cls' or not data_samples:
            return []
        return [
            i for i, s in enumerate(data_samples)
            if 'gt_label' in s and bool((s.gt_label == UNLABELLED).any())
        ]

    def _loss_partly_labelled(self, inputs: Tensor, feats: Tuple[Tensor, ...],
                              data_samples: List, unlabelled: List[int],
                              param_grad: bool, update_stats: bool
                              ) -> Tuple[Dict[str, Tensor], List[Tensor]]:
        """:meth:`loss` for a classification batch with unlabelled images:
        the task loss of the labelled ones (``{}`` when there are none),
        the logits of all, in the batch's order.

        The unlabelled images go through the neck and the head in a second
        pass that leaves the norm buffers as they are, so a head with
        batch norm counts one step per batch and keeps the labelled
        images' statistics.
        """
        n = inputs.shape[0]
        gone = set(unlabelled)
        labelled = [i for i in range(n) if i not in gone]
        dev = inputs.device
        parts, losses = [], {}
        if labelled:
            idx = torch.tensor(labelled, device=dev)
            losses, lab_logits = self.loss(inputs[idx],
                                           tuple(f[idx] for f in feats),
                                           [data_samples[i] for i in labelled],
                                           param_grad, update_stats)
            parts.append(lab_logits[0])
        idx = torch.tensor(unlabelled, device=dev)
        parts.append(
            self._head_logits(tuple(f[idx] for f in feats), param_grad))
        # back to the batch's order
        order = torch.tensor(labelled + unlabelled, device=dev).argsort()
        return losses, [torch.cat(parts)[order]]

    def _head_logits(self, feats: Tuple[Tensor, ...],
                     param_grad: bool) -> Tensor:
        """The classifier's neck and head on ``feats``, norm buffers kept;
        ``param_grad=False`` runs them with detached parameters."""
        model = self.model
        # only the neck and the head run here: keep their buffers alone
        neck = model.neck if model.with_neck else nn.Identity()
        with keep_norm_stats(neck), keep_norm_stats(self.logit_head):
            if param_grad:
                head_in = model.neck(feats) if model.with_neck else feats
                out = self.logit_head(head_in)
            else:

                def call(module, *args):
                    detached = {
                        n: p.detach()
                        for n, p in module.named_parameters()
                    }
                    return torch.func.functional_call(module, detached, args)

                head_in = call(model.neck, feats) if model.with_neck \
                    else feats
                out = call(self.logit_head, head_in)
        return self._logits(out)[0]

    def forward_logits(self, inputs: Tensor) -> List[Tensor]:
        """The logits of the model's own features, without a loss (a
        frozen model's predictions, :class:`LogitKDDistiller`), in the
        layout :meth:`loss` returns them."""
        return self.forward_feats_and_logits(inputs)[1]

    def forward_feats_and_logits(self, inputs: Tensor
                                 ) -> Tuple[Tuple[Tensor, ...], List[Tensor]]:
        """:meth:`extract`'s features and :meth:`forward_logits`'s logits
        from one pass."""
        feats = self.extract(inputs)
        head_in = feats
        if self.family == 'cls' and self.model.with_neck:
            head_in = self.model.neck(feats)
        return feats, self._logits(self.logit_head(head_in))

    def _logits(self, output: Any) -> List[Tensor]:
        if self.kl_unsupported:  # no consistency term for this head
            return []
        if output is None:
            raise RuntimeError(
                f'ProtoDistiller: the {type(self.logit_head).__name__} head '
                'did not run during the loss; cannot compute consistency')
        if self.family == 'det':
            if self.kl_kind == 'sigmoid':
                return list(output[0])
            # (N, A * (C + 1), H, W) -> (N, C + 1, A, H, W): each anchor's
            # classes on axis 1, where the softmax KL takes its softmax
            classes = self.logit_head.cls_out_channels
            out = []
            for level, lg in enumerate(output[0]):
                # one count for all levels, or one per level (SSD)
                anchors = self.num_anchors[level] if isinstance(
                    self.num_anchors, (list, tuple)) else self.num_anchors
                n, ch, h, w = lg.shape
                if ch != anchors * classes:
                    raise RuntimeError(
                        f'ProtoDistiller: {type(self.logit_head).__name__} '
                        f'gave {ch} score channels at level {level}, '
                        'expected num_base_priors x cls_out_channels = '
                        f'{anchors} x {classes}')
                out.append(lg.view(n, anchors, classes, h, w).transpose(1, 2))
            return out
        if self.query_masks:
            return [query_semantic_logits(output[0][-1], output[1][-1])]
        if isinstance(output, (tuple, list)):  # heads returning extras
            output = output[0]
        return [output]

    def ignore_masks(self, data_samples: List,
                     logits: List[Tensor]) -> Optional[List[Tensor]]:
        """Per-pixel ``valid`` masks at the logits' size (segmentation)."""
        if self.family != 'seg':
            return None
        import torch
        import torch.nn.functional as F
        ignore = self.logit_head.ignore_index
        gt = torch.stack([s.gt_sem_seg.data for s in data_samples])
        out = []
        for lg in logits:
            # (N, 1, H, W) labels -> nearest to (N, 1, h, w)
            small = F.interpolate(
                gt.float(), size=lg.shape[-2:], mode='nearest')
            out.append((small[:, 0] != ignore))
        return out
