"""Callback that logs input | predicted mask | ground-truth mask panels of a binary segmentation batch."""

from __future__ import annotations

import numpy as np
import torch

from trainwright.callbacks.base import PhaseContext
from trainwright.callbacks.visualization import BatchVisualizationCallback
from trainwright.visualization.detection import undo_image_preprocessing

IGNORED_GRAY = 128  # target values other than 0 and 1 (an ignore label) are drawn gray


def binary_segmentation_panels(inputs: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Inputs [B, 3, H, W], logits [B, 1, H, W], target [B, H, W] or [B, 1, H, W] -> uint8 RGB [B, H, 3W, 3].

    Each row of panels is: the input image | the prediction (white where sigmoid(logit) > 0.5) | the ground truth
    (white where target == 1, black where 0, gray elsewhere).
    """
    if logits.ndim != 4 or logits.shape[1] != 1 or logits.shape[0] != inputs.shape[0] \
            or logits.shape[2:] != inputs.shape[2:]:  # fmt: skip
        raise ValueError(f"preds must be logits [B, 1, H, W] matching inputs {tuple(inputs.shape)}, "
                         f"got {tuple(logits.shape)}")  # fmt: skip
    if target.ndim == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape != (inputs.shape[0], *inputs.shape[2:]):
        raise ValueError(f"target must be [B, H, W] or [B, 1, H, W] matching inputs {tuple(inputs.shape)}, "
                         f"got {tuple(target.shape)}")  # fmt: skip
    images = undo_image_preprocessing(inputs)[..., ::-1]  # BGR -> RGB
    predicted = (logits[:, 0].detach() > 0).cpu()  # sigmoid(x) > 0.5  <=>  x > 0
    target = target.detach().cpu()
    truth = torch.full(target.shape, IGNORED_GRAY, dtype=torch.uint8)
    truth[target == 0] = 0
    truth[target == 1] = 255
    masks = [predicted.to(torch.uint8) * 255, truth]
    mask_rgb = [np.repeat(m.numpy()[..., None], 3, axis=-1) for m in masks]
    return np.ascontiguousarray(np.concatenate([images, *mask_rgb], axis=2))


class BinarySegmentationVisualizationCallback(BatchVisualizationCallback):
    """At ``phase``, on batch ``batch_idx`` of every ``freq``-th epoch, log input | prediction | ground truth.

    phase: when to run, usually Phase.VALIDATION_BATCH_END (it reads context.inputs, preds and target).
    freq: every how many epochs (epochs 0, freq, 2*freq, ...).
    batch_idx: which batch of the epoch to draw.
    last_img_idx_in_batch: draw images [0, last_img_idx_in_batch) of the batch; -1 draws them all.
    context.preds is logits [B, 1, H, W], or a tuple/list whose first element is. The panels go to
    context.sg_logger.add_images(tag, images [N, H, 3W, 3] RGB uint8, data_format="NHWC", global_step=epoch)
    under the tag "<phase name>_segmentation_batch_<batch_idx>".
    """

    kind = "segmentation"

    def draw(self, context: PhaseContext, stop: int | None) -> None:
        if context.sg_logger is None:
            return
        preds = context.preds[0] if isinstance(context.preds, (tuple, list)) else context.preds
        panels = binary_segmentation_panels(context.inputs[:stop], preds[:stop], context.target[:stop])
        self.log_images(context, panels)
