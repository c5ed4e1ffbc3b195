"""The models never import the command line's input checks.

:mod:`mmprockd.preflight` (and the former :mod:`mmprockd.utils.checks`,
which re-exports it) is what ``tools/train.py`` and ``tools/test.py`` run
before anything is built. A model that needs part of it (why a file is not
a checkpoint) takes it from :mod:`mmprockd.utils.checkpoint_io`.

Checked twice: every module under ``mmprockd/models`` is imported in a
fresh interpreter, and no preflight module may then be loaded; and every
``import`` statement of those modules, also the ones inside functions
(which run later, at build or at load), is followed through the package:
none may reach a preflight module.

Run: ``pytest tests/test_models/test_no_cli_imports.py``
"""
import ast
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional

PACKAGE_DIR = osp.dirname(importlib.util.find_spec('mmprockd').origin)
ROOT = osp.dirname(PACKAGE_DIR)
CLI_MODULES = ('mmprockd.preflight', 'mmprockd.utils.checks')


def _is_cli(name: str) -> bool:
    return any(name == m or name.startswith(m + '.') for m in CLI_MODULES)


def _file_of(name: str) -> Optional[str]:
    base = osp.join(ROOT, *name.split('.'))
    for path in (base + '.py', osp.join(base, '__init__.py')):
        if osp.isfile(path):
            return path
    return None


def _module_of(path: str) -> str:
    rel = osp.splitext(osp.relpath(path, ROOT))[0].split(os.sep)
    return '.'.join(rel[:-1] if rel[-1] == '__init__' else rel)


def _imports(path: str) -> List[str]:
    """The mmprockd modules a file imports, at any depth of its code."""
    name = _module_of(path)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename=path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split('.')
                base = '.'.join(parts[:len(parts) - node.level + 1])
                module = f'{base}.{node.module}' if node.module else base
            else:
                module = node.module
            found.append(module)
            # ``from pkg import sub`` imports the submodule ``pkg.sub``
            found += [
                f'{module}.{alias.name}' for alias in node.names
                if _file_of(f'{module}.{alias.name}')
            ]
    return [
        m for m in found
        if m.split('.')[0] == 'mmprockd' and (_is_cli(m) or _file_of(m))
    ]


def _model_files() -> List[str]:
    return sorted(
        osp.join(folder, name)
        for folder, _, names in os.walk(osp.join(PACKAGE_DIR, 'models'))
        for name in names if name.endswith('.py'))


def test_no_model_code_reaches_the_preflight_checks():
    """Follows every import (module level and inside functions) from the
    model files; a chain that ends in a preflight module is named."""
    parent: Dict[str, Optional[str]] = {}
    todo = []
    for path in _model_files():
        parent[_module_of(path)] = None
        todo.append(_module_of(path))
    reached = []
    while todo:
        name = todo.pop()
        if _is_cli(name):
            reached.append(name)
            continue
        for dep in _imports(_file_of(name)):
            if dep not in parent:
                parent[dep] = name
                todo.append(dep)
    chains = []
    for name in sorted(reached):
        chain = [name]
        while parent[chain[-1]] is not None:
            chain.append(parent[chain[-1]])
        chains.append(' <- '.join(chain))
    assert not chains, chains
    # the walk went through the models and what they use
    assert {
        'mmprockd.models.distillers.frozen_teacher',
        'mmprockd.models.distillers.proto_distiller',
        'mmprockd.utils.checkpoint_io'
    } <= set(parent)


IMPORT_ALL = """\
import importlib, json, pkgutil, sys
import mmprockd.models
names = [m.name for m in pkgutil.walk_packages(mmprockd.models.__path__,
                                               'mmprockd.models.')]
for name in names:
    importlib.import_module(name)
print(json.dumps([names, sorted(sys.modules)]))
"""


def test_importing_every_model_module_loads_no_preflight_module():
    proc = subprocess.run([sys.executable, '-c', IMPORT_ALL],
                          env=dict(
                              os.environ,
                              PYTHONPATH=ROOT,
                              PYTHONWARNINGS='ignore',
                              OMP_NUM_THREADS='1'),
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names, loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 'mmprockd.models.distillers.frozen_teacher' in names
    assert 'mmprockd.models.necks.prototype_learner' in names
    assert [m for m in loaded if _is_cli(m)] == []
