"""tools/analysis_tools/benchmark_cost.py on the small demo config: every
measurement is taken, the ratios are the quotients of the printed times,
``--cfg-options`` reaches the model and a wrong key fails before any work."""
import json
import os.path as osp

import pytest
from tool_runner import REPO, load_module, run_tool

from mmprockd.utils.checkpoint_io import InputCheckError

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


def test_breakdown_times_every_part_and_ratios_are_their_quotients(
        tmp_path, capsys):
    figures = run(tmp_path, '--breakdown')
    res, ratios = figures['results'], figures['ratios']
    assert set(res) == {
        'student_step', 'teacher_inference', 'prockd_step',
        'prockd_step_cached', 'branch_modules', 'branch_head_pass',
        'frozen_branch_step', 'deployed_student'
    }
    assert all(v['ms'] > 0 for v in res.values())
    # one timed step of 4 images, all of them distilled
    assert res['prockd_step']['distilled_images'] == '4/4'
    assert res['prockd_step_cached']['distilled_images'] == '4/4'
    ms = {k: v['ms'] for k, v in res.items()}
    assert ratios['prockd_over_student_plus_teacher'] == pytest.approx(
        ms['prockd_step'] / (ms['student_step'] + ms['teacher_inference']))
    assert ratios['prockd_cached_over_student'] == pytest.approx(
        ms['prockd_step_cached'] / ms['student_step'])
    assert ratios['frozen_branch_over_student'] == pytest.approx(
        ms['frozen_branch_step'] / ms['student_step'])
    printed = capsys.readouterr().out
    assert 'branch_head_pass' in printed and 'batch 4' in printed


def test_a_frozen_own_head_branch_is_also_timed_from_its_cache(tmp_path):
    """[ours] two-stage ProC-KD's stage 2: with its own head the frozen
    branch's outputs can be cached (``branch_cache``), and that step is
    timed too; the demo's shared head cannot be (previous test). So is the
    branch-only step of the one-run form (a shared head has none)."""
    figures = run(tmp_path, '--cfg-options', 'model.branch_head=own')
    res, ratios = figures['results'], figures['ratios']
    assert {'frozen_branch_step', 'frozen_branch_step_cached'} <= set(res)
    assert ratios['frozen_branch_cached_over_student'] == pytest.approx(
        res['frozen_branch_step_cached']['ms'] / res['student_step']['ms'])
    # and the one-run form's branch phase (the student paused)
    assert ratios['branch_only_over_student'] == pytest.approx(
        res['branch_only_step']['ms'] / res['student_step']['ms'])


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
    # 1 image expected of 4: 2 images or none (never one, see the model)
    used = figures['results']['prockd_step']['distilled_images']
    assert used in ('0/4', '2/4')
    assert figures['args']['cfg_options'] == {'model.distill_fraction': 0.25}


def test_unknown_cfg_option_fails_before_building(tmp_path):
    with pytest.raises(InputCheckError, match='modle'):
        bench.main([CONFIG, *SMALL, '--cfg-options', 'modle.x=1'])


def test_cost_table_renders_the_measured_figures(tmp_path):
    table = load_module(
        osp.join(REPO, 'tools', 'analysis_tools', 'cost_table.py'),
        'cost_table')
    figures = dict(
        args=dict(
            config='configs/x.py',
            batch=8,
            size=[800, 1216],
            amp=True,
            cfg_options={'model.distill_fraction': 0.25}),
        device='NVIDIA H100',
        results=dict(
            student_step=dict(ms=136.4, peak_gib=10.0),
            teacher_inference=dict(ms=20.0, peak_gib=1.0),
            prockd_step=dict(
                ms=170.2, peak_gib=12.5, distilled_images='20/80'),
            prockd_step_cached=dict(ms=150.0, peak_gib=12.0)),
        ratios=dict(
            prockd_over_student_plus_teacher=170.2 / 156.4,
            prockd_over_student=170.2 / 136.4,
            prockd_cached_over_student=150.0 / 136.4))
    path = tmp_path / 'f.json'
    path.write_text(json.dumps(figures))
    lines = table.render([str(path)]).splitlines()
    assert len(lines) == 3
    cells = [c.strip() for c in lines[2].strip('|').split('|')]
    assert len(cells) == len(table.COLUMNS)
    assert cells[:6] == [
        '`x.py`', 'model.distill_fraction=0.25', 'NVIDIA H100', '8',
        '800x1216', 'yes'
    ]
    assert cells[6:10] == ['136', '20', '170', '150']
    assert cells[10] == '20/80'
    assert cells[11:14] == ['1.088', '1.248', '1.100']
    # no branch phase, student phase or recipe figure: not a two-stage row
    assert cells[14:17] == ['-', '-', '-']
    assert cells[17] == '-'  # no plugin in this student
    assert cells[18] == '10.00 -> 12.50'
    # a two-stage row: both phases and the whole recipe
    figures['ratios'].update(
        branch_only_over_student=1.5,
        frozen_branch_over_student=1.3,
        frozen_branch_cached_over_student=1.02,
        recipe_over_student_schedule=1.77)
    path.write_text(json.dumps(figures))
    cells = [
        c.strip() for c in table.render([str(path)]).splitlines()[2].strip(
            '|').split('|')
    ]
    assert cells[14:17] == ['1.500', '1.300 (1.020 cached)', '1.770']
    with pytest.raises(SystemExit):
        table.main([str(tmp_path / 'missing.json')])


