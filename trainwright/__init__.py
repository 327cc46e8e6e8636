"""trainwright: a small, fast PyTorch training toolkit for computer-vision models, detection first."""

from trainwright._version import __version__

__all__ = ["__version__", "Trainer"]


def __getattr__(name: str):
    # The Trainer pulls in the whole training stack; import it only when asked for.
    if name == "Trainer":
        from trainwright.training import Trainer

        return Trainer
    raise AttributeError(f"module 'trainwright' has no attribute {name!r}")
