"""Fixtures of the benchmark tests: a tiny synthetic Fashion-MNIST.

Importing ``fmnist_fakes`` puts ``tools/`` on sys.path, so the test
modules import the tools as ``tools/demo.py`` does (``demo``,
``analysis_tools.proxy``, ``dataset_converters``)."""
import pytest
from fmnist_fakes import synthetic_images, write_idx


@pytest.fixture
def fmnist_dir(tmp_path) -> str:
    """A directory of IDX files: train gzipped, t10k plain."""
    images, labels = synthetic_images()
    root = tmp_path / 'fmnist'
    root.mkdir()
    for prefix, gz in (('train', True), ('t10k', False)):
        write_idx(str(root / f'{prefix}-images-idx3-ubyte'), images, gz)
        write_idx(str(root / f'{prefix}-labels-idx1-ubyte'), labels, gz)
    return str(root)
