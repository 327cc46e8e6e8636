"""Shared test helpers: the reference fixtures beside the checkout, and deterministic torch settings."""

from pathlib import Path

import pytest
import torch

# weights_server: a local HTTP server and an empty weights cache for download tests (fixtures).
pytest_plugins = ["weights_server"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
SG_MODELS_DIR = SHARED_DIR / "fixtures" / "sg_models"

torch.set_flush_denormal(True)


@pytest.fixture
def sg_models_dir() -> Path:
    """The SuperGradients model fixtures folder; skips the test when ../shared is not beside the checkout."""
    if not SG_MODELS_DIR.is_dir():
        pytest.skip(f"reference fixtures not found at {SG_MODELS_DIR} (they live in ../shared beside the clone)")
    return SG_MODELS_DIR
