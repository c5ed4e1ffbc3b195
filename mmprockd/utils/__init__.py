# isort: off
# the compatibility fixes run before anything here imports OpenMMLab code
from .compat import apply_all

apply_all()

from . import pretrained  # noqa: E402,F401  (registers mmprockd:// weights)
from .config_path import get_config_path, list_configs  # noqa: E402
from .setup_env import check_mmcv_ops, check_versions  # noqa: E402
# isort: on

__all__ = [
    'apply_all', 'get_config_path', 'list_configs', 'check_mmcv_ops',
    'check_versions'
]
