"""tools/analysis_tools/benchmark_cost.py on the small demo config: every
measurement is taken, the ratios are the quotients of the printed times,
``--cfg-options`` reaches the model and a wrong key fails before any work."""
import json
import os.path as osp

import pytest
from tool_runner import REPO, load_module

from mmprockd.utils.checks import InputCheckError

bench = load_module(
    osp.join(REPO, 'tools', 'analysis_tools', 'benchmark_cost.py'),
    'benchmark_cost')
CONFIG = osp.join(REPO, 'configs', 'demo',
                  'prockd_mobilenetv2_retinanet_demo.py')
SMALL = ['--size', '64', '96', '--iters', '1', '--warmup', '0']


def run(tmp_path, *extra):
    out = str(tmp_path / 'cost.json')
    assert bench.main([CONFIG, '--batch', '4', *SMALL, '--out', out,
                       *extra]) == 0
    with open(out) as f:
        return json.load(f)


def test_measurements_and_ratios(tmp_path, capsys):
    figures = run(tmp_path, '--breakdown')
    res, ratios = figures['results'], figures['ratios']
    assert set(res) == {
        'student_step', 'teacher_inference', 'prockd_step',
        'prockd_step_cached', 'branch_modules', 'branch_head_pass',
        'deployed_student'
    }
    assert all(v['ms'] > 0 for v in res.values())
    ms = {k: v['ms'] for k, v in res.items()}
    assert ratios['prockd_over_student_plus_teacher'] == pytest.approx(
        ms['prockd_step'] / (ms['student_step'] + ms['teacher_inference']))
    assert ratios['prockd_cached_over_student'] == pytest.approx(
        ms['prockd_step_cached'] / ms['student_step'])
    printed = capsys.readouterr().out
    assert 'branch_head_pass' in printed and 'batch 4' in printed


def test_cfg_options_reach_the_model(tmp_path, monkeypatch):
    seen = []
    build = bench.torch.nn.Module.to

    def spy(module, *args, **kwargs):
        if hasattr(module, 'distill_fraction'):
            seen.append(module.distill_fraction)
        return build(module, *args, **kwargs)

    monkeypatch.setattr(bench.torch.nn.Module, 'to', spy)
    figures = run(tmp_path, '--cfg-options', 'model.distill_fraction=0.25')
    assert seen == [0.25]
    assert figures['args']['cfg_options'] == {'model.distill_fraction': 0.25}


def test_unknown_cfg_option_fails_before_building(tmp_path):
    with pytest.raises(InputCheckError, match='modle'):
        bench.main([CONFIG, *SMALL, '--cfg-options', 'modle.x=1'])
