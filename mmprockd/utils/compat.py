"""Fixes for the traps of the modern stack (see ``docs/get_started.md``).

Each function is idempotent and is applied by ``import mmprockd``, before any
OpenMMLab model package is imported:

* :func:`patch_torchvision_ops`: a torchvision wheel built for CUDA next to a
  CPU build of torch cannot load its compiled ops, and ``import torchvision``
  then dies in its fake-tensor registrations. mmpretrain imports torchvision
  for its transforms, so ``import mmpretrain.models`` dies with it. We declare
  the two operator schemas torchvision registers unconditionally; the
  pure-Python parts (transforms, box maths) then import, and calling a
  compiled op raises torch's "no kernel" error. A one-line warning says so,
  once per command (not again in child processes or ranks > 0).
* :func:`patch_mmpretrain_multimodal`: with ``transformers>=5`` installed,
  mmpretrain imports its multimodal models, which fail against it; mmdet
  imports mmpretrain, so ``import mmdet.models`` fails. We load mmpretrain's
  dependency probe first and turn the multimodal models off.
* :func:`allow_mmengine_checkpoint_globals`: torch>=2.6 loads checkpoints
  with ``weights_only=True``; a full mmengine checkpoint holds a few
  non-tensor objects (the message hub's ``HistoryBuffer`` and four of its
  methods, numpy arrays and scalars). We allow-list exactly those, so
  resuming works while arbitrary pickled objects are still refused.
* :func:`use_weights_only_loaders`: mmengine's checkpoint loaders leave
  ``weights_only`` to torch's default (local files) or pass False
  (``load_url``: http(s)://, torchvision://, open-mmlab://). We register
  local and http(s) loaders that pass ``weights_only=True`` explicitly, so
  ``--resume``, ``load_from``, ``student_ckpt``, ``init_cfg`` and a teacher
  URL never unpickle code, whatever torch's default.
* :func:`patch_image_loading_errors`: mmcv's ``LoadImageFromFile`` fails
  on an empty or corrupt image inside cv2 (``!buf.empty()``) without the
  file's name; the error names the file, its size and the sample.
"""
import importlib.util
import os
import sys
import warnings
from importlib import metadata
from typing import List

_TV_SCHEMAS = (
    'nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
    'qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
)
_TV_LIBRARY = None  # keeps the schema fragment alive for the process


def _dist_version(name: str):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _major(version: str) -> int:
    head = version.split('.')[0]
    return int(head) if head.isdigit() else 0


def torchvision_ops_loadable() -> bool:
    """Whether torchvision's compiled extension loads next to this torch.

    Checked without importing torchvision (whose import is what fails).
    """
    spec = importlib.util.find_spec('torchvision')
    if spec is None or not spec.submodule_search_locations:
        return True  # not installed: nothing to patch
    import glob

    import torch
    for path in spec.submodule_search_locations:
        for lib in glob.glob(os.path.join(path, '_C*.so')):
            try:
                torch.ops.load_library(lib)
                return True
            except (OSError, RuntimeError):
                return False
    return False


class TorchvisionOpsWarning(UserWarning):
    """torchvision's compiled ops do not load with the installed torch."""


# set once the torchvision warning was printed, to ``torch/torchvision``
# versions: child processes (tools that start tools, torchrun ranks started
# from one) inherit it and stay quiet
TV_WARNED_ENV = 'MMPROCKD_TORCHVISION_WARNED'
_TV_WARN_REGISTRY: dict = {}


def _torchvision_schemas_declared() -> bool:
    """Whether ``torchvision::nms`` has a schema (declared by torchvision or
    by another copy of this module in the same interpreter)."""
    import torch
    try:
        torch.ops.torchvision.nms
    except (AttributeError, RuntimeError):
        return False
    return True


