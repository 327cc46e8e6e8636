"""Shared test helpers: the reference fixtures beside the checkout, and deterministic torch settings."""

import signal
import warnings
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


_INTERRUPT_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@pytest.fixture(autouse=True)
def interrupt_signals_left_as_found(request):
    """Every test starts with Python's Ctrl-C handler and SIGINT/SIGTERM deliverable (pytest-xdist's workers
    start with SIGINT ignored). A test that leaves them otherwise (a handler not handed back, a blocked signal) is
    named in a warning: the interrupt tests must not depend on which tests ran before them in the same process."""
    _restore_interrupt_signals()
    yield
    handler = signal.getsignal(signal.SIGINT)
    blocked = _INTERRUPT_SIGNALS & signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if handler is not signal.default_int_handler or blocked:
        warnings.warn(f"{request.node.nodeid} left SIGINT's handler {handler!r}, blocked {sorted(blocked)}",
                      stacklevel=1)


def _restore_interrupt_signals() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _INTERRUPT_SIGNALS)
