"""mmprockd: ProC-KD, prototype-guided cross-task knowledge distillation,
for OpenMMLab (mmdet, mmseg, mmpretrain students; frozen ImageNet teachers).

Importing the package applies the compatibility fixes of
:mod:`mmprockd.utils.compat` (before any model package is imported), warns
about untested OpenMMLab versions and registers every component under the
``mmprockd`` scope.
"""
from .utils import compat as _compat

_compat.apply_all()

try:  # ``mmprockd::`` config bases (also started by mmprockd_boot.pth)
    import mmprockd_boot as _boot
except ImportError:  # the package folder alone, without the module
    _boot = None
else:
    _boot.install(force=True)

from .utils import check_versions, get_config_path  # noqa: E402
from .version import __version__, version_info  # noqa: E402

check_versions()

from . import engine, models  # noqa: E402,F401

__all__ = ['__version__', 'version_info', 'get_config_path']
