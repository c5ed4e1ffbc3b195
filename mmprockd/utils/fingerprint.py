"""A fingerprint of a config's model: what ``--resume`` compares.

Resuming restores the weights, the optimizer state and the message hub of
the checkpoint into the model the *current* config builds. When the two
configs' models differ (another ``num_prototypes``, another student) the
resume fails late and obscurely (an optimizer shape error after "resumed
epoch 4") or, worse, silently continues another experiment.
:class:`mmprockd.ConfigFingerprintHook` writes :func:`model_fingerprint`
into every checkpoint's ``meta``; ``tools/train.py`` compares it before it
builds anything and names the keys that differ (:func:`model_cfg_diff`).

Keys that name where weights come from (``ckpt``, ``student_ckpt``,
``init_cfg``, ``pretrained``) are left out: a moved teacher file is the
same model, and a resumed run loads its weights from the checkpoint anyway.
So is ``test_cfg`` (a score threshold, NMS settings): only testing and
validation read it, never a training step.
"""
import hashlib
import json
from typing import Any, Dict, List, Optional, Tuple

from mmengine.config import Config, ConfigDict

FINGERPRINT_KEY = 'model_fingerprint'
PATH_KEYS = frozenset({'ckpt', 'student_ckpt', 'init_cfg', 'pretrained'})
# keys the fingerprint and the diff leave out, at any depth of the model
IGNORED_KEYS = PATH_KEYS | {'test_cfg'}


def _plain(value: Any) -> Any:
    """The model config as plain JSON-able data, :data:`IGNORED_KEYS`
    removed."""
    if isinstance(value, (dict, ConfigDict)):
        return {
            str(k): _plain(v)
            for k, v in value.items() if k not in IGNORED_KEYS
        }
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)  # a class or function given as type: its name


def model_fingerprint(model_cfg: Any) -> str:
    """sha256 (16 hex digits) of the model config.

    Args:
        model_cfg (dict): ``cfg.model``.

    Returns:
        str: the fingerprint; equal configs (whatever their key order) give
        the same one.
    """
    text = json.dumps(_plain(model_cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(value: Any, prefix: str, out: Dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f'{prefix}.{k}', out)
    elif isinstance(value, list) and value and any(
            isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flatten(v, f'{prefix}[{i}]', out)
    else:
        out[prefix] = value


def model_cfg_diff(old: Any,
                   new: Any,
                   limit: int = 8) -> List[Tuple[str, Any, Any]]:
    """The keys where two model configs differ, :data:`IGNORED_KEYS` left
    out.

    Args:
        old, new (dict): the two ``cfg.model``.
        limit (int): at most this many differences.

    Returns:
        list[tuple]: ``(key, old value, new value)``, ``'<absent>'`` for a
        key one side lacks; keys start with ``model``.
    """
    a: Dict[str, Any] = {}
    b: Dict[str, Any] = {}
    _flatten(_plain(old), 'model', a)
    _flatten(_plain(new), 'model', b)
    diff = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, '<absent>'), b.get(key, '<absent>')
        if va != vb:
            diff.append((key, va, vb))
    return diff[:limit]


def model_cfg_from_meta(meta: Dict[str, Any]) -> Optional[Any]:
    """The model config of the run that wrote a checkpoint, from the config
    text mmengine keeps in ``meta['cfg']``; None if absent or unreadable."""
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return Config.fromstring(text, '.py').get('model')
    except Exception:  # an old or hand-edited dump: no diff, still refused
        return None
