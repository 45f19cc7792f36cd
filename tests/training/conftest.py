"""Fixtures shared by the training tests. Fixtures, since tests/ is not a package that test
modules import from."""

import pytest

from imet_kit.data.demo import make_demo_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny demo dataset (40 train / 10 test images, seed 1), made once per test module."""
    root = tmp_path_factory.mktemp("data")
    make_demo_dataset(root, n_train=40, n_test=10, seed=1)
    return root
