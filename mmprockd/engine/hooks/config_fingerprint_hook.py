"""Write the model config's fingerprint into every checkpoint."""
from mmengine.hooks import Hook

from mmprockd.registry import HOOKS
from mmprockd.utils.fingerprint import FINGERPRINT_KEY, model_fingerprint


@HOOKS.register_module()
class ConfigFingerprintHook(Hook):
    """Put :func:`~mmprockd.utils.fingerprint.model_fingerprint` of the
    run's ``cfg.model`` into ``checkpoint['meta']``.

    ``tools/train.py`` adds it to every run and, before resuming, compares
    the checkpoint's fingerprint with its config's: a checkpoint of another
    model config is refused before anything is built, naming the keys that
    differ. mmengine keeps the whole config text in ``meta['cfg']`` too,
    but that is for reading (it may not parse back); the fingerprint is
    what is compared.
    """
    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add ``meta['model_fingerprint']``."""
        model_cfg = runner.cfg.get('model')
        if model_cfg is not None:
            checkpoint.setdefault('meta', {})[FINGERPRINT_KEY] = \
                model_fingerprint(model_cfg)