def warn_torchvision_ops_once() -> bool:
    """Print the one-line torchvision warning once per command.

    Once per interpreter (the warnings registry) and once per process tree:
    the versions are exported in ``MMPROCKD_TORCHVISION_WARNED``, so child
    processes with the same torch/torchvision stay quiet, as do the
    ranks > 0 of a distributed run. It is a
    :class:`TorchvisionOpsWarning` (a ``UserWarning``): ``-W ignore`` or
    ``PYTHONWARNINGS=ignore`` silence it like any other.

    Returns:
        bool: True if this call emitted it (subject to warning filters).
    """
    import torch
    versions = (f'{torch.__version__}/'
                f'{_dist_version("torchvision") or "?"}')
    if os.environ.get(TV_WARNED_ENV) == versions:
        return False
    if os.environ.get('RANK', '0') not in ('', '0'):
        return False
    os.environ[TV_WARNED_ENV] = versions
    tv_version = versions.split('/', 1)[1]
    # warn_explicit with no source line: the warning is one line (plain
    # warnings.warn adds the calling source line under it)
    warnings.warn_explicit(
        f'torchvision {tv_version} cannot load its compiled ops with torch '
        f'{torch.__version__} (a CUDA build beside a CPU torch?): its Python '
        'parts work, torchvision.ops.nms does not. Install the torchvision '
        'build that matches torch to silence this.',
        TorchvisionOpsWarning,
        filename='mmprockd',
        lineno=0,
        module='mmprockd',
        registry=_TV_WARN_REGISTRY)
    return True


def patch_torchvision_ops() -> bool:
    """Declare torchvision's operator schemas when its ops cannot load.

    Idempotent, also when this file is loaded twice in one interpreter (the
    second copy finds the schemas declared); the warning is printed once,
    see :func:`warn_torchvision_ops_once`.

    Returns:
        bool: True if the schemas were declared by this call.
    """
    global _TV_LIBRARY
    if _TV_LIBRARY is not None or 'torchvision' in sys.modules:
        return False
    if torchvision_ops_loadable() or _torchvision_schemas_declared():
        return False
    import torch
    lib = torch.library.Library('torchvision', 'FRAGMENT')
    for schema in _TV_SCHEMAS:
        lib.define(schema)
    _TV_LIBRARY = lib
    warn_torchvision_ops_once()
    return True


def patch_mmpretrain_multimodal() -> bool:
    """Switch mmpretrain's multimodal models off under transformers>=5.

    Returns:
        bool: True if the switch was applied by this call.
    """
    version = _dist_version('transformers')
    if version is None or _major(version) < 5:
        return False
    name = 'mmpretrain.utils.dependency'
    if name in sys.modules:
        module = sys.modules[name]
    else:
        if 'mmpretrain.models' in sys.modules:
            return False  # too late: the import already happened or failed
        spec = importlib.util.find_spec('mmpretrain')
        if spec is None or not spec.submodule_search_locations:
            return False
        path = os.path.join(spec.submodule_search_locations[0], 'utils',
                            'dependency.py')
        dep_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(dep_spec)
        sys.modules[name] = module
        dep_spec.loader.exec_module(module)
    if getattr(module, 'WITH_MULTIMODAL', False):
        module.WITH_MULTIMODAL = False
        warnings.warn(
            f'mmprockd: transformers {version} is not supported by '
            'mmpretrain 1.2 multimodal models; they are disabled so that '
            'mmdet/mmpretrain import. Use transformers<5 to enable them.')
        return True
    return False


def mmengine_checkpoint_globals() -> List[type]:
    """The non-tensor classes a full mmengine checkpoint pickles."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in np.sctypeDict.values()]
    return [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype
            ] + sorted(
                set(dtype_classes), key=lambda c: c.__name__)


_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name):
    """Stand-in for ``getattr`` in checkpoint unpickling.

    mmengine pickles four ``HistoryBuffer`` statistics methods by reference
    (``getattr(HistoryBuffer, 'mean')``); allowing the real ``getattr``
    would let a file reach any attribute of any allowed class, so only those
    four are resolved.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    import pickle
    raise pickle.UnpicklingError(
        f'mmprockd: getattr({obj!r}, {name!r}) is not allowed in a '
        'weights_only checkpoint load')


def allow_mmengine_checkpoint_globals() -> bool:
    """Allow-list mmengine's checkpoint classes for ``weights_only`` loads.

    Returns:
        bool: True if torch has ``add_safe_globals`` and the list was added.
    """
    import torch
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    add(mmengine_checkpoint_globals())
    add([(_history_buffer_getattr, '__builtin__.getattr'),
         (_history_buffer_getattr, 'builtins.getattr')])
    return True


