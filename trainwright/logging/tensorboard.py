"""The default experiment logger: TensorBoard event files and checkpoints in the experiment directory."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from trainwright.logging.base import AbstractSGLogger
from trainwright.logging.files import atomic_torch_save
from trainwright.logging.names import check_file_name

__all__ = ["TensorBoardSGLogger"]


def _to_numpy(images: Any) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        return images.detach().cpu().numpy()
    return np.asarray(images)


class TensorBoardSGLogger(AbstractSGLogger):
    """Writes TensorBoard events under `experiment_dir` and checkpoints there atomically (name "base_sg_logger").

    Extra keyword arguments of the reference system's logger (project_name, launch_tensorboard, ...) are accepted
    and ignored, so recipes written for it keep working.
    """

    def __init__(self, experiment_dir: str | os.PathLike, flush_secs: int = 30, **ignored: Any):
        from torch.utils.tensorboard import SummaryWriter  # tensorboard is a heavy import; only when used

        self.experiment_dir = os.fspath(experiment_dir)
        os.makedirs(self.experiment_dir, exist_ok=True)
        self.writer = SummaryWriter(log_dir=self.experiment_dir, flush_secs=flush_secs)

    def add_scalar(self, tag, scalar_value, global_step=None):
        self.writer.add_scalar(tag, float(scalar_value), global_step)

    def add_scalars(self, tag_scalar_dict, global_step=None):
        for tag, value in tag_scalar_dict.items():
            self.writer.add_scalar(tag, float(value), global_step)

    def add_image(self, tag, image, data_format="CHW", global_step=None):
        self.writer.add_image(tag, _to_numpy(image), global_step, dataformats=data_format)

    def add_images(self, tag, images, data_format="NCHW", global_step=None):
        self.writer.add_images(tag, _to_numpy(images), global_step, dataformats=data_format)

    def add_figure(self, tag, figure, global_step=None):
        self.writer.add_figure(tag, figure, global_step)

    def add_text(self, tag, text_string, global_step=None):
        self.writer.add_text(tag, text_string, global_step)

    def add_checkpoint(self, tag, state_dict, global_step=None):
        atomic_torch_save(state_dict, os.path.join(self.experiment_dir, check_file_name("checkpoint name", tag)))

    def flush(self):
        self.writer.flush()

    def close(self):
        self.writer.close()

    def local_dir(self):
        return self.experiment_dir
