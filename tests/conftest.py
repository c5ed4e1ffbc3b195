"""Shared fixtures; helpers live in :mod:`mmprockd.testing`,
:mod:`mmprockd.utils.offline`, ``tool_runner.py`` (running the tools) and
``downstream_install.py`` (unique module names: pytest imports every
``conftest.py`` as ``conftest``)."""
import warnings
from typing import NamedTuple

import pytest
from downstream_install import install
from tool_runner import run_tool, toy

import mmprockd  # noqa: F401  (compat fixes before any model import)
from mmprockd.utils.offline import make_offline

warnings.filterwarnings('ignore', message='mmprockd: torchvision')

# End-to-end tests: real training runs, subprocesses, installs. Each took
# over 10 s on a 2-core machine (pytest --durations). They are
# marked ``slow``; `python -m pytest tests` (the README's command, and CI)
# runs them, `python -m pytest tests -m "not slow"` is the quick loop.
SLOW = (
    'tests/test_configs/test_seg_cls_end_to_end.py',
    'tests/test_demo/test_demo_detection.py',
    'tests/test_tools/test_dist_train.py',
    'tests/test_tools/test_dist_loss_log.py',
    'tests/test_tools/test_test_tool.py',
    'tests/test_tools/test_train_tool.py',
    'tests/test_utils/test_compat.py',
    'tests/test_tools/test_benchmark_cost.py::'
    'test_gpu_cost_script_runs_every_row_on_cpu',
    'tests/test_utils/test_config_path.py::'
    'test_non_editable_install_finds_configs',
    'tests/test_utils/test_config_path.py::test_boot_file_is_installed',
    'tests/test_utils/test_config_path.py::test_mmprockd_base_resolves',
    'tests/test_utils/test_config_path.py::test_downstream_trains',
    'tests/test_utils/test_config_path.py::test_downstream_segmenter_',
    'tests/test_utils/test_config_path.py::'
    'test_recipe_pairs_resolve_from_the_install',
    'tests/test_benchmark/test_proxy_benchmark.py::test_det_smoke_run_',
    'tests/test_benchmark/test_proxy_benchmark.py::test_seg_smoke_run_',
    'tests/test_benchmark/test_teacher_fit.py::test_two_seeds_on_tiny_',
    'tests/test_benchmark/test_teacher_fit.py::test_branch_eval_hook_',
    'tests/test_configs/test_recipes.py::test_recipe_builds_and_steps',
    'tests/test_configs/test_recipe_bases.py::'
    'test_exported_student_loads_without_mmprockd',
    'tests/test_configs/test_recipe_bases.py::'
    'test_pair_builds_and_steps_through_both_phases',
    'tests/test_benchmark/test_demo_compare.py::'
    'test_two_iterations_give_the_table_and_pictures_',
    'tests/test_tools/test_train_kill_resume.py::'
    'test_killed_ten_times_resumes_from_the_newest_complete_checkpoint',
    'tests/test_tools/test_exact_resume.py::test_resumed_run_',
    'tests/test_tools/test_exact_resume.py::test_without_the_hook_',
    'tests/test_tools/test_exact_resume.py::'
    'test_the_proxys_detection_recipe_',
)


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: an end-to-end test (training runs, subprocesses, '
        'installs); deselect with -m "not slow"')


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def offline():
    return make_offline


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
    """``tools/train.py`` on ``toy_cls.py``: two epochs, a checkpoint each;
    shared by the tool tests and the checkpoint-loading tests."""
    work = tmp_path_factory.mktemp('toy_run')
    work_dir = str(work / 'work')
    proc = run_tool(
        ['train.py', toy.TOY_CLS, '--work-dir', work_dir, '--cfg-options'] +
        toy.data_root_options(toy_data_root),
        cwd=str(work))
    assert proc.returncode == 0, proc.output[-3000:]
    return ToyRun(toy_data_root, work_dir, proc.output)


@pytest.fixture(scope='session')
def installed(tmp_path_factory) -> str:
    """mmprockd installed with pip into a folder (``--target``), not
    editable; built once for every test that runs a downstream project
    (``downstream_install.py``)."""
    return install(str(tmp_path_factory.mktemp('install')))
