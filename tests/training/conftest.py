"""Fixtures of the trainer tests."""

import pytest
from trainer_helpers import make_loaders


@pytest.fixture
def loaders():
    return make_loaders()
