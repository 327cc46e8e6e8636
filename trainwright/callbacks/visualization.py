"""Callback that logs drawn detection predictions and ground truth every few epochs."""

from __future__ import annotations

import os

import numpy as np

from trainwright.callbacks.base import Phase, PhaseCallback, PhaseContext
from trainwright.distributed import is_main_process
from trainwright.visualization.detection import DetectionVisualization, write_images


class BatchVisualizationCallback(PhaseCallback):
    """Base of the drawing callbacks: runs ``draw(context, stop)`` at ``phase`` on batch ``batch_idx`` of every
    ``freq``-th epoch (epochs 0, freq, 2*freq, ...), for images [0, stop) of the batch (stop None: all).

    Subclasses set ``kind`` (the logger tag is "<phase name>_<kind>_batch_<batch_idx>") and implement ``draw``.
    """

    kind = "batch"

    def __init__(self, phase: Phase | str, freq: int, batch_idx: int = 0, last_img_idx_in_batch: int = -1):
        super().__init__(phase)
        if int(freq) < 1:
            raise ValueError(f"freq must be a positive number of epochs, got {freq!r}")
        if last_img_idx_in_batch != -1 and last_img_idx_in_batch < 1:
            raise ValueError(f"last_img_idx_in_batch must be -1 (whole batch) or >= 1, got {last_img_idx_in_batch!r}")
        self.freq = int(freq)
        self.batch_idx = batch_idx
        self.last_img_idx_in_batch = last_img_idx_in_batch

    @property
    def tag(self) -> str:
        return f"{self.phase.name}_{self.kind}_batch_{self.batch_idx}"

    def __call__(self, context: PhaseContext) -> None:
        if context.epoch is None or context.epoch % self.freq != 0 or context.batch_idx != self.batch_idx:
            return
        if not is_main_process():  # drawings are files of the run: rank 0 writes them
            return
        self.draw(context, None if self.last_img_idx_in_batch == -1 else self.last_img_idx_in_batch)

    def draw(self, context: PhaseContext, stop: int | None) -> None:
        raise NotImplementedError


class DetectionVisualizationCallback(BatchVisualizationCallback):
    """At ``phase``, on batch ``batch_idx`` of every ``freq``-th epoch, draw predictions and ground truth.

    phase: when to run, usually Phase.VALIDATION_BATCH_END.
    freq: every how many epochs (epochs 0, freq, 2*freq, ...).
    post_prediction_callback: turns context.preds into per-image [n, 6] (x1, y1, x2, y2, score, class) boxes.
    classes: class names, by class index.
    batch_idx: which batch of the epoch to draw.
    last_img_idx_in_batch: draw images [0, last_img_idx_in_batch) of the batch; -1 draws them all.
    save_images (keyword): also write the JPEGs to <checkpoints_dir_path>/visualizations/epoch_<epoch>_<i>.jpg.
    The images go to context.sg_logger.add_images(tag, images [N, H, W, 3] RGB uint8, data_format="NHWC",
    global_step=epoch) under the tag "<phase name>_detection_batch_<batch_idx>".
    """

    kind = "detection"

    def __init__(self, phase: Phase | str, freq: int, post_prediction_callback, classes: list, batch_idx: int = 0,
                 last_img_idx_in_batch: int = -1, *, save_images: bool = False):
        super().__init__(phase, freq, batch_idx, last_img_idx_in_batch)
        self.post_prediction_callback = post_prediction_callback
        self.classes = list(classes)
        self.save_images = save_images

    def draw(self, context: PhaseContext, stop: int | None) -> None:
        inputs = context.inputs[:stop]
        preds = self.post_prediction_callback(context.preds, device=context.device)[: len(inputs)]
        images = DetectionVisualization.visualize_batch(inputs, preds, context.target, self.batch_idx, self.classes)
        if context.sg_logger is not None:
            rgb = np.stack([image[..., ::-1] for image in images])
            context.sg_logger.add_images(tag=self.tag, images=rgb, data_format="NHWC", global_step=context.epoch)
        if self.save_images and context.checkpoints_dir_path:
            folder = os.path.join(context.checkpoints_dir_path, "visualizations")
            write_images(images, folder, f"epoch_{context.epoch:03d}")
