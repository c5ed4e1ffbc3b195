"""Version checks done at import, and the check for mmcv's compiled ops."""
import warnings
from importlib import metadata
from typing import Dict, Tuple

from mmengine.utils import digit_version

# package -> (lowest supported, first unsupported); tested with the versions
# named in README.md
SUPPORTED: Dict[str, Tuple[str, str]] = {
    'mmengine': ('0.10.0', '1.0.0'),
    'mmcv': ('2.0.0', '2.2.0'),
    'mmdet': ('3.0.0', '3.4.0'),
    'mmsegmentation': ('1.0.0', '1.3.0'),
    'mmpretrain': ('1.0.0', '1.3.0'),
}
INSTALL_HINT = ('see "Installation" in README.md: pip install -r '
                'requirements/mminstall.txt (mmcv is built from source '
                'with MMCV_WITH_OPS=1 and --no-build-isolation)')


def check_versions(warn: bool = True) -> Dict[str, str]:
    """Warn (never fail) for OpenMMLab packages outside the tested window.

    Returns:
        dict: package name -> problem text, for each package with a problem.
    """
    problems = {}
    for name, (low, high) in SUPPORTED.items():
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems[name] = f'{name} is not installed'
            continue
        if not (digit_version(low) <= digit_version(version) <
                digit_version(high)):
            problems[name] = (f'{name}=={version} is installed; mmprockd is '
                              f'tested with {low} <= {name} < {high}')
    if warn:
        for text in problems.values():
            warnings.warn(f'mmprockd: {text}; {INSTALL_HINT}')
    return problems


def check_mmcv_ops() -> None:
    """Raise a clear error when mmcv was installed without its ops.

    RetinaNet needs ``mmcv.ops`` (NMS, sigmoid focal loss); ``mmcv-lite`` and
    a source build without ``MMCV_WITH_OPS=1`` lack them.
    """
    try:
        from mmcv.ops import nms  # noqa: F401
    except (ImportError, ModuleNotFoundError, OSError) as err:
        raise RuntimeError(
            'mmcv was installed without its compiled ops (mmcv.ops: '
            f'{err}). Reinstall it with ops: pip uninstall -y mmcv mmcv-lite'
            ' && MMCV_WITH_OPS=1 pip install --no-build-isolation '
            'mmcv==2.1.0 (about 26 minutes on 2 cores), or install the mmcv '
            'wheel that matches your torch and CUDA.') from err
