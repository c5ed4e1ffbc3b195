"""Where mmprockd's shipped configs live, for projects that inherit them.

mmengine resolves ``pkg::path`` bases only for OpenMMLab's own packages, so a
downstream config names our configs by file path. The installed package
carries them in ``mmprockd/.mim/configs`` (as OpenMMLab packages do);
an editable install or a source checkout uses ``configs/`` at the repo root.

Command line::

    python -m mmprockd.utils.config_path prockd_retinanet_coco.py
"""
import difflib
import os
import os.path as osp
import sys
from typing import List

_PKG_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_roots() -> List[str]:
    """The folders that hold shipped configs, most specific first."""
    roots = [
        osp.join(_PKG_DIR, '.mim', 'configs'),
        osp.join(osp.dirname(_PKG_DIR), 'configs'),
    ]
    return [r for r in roots if osp.isdir(r)]


def list_configs() -> List[str]:
    """Relative paths of every shipped config (``_base_`` pieces excluded)."""
    found = set()
    for root in config_roots():
        for dirpath, _, files in os.walk(root):
            for name in files:
                rel = osp.relpath(osp.join(dirpath, name), root)
                if name.endswith('.py') and '_base_' not in rel:
                    found.add(rel.replace(os.sep, '/'))
    return sorted(found)


def get_config_path(name: str) -> str:
    """Absolute path of a shipped config.

    Args:
        name (str): path relative to ``configs/``, e.g.
            ``'prockd_retinanet_coco.py'`` or ``'_base_/prockd_default.py'``.

    Returns:
        str: an existing file.

    Raises:
        FileNotFoundError: naming the config, the folders searched and the
            closest shipped names.
    """
    for root in config_roots():
        path = osp.join(root, name)
        if osp.isfile(path):
            return path
    close = difflib.get_close_matches(name, list_configs(), n=3)
    raise FileNotFoundError(
        f'mmprockd has no config {name!r} (searched {config_roots()}); '
        f'closest: {close}')


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: python -m mmprockd.utils.config_path CONFIG_NAME')
    print(get_config_path(sys.argv[1]))
