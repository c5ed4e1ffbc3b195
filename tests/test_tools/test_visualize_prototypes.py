"""``tools/analysis_tools/visualize_prototypes.py`` without a trained model:
one colour scale for all maps of a figure, the colour bar, and where the
PNG goes. The run on a trained demo checkpoint is in
``tests/test_demo/test_demo_detection.py``.

Run: ``pytest tests/test_tools/test_visualize_prototypes.py``
"""
import os.path as osp

import numpy as np
import pytest
import torch
from tool_runner import REPO, load_module

viewer = load_module(
    osp.join(REPO, 'tools', 'analysis_tools', 'visualize_prototypes.py'),
    'visualize_prototypes')
CONFIG = osp.join(REPO, 'configs', 'demo',
                  'prockd_mobilenetv2_retinanet_demo.py')
# two prototypes on a 2x2 grid (a probability per position): the first
# peaks at 0.2, the second at 0.9
MAPS = torch.tensor([[[0.1, 0.2], [0.2, 0.2]], [[0.9, 0.8], [0.8, 0.8]]])
PHOTO = np.zeros((40, 60, 3), dtype=np.uint8)


@pytest.fixture
def figure():
    import matplotlib.pyplot as plt
    fig = viewer.draw_grid(PHOTO, MAPS, num=2, title='two maps')
    yield fig
    plt.close(fig)


def _heat_images(fig):
    """The heat map of each prototype cell (drawn over the photo)."""
    return [ax.images[1] for ax in fig.axes if len(ax.images) == 2]


def test_common_scale_is_zero_to_the_largest_shown_value():
    norm = viewer.common_norm(MAPS)
    assert (norm.vmin, norm.vmax) == (0.0, pytest.approx(0.9))
    assert float(norm(0.45)) == pytest.approx(0.5)
    assert float(norm(0.9)) == pytest.approx(1.0)
    # only the maps shown set the scale
    assert viewer.common_norm(MAPS[:1]).vmax == pytest.approx(0.2)


def test_maps_with_different_maxima_share_one_colour_scale(figure):
    heats = _heat_images(figure)
    assert len(heats) == 2
    # the heavier map (#1, peak 0.9) first
    assert heats[0].get_array().max() == pytest.approx(0.9)
    assert heats[1].get_array().max() == pytest.approx(0.2)
    for heat in heats:
        assert (heat.norm.vmin, heat.norm.vmax) == (0.0, pytest.approx(0.9))
    # the same probability has the same colour in both maps; stretched to
    # its own range, 0.2 would be the top colour of the second map
    for value in (0.0, 0.2, 0.5, 0.9):
        np.testing.assert_allclose(heats[0].to_rgba(value),
                                   heats[1].to_rgba(value))
    assert not np.allclose(heats[1].to_rgba(0.2), heats[1].to_rgba(0.9))


def test_colour_bar_with_its_label(figure, tmp_path):
    from PIL import Image

    # photo + 2 maps in a 1x3 grid, then the colour bar
    assert len(figure.axes) == 3 + 1
    bar = figure.axes[-1]
    assert 'assignment probability' in bar.get_ylabel()
    assert 'uniform 1/2' in bar.get_ylabel()
    assert bar.get_ylim() == (0.0, pytest.approx(0.9))
    out = tmp_path / 'grid.png'
    viewer.save_atomic(figure, str(out))
    # the grid's 3 cells of 3 inches, and the bar's column, at 100 dpi
    assert Image.open(out).size[0] == 3 * 300 + 100


def test_default_output_is_inside_the_work_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt = osp.join('work_dirs', 'demo', 'epoch_3.pth')
    work_dir = tmp_path / 'work_dirs' / 'demo'

    def out(*extra):
        return viewer.output_path(
            viewer.parse_args([CONFIG, ckpt, 'photos/dog.jpg', *extra]))

    protos = work_dir / 'prototypes'
    assert out() == str(protos / 'dog_level0.png')
    assert out('--level', '1') == str(protos / 'dog_level1.png')
    # a relative --out is taken inside the work dir, an absolute one as is
    assert out('--out', 'p.png') == str(work_dir / 'p.png')
    assert out('--out', str(tmp_path / 'p.png')) == str(tmp_path / 'p.png')
    other = tmp_path / 'elsewhere'
    expected = other / 'prototypes' / 'dog_level0.png'
    assert out('--work-dir', str(other)) == str(expected)
