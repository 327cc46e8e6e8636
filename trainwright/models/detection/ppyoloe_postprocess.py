"""PP-YOLOE post-processing: decoded boxes and class scores -> per-image boxes after NMS."""

from __future__ import annotations

import torch
from torch import Tensor

from trainwright.models.detection.nms_threads import nms_threads
from trainwright.models.detection.postprocess import DetectionPostPredictionCallback
from trainwright.ops.boxes import xyxy2cxcywh
from trainwright.ops.nms import non_max_suppression


class PPYoloEPostPredictionCallback(DetectionPostPredictionCallback):
    """Score filter, top-k and greedy per-class NMS for PP-YOLOE's eval output.

    :param score_threshold: a (box, class) pair is a candidate when its class score is above this.
    :param nms_threshold: IoU threshold of the per-class NMS.
    :param nms_top_k: best candidates per image sent to NMS (None: all).
    :param max_predictions: most boxes returned per image (None: all).
    :param multi_label_per_box: every class above the threshold makes a candidate (else only a box's best class).

    The defaults are those of the reference COCO recipe.
    """

    def __init__(self, score_threshold: float = 0.01, nms_threshold: float = 0.7, nms_top_k: int | None = 1000,
                 max_predictions: int | None = 300, multi_label_per_box: bool = True):
        super().__init__()
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.nms_top_k = nms_top_k
        self.max_predictions = max_predictions
        self.multi_label_per_box = multi_label_per_box

    def forward(self, outputs, device: str | torch.device | None = None) -> list[Tensor | None]:
        """outputs: the model's eval output ((boxes [B, N, 4], scores [B, N, C]), raw) or the (boxes, scores) pair.

        Returns B entries: [n, 6] (x1, y1, x2, y2, score, class) in decreasing score order on ``device``
        (default: the input's), or None for an image without a box.
        """
        boxes, scores = _decoded(outputs)
        # The project's NMS reads rows (cx, cy, w, h, objectness, class scores); objectness 1 lets scores decide.
        rows = torch.cat([xyxy2cxcywh(boxes), torch.ones_like(scores[..., :1]), scores], dim=-1)
        results = non_max_suppression(rows, conf_thres=self.score_threshold, iou_thres=self.nms_threshold,
                                      multi_label_per_box=self.multi_label_per_box, with_confidence=False,
                                      nms_top_k=self.nms_top_k, max_predictions=self.max_predictions,
                                      executor=nms_threads())
        if device is not None:
            results = [None if r is None else r.to(device) for r in results]
        return results


def _decoded(outputs) -> tuple[Tensor, Tensor]:
    """(boxes [B, N, 4], scores [B, N, C]) from the eval output or the decoded pair, with a clear error otherwise."""
    pair = outputs
    if isinstance(outputs, (tuple, list)) and len(outputs) == 2 and isinstance(outputs[0], (tuple, list)):
        pair = outputs[0]
    if isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(t, Tensor) for t in pair):
        boxes, scores = pair
        if boxes.ndim == 3 and boxes.shape[-1] == 4 and scores.ndim == 3 and scores.shape[:2] == boxes.shape[:2]:
            return boxes, scores
        raise ValueError(f"PP-YOLOE output must hold boxes [B, N, 4] and scores [B, N, C], got "
                         f"{tuple(boxes.shape)} and {tuple(scores.shape)}")
    raise ValueError(f"expected PP-YOLOE eval output ((boxes, scores), raw) or (boxes, scores), got "
                     f"{type(outputs).__name__}")
