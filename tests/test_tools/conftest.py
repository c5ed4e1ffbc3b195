"""Fixtures of the tool tests: toy images and one toy training run that
the train and test tool tests share."""
from typing import NamedTuple

import pytest
from tool_runner import run_tool, toy


class ToyRun(NamedTuple):
    """A finished toy training run."""
    data_root: str
    work_dir: str
    output: str


@pytest.fixture(scope='session')
def toy_data_root(tmp_path_factory) -> str:
    """Eight toy images in two class folders."""
    return toy.make_toy_images(str(tmp_path_factory.mktemp('toy_cls')))


@pytest.fixture(scope='session')
def toy_run(toy_data_root, tmp_path_factory) -> ToyRun:
    """``tools/train.py`` on ``toy_cls.py``: two epochs, a checkpoint each."""
    work = tmp_path_factory.mktemp('toy_run')
    work_dir = str(work / 'work')
    proc = run_tool(
        ['train.py', toy.TOY_CLS, '--work-dir', work_dir, '--cfg-options'] +
        toy.data_root_options(toy_data_root),
        cwd=str(work))
    assert proc.returncode == 0, proc.output[-3000:]
    return ToyRun(toy_data_root, work_dir, proc.output)
