"""Helpers of the tool tests: run a tool in a subprocess, import a file
that is not in a package, and the toy data helpers."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
from types import ModuleType
from typing import List

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_module(path: str, name: str) -> ModuleType:
    """Import a file that is not in a package (a tool, a toy helper)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


toy = load_module(
    osp.join(REPO, 'tests', 'data', 'toy', 'toy_data.py'), 'toy_data')


def run_tool(args: List[str], cwd: str,
             **env: str) -> subprocess.CompletedProcess:
    """Run ``python tools/ARGS[0] ARGS[1:]`` (``bash`` for a ``.sh``).

    Returns:
        subprocess.CompletedProcess: with ``output``, stdout then stderr.
    """
    full_env = dict(os.environ, PYTHONWARNINGS='ignore', **env)
    script = osp.join(REPO, 'tools', args[0])
    launcher = ['bash'] if script.endswith('.sh') else [sys.executable]
    proc = subprocess.run(
        launcher + [script] + args[1:],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300)
    proc.output = proc.stdout + proc.stderr
    return proc