def _refuse(filename: str, err: Exception):
    """The load error, naming the file, without torch's advice to load it
    with ``weights_only=False`` (which would run what the file pickles)."""
    import pickle

    from .checkpoint_io import checkpoint_error_reason
    return pickle.UnpicklingError(
        f'{filename} is not a PyTorch/mmengine checkpoint: '
        f'{checkpoint_error_reason(err)}')


def load_local_weights_only(filename: str, map_location=None):
    """mmengine's ``load_from_local`` with ``weights_only=True`` explicit."""
    import torch
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except Exception as err:
        raise _refuse(filename, err) from None


def load_url_weights_only(url: str, *args, **kwargs):
    """mmengine's ``load_url`` (download to the torch hub cache, then load)
    with ``weights_only=True`` whatever the caller passed."""
    from mmengine.utils.dl_utils import load_url
    kwargs['weights_only'] = True
    try:
        return load_url(url, *args, **kwargs)
    except OSError:  # the download failed: its own message says why
        raise
    except Exception as err:
        raise _refuse(url, err) from None


def use_weights_only_loaders() -> bool:
    """Make every mmengine checkpoint loader pass ``weights_only=True``.

    The local loader ('' prefix) and the http(s) one are registered anew
    with ``CheckpointLoader.register_scheme(force=True)`` (mmengine's API).
    ``load_from_torchvision``/``load_from_openmmlab`` call ``load_url``
    through the module's global, not through the registry, so that name is
    replaced too (no mmengine API reaches it).

    Returns:
        bool: True if this call installed them.
    """
    from mmengine.runner import checkpoint as ckpt_mod
    if ckpt_mod.load_url is load_url_weights_only:
        return False
    ckpt_mod.load_url = load_url_weights_only
    loader = ckpt_mod.CheckpointLoader
    loader.register_scheme('', load_local_weights_only, force=True)
    # mmengine's load_from_http, now through load_url_weights_only
    loader.register_scheme(('http://', 'https://'),
                           ckpt_mod.load_from_http,
                           force=True)
    return True


class ImageReadError(RuntimeError):
    """An image the data pipeline could not read, with its file, size and
    sample."""


def _image_error(results: dict, err: BaseException) -> ImageReadError:
    """The error naming the image of ``results`` and its annotation (the
    dataset's ``img_id`` and sample index)."""
    filename = results.get('img_path')
    try:
        size = f'{os.stat(filename).st_size} bytes'
    except (OSError, TypeError):
        size = 'missing'
    sample = ', '.join(f'{key} {results[key]}'
                       for key in ('img_id', 'sample_idx') if key in results)
    reason = str(err).strip().splitlines()[-1] if str(err).strip() else \
        type(err).__name__
    return ImageReadError(
        f'cannot read the image {filename} ({size}; {sample or "no id"}): '
        f'{reason}. Replace the file, or drop it and its annotation from '
        'the dataset')


def patch_image_loading_errors() -> bool:
    """Make mmcv's ``LoadImageFromFile`` (which mmdet, mmseg and mmpretrain
    use) name the file when it cannot read it.

    An empty (0-byte) or corrupt image fails in cv2 with ``!buf.empty()``
    or an assertion, in the middle of an epoch, naming no file. The
    transform raises :class:`ImageReadError` with the path, the file's
    size and the sample's image id and index; ``ignore_empty=True`` keeps
    its meaning (the sample is skipped).

    Returns:
        bool: whether the patch is in place.
    """
    try:
        from mmcv.transforms import LoadImageFromFile
    except ImportError:
        return False
    transform = LoadImageFromFile.transform
    if getattr(transform, '_names_the_file', False):
        return True

    def named_transform(self, results):
        try:
            return transform(self, results)
        except ImageReadError:
            raise
        except Exception as err:  # cv2.error, AssertionError, OSError
            raise _image_error(results, err) from err

    named_transform._names_the_file = True
    LoadImageFromFile.transform = named_transform
    return True


def apply_all() -> None:
    """Apply every fix of this module (safe to call more than once)."""
    patch_torchvision_ops()
    patch_mmpretrain_multimodal()
    allow_mmengine_checkpoint_globals()
    use_weights_only_loaders()
    patch_image_loading_errors()
