from . import pretrained  # noqa: F401  (registers mmprockd:// weights)
from .compat import apply_all
from .config_path import get_config_path, list_configs
from .setup_env import check_mmcv_ops, check_versions

__all__ = [
    'apply_all', 'get_config_path', 'list_configs', 'check_mmcv_ops',
    'check_versions'
]
