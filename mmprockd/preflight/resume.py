"""A ``--resume`` checkpoint, checked against the config before anything
is built: a full training checkpoint of this model config."""
from mmengine.config import Config

from mmprockd.utils.checkpoint_io import InputCheckError

RESUME_KEYS = ('state_dict', 'optimizer', 'message_hub', 'meta')


def check_resume_checkpoint(cfg: Config,
                            checkpoint: dict,
                            path: str,
                            key: str = '--resume') -> None:
    """Fail when a checkpoint cannot resume this config's run.

    It must be a full training checkpoint (weights, optimizer state,
    message hub, meta: not a student-only or weights-only file), of a run
    whose model config equals this one: the fingerprint that
    :class:`mmprockd.ConfigFingerprintHook` wrote, or, for a checkpoint
    written without it, the model section of the config text mmengine
    keeps in ``meta['cfg']``.

    Args:
        cfg (Config): The merged config.
        checkpoint (dict): The loaded checkpoint.
        path (str): Its file, for messages.
        key (str): What it was given as.

    Raises:
        InputCheckError: naming the file and the missing entries, or the
            model keys that differ between the two configs.
    """
    from mmprockd.utils.fingerprint import (FINGERPRINT_KEY, model_cfg_diff,
                                            model_cfg_from_meta,
                                            model_fingerprint)
    missing = [k for k in RESUME_KEYS if k not in checkpoint]
    if missing:
        have = sorted(checkpoint)[:6]
        raise InputCheckError(
            f'{key}: {path} is not a full training checkpoint: it lacks '
            f'{missing} (it has {have}{"..." if len(checkpoint) > 6 else ""}'
            '); expected a checkpoint tools/train.py wrote. To start a new '
            f'run from its weights, use --cfg-options load_from={path}')
    meta = checkpoint.get('meta') or {}
    model_cfg = cfg.get('model')
    saved = meta.get(FINGERPRINT_KEY) if isinstance(meta, dict) else None
    old_model = model_cfg_from_meta(meta)
    if saved is None and old_model is None:
        return  # nothing to compare with
    current = model_fingerprint(model_cfg)
    if saved is None:
        saved = model_fingerprint(old_model)
    if saved == current:
        return
    if old_model is not None:
        diff = model_cfg_diff(old_model, model_cfg)
        if not diff:
            # they differ only in keys the comparison leaves out, which
            # the checkpoint's fingerprint counted
            return
        keys = '; '.join(f'{k}: {a!r} in the checkpoint, {b!r} in the '
                         'config' for k, a, b in diff)
    else:
        keys = 'the checkpoint holds no config text to compare'
    raise InputCheckError(
        f'{key}: {path} was written by another model config (fingerprint '
        f'{saved}, this config {current}): {keys}. Resume with the config '
        'of that run, or start a new run from its weights with '
        f'--cfg-options load_from={path}')
