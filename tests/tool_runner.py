"""Helpers of the tool tests: run a tool in a subprocess, import a file
that is not in a package, and the toy data helpers."""
import glob
import importlib.util
import json
import os
import os.path as osp
import signal
import subprocess
import sys
from types import ModuleType
from typing import List

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


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

    The tool runs in its own process group. The timeout is not a speed
    check: it only stops a hung tool from hanging the suite, so it is far
    above any tool's time on a loaded 2-core machine (``TOOL_TIMEOUT``
    seconds, 1800 by default). When it fires, the whole group is killed, so
    no child (a ``benchmark_cost.py`` started by a shell script) keeps
    running and slowing the tests after it.

    Returns:
        subprocess.CompletedProcess: with ``output``, stdout then stderr.
    """
    # a shell script runs its Python tools with the tests' interpreter,
    # whether or not its virtual environment is on PATH; a test may name
    # another (``env`` wins)
    full_env = {
        **os.environ, 'PYTHONWARNINGS': 'ignore',
        'PYTHON': sys.executable,
        **env
    }
    script = osp.join(REPO, 'tools', args[0])
    launcher = ['bash'] if script.endswith('.sh') else [sys.executable]
    cmd = launcher + [script] + args[1:]
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True)
    try:
        stdout, stderr = proc.communicate(
            timeout=float(os.environ.get('TOOL_TIMEOUT', 1800)))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    done.output = stdout + stderr
    return done


def logged_losses(work_dir: str) -> dict:
    """``{step: {loss key: value}}`` of every run logged in ``work_dir``
    (its ``*/vis_data/scalars.json``); a step logged twice fails."""
    steps = {}
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'loss' in row:
                    assert row['step'] not in steps, (path, row['step'])
                    steps[row['step']] = {
                        k: v
                        for k, v in row.items() if 'loss' in k
                    }
    return steps
