"""Let mmengine resolve ``mmprockd::`` config bases in every interpreter.

mmengine accepts ``_base_ = ['pkg::path']`` only for the OpenMMLab
packages it knows (``mmengine.config.utils.MODULE2PACKAGE``), and it parses
a config before any ``custom_imports`` run, so ``import mmprockd`` in the
config comes too late for a downstream project's own copy of mmdet's
``tools/train.py``. The ``mmprockd_boot.pth`` file that ``pip install`` puts
beside this module runs :func:`install` at interpreter start-up. That
imports nothing but the standard library: it waits for
``mmengine.config.config`` to be imported, then resolves
``mmprockd::path`` to the config file the package ships (found where Python
imports the package from, which also works for an editable install),
without giving the base's objects an ``mmprockd`` scope (see
:func:`_patch`).

It also applies the stack fixes of ``mmprockd/utils/compat.py`` that must
run before a package is imported (``patch_torchvision_ops`` before
``torchvision``, ``patch_mmpretrain_multimodal`` before ``mmpretrain``), so
that upstream tools (mmdet's ``tools/test.py`` on an exported student) work
in this environment without ``import mmprockd``. ``compat.py`` is loaded on
its own, by path, not through the package.

``import mmprockd`` also calls :func:`install`, for interpreters that did
not read the ``.pth`` file (``pip install --target``, ``python -S``).
"""
import importlib.abc
import importlib.util
import os
import os.path as osp
import sys

TARGET = 'mmengine.config.config'
PACKAGE = 'mmprockd'


def config_root() -> str:
    """Where the package's configs are, found without importing it: the
    ``.mim/configs`` it ships, or the checkout's ``configs``."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        raise FileNotFoundError(f'{PACKAGE} is not installed')
    package = osp.dirname(spec.origin)
    for root in (osp.join(package, '.mim', 'configs'),
                 osp.join(osp.dirname(package), 'configs')):
        if osp.isdir(root):
            return root
    raise FileNotFoundError(f'{PACKAGE} at {package} ships no configs')


def _patch(config_module) -> None:
    """Teach an imported ``mmengine.config.config`` the ``mmprockd::``
    prefix.

    mmengine resolves ``pkg::path`` for its known packages only, and gives
    the base's objects the scope ``pkg``. Our configs are written like local
    ones (upstream types bare, resolved in the config's ``default_scope``;
    ours as ``mmprockd.X``), so an ``mmprockd::`` base is resolved to its
    file and given no scope, exactly as a relative ``_base_`` would be.
    """
    config_cls = config_module.Config
    original = config_cls.__dict__['_get_cfg_path'].__func__
    if getattr(original, '_mmprockd', False):
        return

    def _get_cfg_path(cfg_path: str, filename: str):
        prefix = PACKAGE + '::'
        if not cfg_path.startswith(prefix):
            return original(cfg_path, filename)
        path = osp.join(config_root(), cfg_path[len(prefix):])
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{cfg_path} (in {filename}): no such config in '
                f'{config_root()}; `python -m mmprockd.utils.config_path` '
                'lists them')
        return path, None

    _get_cfg_path._mmprockd = True
    config_cls._get_cfg_path = staticmethod(_get_cfg_path)


_COMPAT = None
# package -> the compat fix that must run before it is imported
BEFORE_IMPORT = {
    'torchvision': 'patch_torchvision_ops',
    'mmpretrain': 'patch_mmpretrain_multimodal',
}


def _compat():
    """``mmprockd/utils/compat.py`` loaded alone (importing it through the
    package would import the whole of mmprockd); its fixes are idempotent,
    also across two loaded copies."""
    global _COMPAT
    if _COMPAT is None:
        spec = importlib.util.find_spec(PACKAGE)
        path = osp.join(osp.dirname(spec.origin), 'utils', 'compat.py')
        compat_spec = importlib.util.spec_from_file_location(
            'mmprockd_boot_compat', path)
        module = importlib.util.module_from_spec(compat_spec)
        compat_spec.loader.exec_module(module)
        _COMPAT = module
    return _COMPAT


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: applies a compat fix before ``torchvision`` or
    ``mmpretrain`` is imported, and wraps the loader of
    ``mmengine.config.config`` so that :func:`_patch` runs right after the
    module is executed."""

    def find_spec(self, name, path=None, target=None):
        if name in BEFORE_IMPORT:
            # once per package; the fix itself looks the package up
            # (find_spec), which must not come back here
            fix = BEFORE_IMPORT.pop(name)
            try:
                getattr(_compat(), fix)()
            except Exception as err:  # never break an import from here
                print(f'mmprockd_boot: {fix} failed: {err}', file=sys.stderr)
            return None
        if name != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        loader.exec_module = exec_and_patch
        return spec


def install(force: bool = False) -> None:
    """Patch mmengine now if it is imported, else when it is.

    ``MMPROCKD_BOOT=0`` in the environment turns the start-up file off (to
    see what an interpreter does without it); ``import mmprockd`` installs
    it anyway (``force``).
    """
    if not force and os.environ.get('MMPROCKD_BOOT') == '0':
        return
    module = sys.modules.get(TARGET)
    if module is not None:
        _patch(module)
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def write_pth() -> str:
    """Write ``mmprockd_boot.pth`` into this environment's site-packages
    (what a regular install does; ``pip install -e`` does not) and return
    its path. ``tools/install.sh`` runs it: ``python -m mmprockd_boot``."""
    import sysconfig
    path = osp.join(sysconfig.get_paths()['purelib'], 'mmprockd_boot.pth')
    with open(path, 'w') as f:
        f.write('import mmprockd_boot; mmprockd_boot.install()\n')
    return path


if __name__ == '__main__':
    print(write_pth())
