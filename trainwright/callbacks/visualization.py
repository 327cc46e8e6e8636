"""Callback that logs drawn detection predictions and ground truth every few epochs.

Drawing is an optional output: a failure there is logged once and never ends the run (`OptionalOutput`).
The epoch in file names and TensorBoard steps is 1-based, as everywhere the user sees it.
"""

from __future__ import annotations

import os

import numpy as np

from trainwright.callbacks.base import Phase, PhaseCallback, PhaseContext
from trainwright.distributed import is_main_process
from trainwright.logging.optional import OptionalOutput
from trainwright.visualization.detection import DetectionVisualization, write_images


class BatchVisualizationCallback(PhaseCallback):
    """Base of the drawing callbacks: runs ``draw(context, stop)`` at ``phase`` on batch ``batch_idx`` of every
    ``freq``-th epoch (0-based epochs 0, freq, 2*freq, ...: epochs 1, freq + 1, ... as shown), for images
    [0, stop) of the batch (stop None: all). An exception in ``draw`` is logged once and the run goes on.

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
        self.drawing_output = OptionalOutput(f"{self.kind} drawings of the {self.phase.name.lower()} batch")
        self.tensorboard_output = OptionalOutput(f"TensorBoard images of the {self.kind} drawings")

    @property
    def tag(self) -> str:
        return f"{self.phase.name}_{self.kind}_batch_{self.batch_idx}"

    def __call__(self, context: PhaseContext) -> None:
        if context.epoch is None or context.epoch % self.freq != 0 or context.batch_idx != self.batch_idx:
            return
        if not is_main_process():  # drawings are files of the run: rank 0 writes them
            return
        with self.drawing_output:
            self.draw(context, None if self.last_img_idx_in_batch == -1 else self.last_img_idx_in_batch)

    def log_images(self, context: PhaseContext, images: np.ndarray) -> None:
        """images [N, H, W, 3] RGB uint8 to the sg_logger under ``tag``, at step epoch + 1 (a failure is logged once)."""
        if context.sg_logger is None:
            return
        with self.tensorboard_output:
            context.sg_logger.add_images(tag=self.tag, images=images, data_format="NHWC", global_step=context.epoch + 1)

    def draw(self, context: PhaseContext, stop: int | None) -> None:
        raise NotImplementedError


class DetectionVisualizationCallback(BatchVisualizationCallback):
    """At ``phase``, on batch ``batch_idx`` of every ``freq``-th epoch, draw predictions and ground truth.

    phase: when to run, usually Phase.VALIDATION_BATCH_END.
    freq: every how many epochs (0-based epochs 0, freq, 2*freq, ...).
    post_prediction_callback: turns context.preds into per-image [n, 6] (x1, y1, x2, y2, score, class) boxes.
    classes: class names, by class index.
    batch_idx: which batch of the epoch to draw.
    last_img_idx_in_batch: draw images [0, last_img_idx_in_batch) of the batch; -1 draws them all.
    save_images (keyword): also write the JPEGs to <checkpoints_dir_path>/visualizations/epoch_<NNN>_<i>.jpg,
    NNN the 1-based epoch.
    The images go to context.sg_logger.add_images(tag, images [N, H, W, 3] RGB uint8, data_format="NHWC",
    global_step=epoch + 1) under the tag "<phase name>_detection_batch_<batch_idx>".
    Boxes are clipped to the image and non-finite ones skipped (`trainwright.visualization.drawable_boxes`).
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
        self.log_images(context, np.stack([image[..., ::-1] for image in images]))
        if self.save_images and context.checkpoints_dir_path:
            folder = os.path.join(context.checkpoints_dir_path, "visualizations")
            write_images(images, folder, f"epoch_{context.epoch + 1:03d}")
