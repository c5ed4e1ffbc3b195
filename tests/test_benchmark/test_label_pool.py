"""tools/analysis_tools/label_pool.py [ours]: label propagation over the
frozen teacher's features labels an unlabelled classification pool."""
import hashlib
import os.path as osp

import numpy as np
import pytest
import torch
from analysis_tools.label_pool import label_pool, propagate, read_ann

CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'benchmark', 'prockd_mobilenetv2_resnet18-tiny_1000i_fmnist-64px.py')


def test_propagate_follows_the_clusters():
    """Two tight clusters, one labelled point each (class 3 and class 7):
    every other point takes its own cluster's label, whatever its order."""
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([5., 0., 0., 1.]) + 0.1 * torch.randn(5, 4, generator=g)
    b = torch.tensor([0., 5., 0., 1.]) + 0.1 * torch.randn(5, 4, generator=g)
    feats = torch.cat([a, b])[[0, 5, 1, 6, 2, 7, 3, 8, 4, 9]]
    labels = torch.tensor([3, 7] + [-1] * 8)
    out = propagate(feats, labels, num_classes=10, k=3)
    # unlabelled rows 2..9 alternate between the clusters a, b, a, b...
    assert out.tolist() == [3, 7] * 4


def test_propagate_by_hand_step_by_step():
    """Four points; after standardising, the cosines are 0-1 0.87, 1-2
    0.88, 0-2 0.53, and row 3 is negative with all (no edge: weights are
    the clamped cosine cubed). With k=1 the graph is the chain 0-1-2.
    Rows 0 (class 2) and 3 (class 1) are labelled. One step of
    z = alpha W z + y gives row 1 class 2 from row 0, row 2 nothing yet
    (its only neighbour, row 1, started empty: arg max of zeros is class
    0); a second step passes class 2 on to row 2. Class 1 reaches no
    one."""
    feats = torch.tensor([[3., .2], [3., 1.], [2., 2.], [-8., -3.2]])
    labels = torch.tensor([2, -1, -1, 1])
    out = propagate(feats, labels, num_classes=3, k=1, alpha=0.5, iters=1)
    assert out.tolist() == [2, 0]
    out = propagate(feats, labels, num_classes=3, k=1, alpha=0.5, iters=2)
    assert out.tolist() == [2, 2]


def test_propagate_refuses_a_large_k_alpha_1_and_no_labelled_image():
    feats = torch.randn(4, 3)
    with pytest.raises(ValueError, match='k must be'):
        propagate(feats, torch.tensor([0, -1, -1, -1]), 2, k=4)
    with pytest.raises(ValueError, match='alpha'):
        propagate(feats, torch.tensor([0, -1, -1, -1]), 2, k=1, alpha=1.)
    with pytest.raises(ValueError, match='no labelled image'):
        propagate(feats, torch.tensor([-1] * 4), 2, k=1)


def _data(tmp_path):
    from dataset_converters.build_fmnist_cls import build
    from test_proxy_benchmark import _random_fmnist
    data = str(tmp_path / 'cls')
    build(
        _random_fmnist(tmp_path),
        data,
        20,
        10,
        10,
        size=32,
        seed=0,
        num_unlabelled=20)
    return data


def _digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_label_pool_writes_a_label_for_every_pool_image(tmp_path):
    """The real teacher (the shipped MobileNetV2) on a small built pool:
    the output lists the pool's images in its order, each with a class,
    and leaves its inputs as they were."""
    data = _data(tmp_path)
    pool = osp.join(data, 'meta', 'unlabelled.txt')
    before = _digest(pool), _digest(osp.join(data, 'meta', 'train.txt'))
    out = label_pool(CONFIG, data, input_scale=2.0, k=5)
    assert out == osp.join(data, 'meta', 'unlabelled_lp.txt')
    rows, pool_rows = read_ann(out), read_ann(pool)
    assert [p for p, _ in rows] == [p for p, _ in pool_rows]
    assert len(rows) == 20 and all(0 <= y < 10 for _, y in rows)
    assert not osp.exists(out + '.tmp')
    assert (_digest(pool), _digest(osp.join(data, 'meta',
                                            'train.txt'))) == before
    # the same images give the same labels
    again = label_pool(CONFIG, data, input_scale=2.0, k=5, out='meta/b.txt')
    np.testing.assert_array_equal([y for _, y in read_ann(again)],
                                  [y for _, y in rows])


def test_label_pool_refuses_bad_input_before_any_work(tmp_path):
    data = _data(tmp_path)
    with pytest.raises(ValueError, match='input of this tool'):
        label_pool(CONFIG, data, out='meta/unlabelled.txt')
    with pytest.raises(ValueError, match='input of this tool'):
        label_pool(CONFIG, data, out='meta/train.txt')
    with pytest.raises(FileNotFoundError, match='nothere.txt'):
        label_pool(CONFIG, data, pool='meta/nothere.txt')
    with open(osp.join(data, 'meta', 'bad.txt'), 'w') as f:
        f.write('train/000000.png 3 extra\n')
    with pytest.raises(ValueError, match='bad.txt line 1'):
        label_pool(CONFIG, data, labelled='meta/bad.txt')
    # a labelled file that is really the pool (label -1)
    with pytest.raises(ValueError, match='outside 0..9'):
        label_pool(
            CONFIG, data, labelled='meta/unlabelled.txt', out='meta/x.txt')
    with pytest.raises(KeyError, match='model.teacher'):
        label_pool(
            osp.join(
                osp.dirname(CONFIG),
                'resnet18-tiny_1000i_fmnist-64px_student.py'),
            data,
            out='meta/x.txt')
