"""The experiment-logger interface (`sg_logger`) every logger implements, and a logger that drops everything."""

from __future__ import annotations

import abc
from typing import Any

__all__ = ["AbstractSGLogger", "NullSGLogger"]


class AbstractSGLogger(abc.ABC):
    """Where the trainer sends scalars, images, figures, text and checkpoints.

    `global_step` is the epoch for per-epoch values. Images are uint8 or float arrays/tensors in `data_format`.
    """

    @abc.abstractmethod
    def add_scalar(self, tag: str, scalar_value: float, global_step: int | None = None) -> None:
        """One scalar under `tag`."""

    @abc.abstractmethod
    def add_scalars(self, tag_scalar_dict: dict[str, float], global_step: int | None = None) -> None:
        """Several scalars, each under its own tag."""

    @abc.abstractmethod
    def add_image(self, tag: str, image: Any, data_format: str = "CHW", global_step: int | None = None) -> None:
        """One image [C, H, W] (or as `data_format` says)."""

    @abc.abstractmethod
    def add_images(self, tag: str, images: Any, data_format: str = "NCHW", global_step: int | None = None) -> None:
        """A batch of images [N, C, H, W] (or as `data_format` says)."""

    @abc.abstractmethod
    def add_figure(self, tag: str, figure: Any, global_step: int | None = None) -> None:
        """A matplotlib figure."""

    @abc.abstractmethod
    def add_text(self, tag: str, text_string: str, global_step: int | None = None) -> None:
        """A text entry."""

    @abc.abstractmethod
    def add_checkpoint(self, tag: str, state_dict: dict, global_step: int | None = None) -> None:
        """Store a checkpoint dict under the file name `tag` (e.g. "ckpt_best.pth")."""

    def flush(self) -> None:
        """Push buffered entries to storage (nothing to do by default)."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release files; the logger is not used afterwards."""

    def local_dir(self) -> str | None:
        """The local directory the logger writes to, if any."""
        return None


class NullSGLogger(AbstractSGLogger):
    """Accepts every call and does nothing (ranks other than 0, and tests)."""

    def add_scalar(self, tag, scalar_value, global_step=None):
        pass

    def add_scalars(self, tag_scalar_dict, global_step=None):
        pass

    def add_image(self, tag, image, data_format="CHW", global_step=None):
        pass

    def add_images(self, tag, images, data_format="NCHW", global_step=None):
        pass

    def add_figure(self, tag, figure, global_step=None):
        pass

    def add_text(self, tag, text_string, global_step=None):
        pass

    def add_checkpoint(self, tag, state_dict, global_step=None):
        pass

    def close(self):
        pass
