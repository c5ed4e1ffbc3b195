"""Shared fixtures; helpers live in :mod:`mmprockd.testing` and
:mod:`mmprockd.utils.offline` (unique module names: pytest imports every
``conftest.py`` as ``conftest``)."""
import warnings

import pytest

import mmprockd  # noqa: F401  (compat fixes before any model import)
from mmprockd.utils.offline import make_offline

warnings.filterwarnings('ignore', message='mmprockd: torchvision')


@pytest.fixture
def offline():
    return make_offline
