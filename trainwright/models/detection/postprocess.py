"""Post-processing of detector output into per-image boxes: the base class, and YOLOX's confidence filter + NMS."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainwright.models.detection.nms_threads import nms_threads
from trainwright.ops.nms import NMS_Type, matrix_non_max_suppression, non_max_suppression

__all__ = ["DetectionPostPredictionCallback", "YoloXPostPredictionCallback"]


class DetectionPostPredictionCallback(ABC, nn.Module):
    """Turns a detector's raw output into final boxes.

    ``forward(x, device)`` returns a list with one entry per image: a float tensor [n, 6] of
    (x1, y1, x2, y2, confidence, class) on ``device``, or None when the image has no box.
    Implementations never modify ``x``.
    """

    def __init__(self):
        super().__init__()

    @abstractmethod
    def forward(self, x, device: str):
        """Post-process the model output ``x`` into per-image detections on ``device``."""


class YoloXPostPredictionCallback(DetectionPostPredictionCallback):
    """Confidence filter + NMS for YOLOX's eval output; its defaults are the NMS defaults of every command.

    Args:
        conf: confidence threshold (objectness, then class score times objectness when with_confidence).
        iou: IoU threshold of the greedy per-class NMS.
        classes: class ids to keep (None keeps every class).
        nms_top_k: best candidates per image sent to NMS (None: all; for matrix NMS, its default 500).
        max_predictions: most boxes returned per image (None: all).
        multi_label_per_box: one candidate per class above ``conf`` (else only the best class of a box).
        with_confidence: multiply class scores by the objectness.
        nms_type: NMS_Type.ITERATIVE (greedy, exact) or NMS_Type.MATRIX.
    """

    def __init__(
        self,
        conf: float = 0.001,
        iou: float = 0.6,
        classes: Sequence[int] | None = None,
        nms_top_k: int | None = 1000,
        max_predictions: int | None = 300,
        multi_label_per_box: bool = True,
        with_confidence: bool = True,
        nms_type: NMS_Type = NMS_Type.ITERATIVE,
    ):
        super().__init__()
        self.conf = conf
        self.iou = iou
        self.classes = None if classes is None else [int(c) for c in classes]
        self.nms_top_k = nms_top_k
        self.max_predictions = max_predictions
        self.multi_label_per_box = multi_label_per_box
        self.with_confidence = with_confidence
        self.nms_type = NMS_Type(nms_type)

    def forward(self, x, device: str | torch.device | None = None) -> list[Tensor | None]:
        """Per-image boxes of one batch; the images of a CPU batch run concurrently on `nms_threads()`.

        Args:
            x: the model's eval output (decoded [B, N, 5 + C], raw maps) or the decoded tensor alone.
            device: where the results go (default: x's device).

        Returns:
            B entries: [n, 6] (x1, y1, x2, y2, score, class), or None for an image without a box.
        """
        decoded = x[0] if isinstance(x, (tuple, list)) else x
        if not isinstance(decoded, Tensor) or decoded.ndim != 3 or decoded.shape[-1] < 6:
            shape = tuple(decoded.shape) if isinstance(decoded, Tensor) else type(decoded).__name__
            raise ValueError(f"x must be YOLOX output with decoded predictions [B, N, 5 + C], got {shape}")
        class_map = None
        if self.classes is not None:
            # Keep only the wanted class columns; NMS is per class, so this equals filtering its output.
            class_map = torch.tensor(self.classes, device=decoded.device, dtype=torch.long)
            if class_map.numel() and (class_map.min() < 0 or class_map.max() >= decoded.shape[-1] - 5):
                raise ValueError(f"classes {self.classes} out of range for {decoded.shape[-1] - 5} classes")
            decoded = torch.cat([decoded[..., :5], decoded[..., 5 + class_map]], dim=-1)
            if not self.classes:
                return [None] * decoded.shape[0]
        if self.nms_type == NMS_Type.MATRIX:
            # Matrix NMS builds [B, k, k] matrices, so "no cap" falls back to its own default k.
            top_k = {} if self.nms_top_k is None else {"max_num_of_detections": self.nms_top_k}
            results = matrix_non_max_suppression(decoded, conf_thres=self.conf, **top_k)
            results = [r if r.shape[0] else None for r in results]
            if self.max_predictions is not None:
                results = [None if r is None else r[: self.max_predictions] for r in results]
        else:
            results = non_max_suppression(decoded, conf_thres=self.conf, iou_thres=self.iou,
                                          multi_label_per_box=self.multi_label_per_box,
                                          with_confidence=self.with_confidence, nms_top_k=self.nms_top_k,
                                          max_predictions=self.max_predictions, executor=nms_threads())
        if class_map is not None:
            results = [None if r is None else _remap_classes(r, class_map) for r in results]
        if device is not None:
            results = [None if r is None else r.to(device) for r in results]
        return results


def _remap_classes(rows: Tensor, class_map: Tensor) -> Tensor:
    """Replace column-position class ids [n] in rows [n, 6] by the original ids (a new tensor)."""
    original = class_map[rows[:, 5].long()].to(rows.dtype)
    return torch.cat([rows[:, :5], original[:, None]], dim=1)
