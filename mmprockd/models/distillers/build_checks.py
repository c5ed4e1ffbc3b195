"""Checks a :class:`ProtoDistiller` runs while it is built, so that a new
student/teacher pair fails before the first step, with the key and the fix
in the message.

- :func:`check_sub_configs`: every sub-config the distiller builds is
  complete (a ``type``), so a partial dict that replaced a recipe's block
  is named, with the merge that keeps the block;
- :func:`check_student_channels`: ``student_channels`` against the maps the
  student's levels give on a small zero image (one forward in eval mode,
  without gradients), necked or not;
- :func:`suggest_layers`: the names a wrong teacher layer may have meant;
- :func:`kl_refusal`: why a student takes no consistency KL, and what still
  trains without it.
"""
import difflib
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.logging import MMLogger
from torch import nn

# the distiller's arguments that are configs of one module to build
SUB_CONFIGS = ('student', 'teacher', 'learner', 'augment', 'kl_loss',
               'feat_loss', 'branch_feat_loss', 'branch_pseudo_loss',
               'assign_loss', 'box_loss')
# side lengths of the dry forward, smallest first: a student whose layers
# need more (SSD's 300 px VGG) gets the next one
DRY_SIZES = (64, 320)


def _short(cfg: dict) -> str:
    items = ', '.join(f'{k}={v!r}' for k, v in cfg.items())
    return f'dict({items})'


def check_sub_configs(args: Dict[str, object],
                      owner: str = 'ProtoDistiller') -> None:
    """Refuse a sub-config without ``type`` and one with a stray
    ``_delete_``.

    A config that writes ``dict(_base_.recipe, learner=dict(channels=128))``
    replaces the recipe's whole ``learner`` with a dict that cannot be
    built; mmengine's own error then names neither the key nor the fix.

    Args:
        args (dict): the distiller's arguments by name.
        owner (str): the distiller's name, for the message.

    Raises:
        ValueError: naming ``model.<key>`` and the merge to write instead.
    """
    for key in SUB_CONFIGS:
        cfg = args.get(key)
        if not isinstance(cfg, dict):
            continue
        if '_delete_' in cfg:
            raise ValueError(
                f"{owner}: model.{key} has a '_delete_' key left in "
                'it: it was merged into a config that had no such block, so '
                'mmengine did not consume it. Drop _delete_ from '
                f'model.{key} (or merge the block where the base defines '
                'it)')
        if 'type' not in cfg:
            raise ValueError(
                f'{owner}: model.{key}={_short(cfg)} has no '
                "'type': a dict given in place of a recipe's block replaces "
                'the block whole, it does not merge into it. Merge it into '
                f'the block: {key}=dict(_base_.<recipe>.{key}, ...) or '
                f'--cfg-options model.{key}.<name>=<value>')


def _dry_features(iface, size: int) -> List[torch.Tensor]:
    """The student's levels on a zero image, in eval mode, no gradients;
    the training mode is put back."""
    model = iface.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return list(iface.extract(torch.zeros(1, 3, size, size)))
    finally:
        model.train(was_training)


def check_student_channels(iface,
                           student_channels: Sequence[int],
                           owner: str = 'ProtoDistiller') -> None:
    """Compare ``student_channels`` with what the student's levels give.

    Detectors and segmentors: ``extract_feat`` (backbone, then neck when
    there is one); classifiers: the backbone's maps. A student whose
    forward fails on every size of :data:`DRY_SIZES` is logged and checked
    at its first step instead.

    Raises:
        ValueError: naming ``model.student_channels``, what the student
            gives and the value to set.
    """
    feats, errors = None, []
    for size in DRY_SIZES:
        try:
            feats = _dry_features(iface, size)
            break
        except Exception as err:  # too small for this student: next size
            errors.append(f'{size} px: {type(err).__name__}: {err}')
    if feats is None:
        MMLogger.get_current_instance().warning(
            f'{owner}: student_channels not checked at build (the '
            f'student did not run on a zero image: {"; ".join(errors)}); '
            'it is checked at the first step')
        return
    got = [int(f.shape[1]) for f in feats]
    given = list(student_channels)
    if given == got:
        return
    model = iface.model
    backbone = type(model.backbone).__name__
    if iface.family == 'cls':
        source = f'{backbone} backbone maps'
    elif getattr(model, 'neck', None) is not None:
        necks = model.neck if isinstance(model.neck,
                                         nn.Sequential) else [model.neck]
        source = f'{backbone} backbone, then ' + ', '.join(
            type(n).__name__ for n in necks)
    else:
        source = f'{backbone} backbone, no neck'
    raise ValueError(
        f'{owner}: model.student_channels={given}, but the feature '
        f'levels of the student {type(model).__name__} ({source}) have '
        f'{got} channels: set student_channels={got}')


def suggest_layers(name: str, names: Sequence[str], n: int = 5) -> str:
    """What a teacher layer name that does not exist may have meant.

    Returns:
        str: the closest ``named_modules`` names, and the backbone's blocks
        two levels deep (where the feature maps of a backbone come from).
    """
    names = [m for m in names if m]
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.4)
    # the same last part under another parent: 'stage3' -> 'stages.2'
    last = name.rsplit('.', 1)[-1]
    tails = difflib.get_close_matches(
        last, sorted({m.rsplit('.', 1)[-1]
                      for m in names}), n=n, cutoff=0.6)
    close += [
        m for m in names if m.rsplit('.', 1)[-1] in tails and m not in close
    ][:n]
    blocks = [m for m in names if m.count('.') <= 1]
    shown = blocks[:24]
    more = f' ... ({len(blocks) - len(shown)} more)' if len(blocks) > len(
        shown) else ''
    return (f'closest names: {close}; its modules two levels deep: '
            f'{shown}{more}')


def kl_refusal(reason: str, branch_head: str,
               branch_feat_loss: Optional[dict]) -> str:
    """Why ``kl_loss`` is refused, and what trains once it is off."""
    if branch_head == 'own':
        still = ("the prototype branch still learns the task with the "
                 "branch's own copy of the head (distill.proto.*)")
        if branch_feat_loss is not None:
            still += (', and the student learns from the branch through '
                      'branch_feat_loss (distill.loss_branch_feat)')
        else:
            still += (', but nothing of it reaches the student: add '
                      "branch_feat_loss=dict(type='mmprockd."
                      "BranchMimicLoss') for a feature path to it")
    else:
        still = ('the prototype branch still trains the learner, the '
                 "prototypes and the student's shared head on the "
                 "student's own task loss (distill.proto.*)")
    return (f'ProtoDistiller: no consistency KL for this student: {reason}. '
            f'Set kl_loss=None: {still}')