def test_recipe_cost_is_both_phases_against_the_students_schedule():
    """12 branch epochs at 1.5 student steps and 24 student epochs at
    1.3 (1.02 cached) against the student's 24: (18 + 31.2) / 24."""
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'det',
                 'prockd_swin-t_retinanet_r50_fpn_36e_coco.py'))
    assert bench.recipe_phases(cfg) == (12, 24, 'epochs')
    seg = Config.fromfile(
        osp.join(
            REPO, 'configs', 'seg',
            'prockd_swin-t_pspnet_r18-d8_4xb2-240k_cityscapes-'
            '512x1024.py'))
    assert bench.recipe_phases(seg) == (80000, 160000, 'iterations')
    ratios = dict(
        branch_only_over_student=1.5,
        frozen_branch_over_student=1.3,
        frozen_branch_cached_over_student=1.02)
    assert bench.recipe_cost((12, 24, 'epochs'), ratios,
                             cached=False) == pytest.approx(49.2 / 24)
    assert bench.recipe_cost((12, 24, 'epochs'), ratios,
                             cached=True) == pytest.approx(
                                 (18 + 24 * 1.02) / 24)
    # a paper config has no phases; a shared head, no branch-only step
    assert bench.recipe_phases(Config.fromfile(CONFIG)) is None
    assert bench.recipe_cost((1, 2, 'epochs'),
                             dict(frozen_branch_over_student=1.0),
                             False) is None


def test_gpu_cost_script_runs_every_row_on_cpu(tmp_path):
    """The device script, at a tiny size on the CPU: seven rows, each from
    its own benchmark_cost.py run, and the options reach each run."""
    out = tmp_path / 'cost'
    proc = run_tool(['analysis_tools/gpu_cost.sh',
                     str(out)],
                    cwd=REPO,
                    DEVICE='cpu',
                    AMP='',
                    DET_SIZE='64 96',
                    SEG_SIZE='64 64',
                    BATCH='4',
                    FRACTION='0.5',
                    ITERS='1',
                    WARMUP='0')
    assert proc.returncode == 0, proc.output[-3000:]
    names = sorted(p.name for p in out.glob('*.json'))
    assert names == [
        '1_retinanet.json', '2_retinanet_fast.json',
        '3_retinanet_augneck.json', '4_pspnet.json', '5_pspnet_fast.json',
        '6_retinanet_two_stage.json', '7_pspnet_two_stage.json'
    ]
    rows = (out / 'table.md').read_text().splitlines()[2:]
    assert len(rows) == 7
    # the two-stage rows give the whole recipe against the student's
    # schedule
    for name in ('6_retinanet_two_stage', '7_pspnet_two_stage'):
        ratios = json.loads((out / f'{name}.json').read_text())['ratios']
        assert ratios['recipe_over_student_schedule'] > 0, name
    # the tiny size is the size measured (mmseg's preprocessor would pad to
    # the config's 512x1024 crop otherwise)
    for name, shape in (('1_retinanet', [4, 3, 64,
                                         96]), ('4_pspnet', [4, 3, 64, 64]),
                        ('5_pspnet_fast', [4, 3, 64, 64])):
        got = json.loads((out / f'{name}.json').read_text())['input_shape']
        assert got == shape, name
    frac = json.loads((out / '5_pspnet_fast.json').read_text())
    assert frac['args']['cfg_options'] == {
        'model.distill_fraction': 0.5,
        'model.proto_head_grad': False
    }
    assert frac['results']['prockd_step']['distilled_images'] == '2/4'
    augneck = json.loads((out / '3_retinanet_augneck.json').read_text())
    assert 'deployed_with_plugin_over_plain' in augneck['ratios']
    assert 'branch_head_pass' in json.loads(
        (out / '1_retinanet.json').read_text())['results']
