"""The module that is traced into ONNX: detector -> (boxes, scores), optionally followed by NMS in the graph.

In-graph NMS keeps exactly what ``trainwright.ops.nms.non_max_suppression(decoded, conf, iou,
multi_label_per_box=True, with_confidence=True, max_predictions=M)`` keeps (ties in score aside): every
(box, class) pair whose score (objectness x class score for YOLOX) is above ``conf`` is a candidate, ONNX
``NonMaxSuppression`` runs per image and per class (boxes of different classes never suppress each other, so
one box may be kept for several classes), and the M best kept pairs of each image are returned by decreasing
score: ``detections [B, M, 6]`` (x1, y1, x2, y2, score, class; rows past ``num_detections`` are zeros) and
``num_detections [B]`` (int64).
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

__all__ = ["ExportGraph", "InGraphNMS", "RAW_OUTPUTS", "NMS_OUTPUTS", "INPUT_NAME"]

INPUT_NAME = "images"
RAW_OUTPUTS = ("boxes", "scores")
NMS_OUTPUTS = ("detections", "num_detections")


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX NonMaxSuppression: boxes [B, N, 4] xyxy, scores [B, C, N] -> selected [K, 3] (image, class, box)."""

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_per_class: int, iou: float, conf: float) -> Tensor:
        num_classes = scores.shape[1]
        image, cls, box = (scores > conf).nonzero(as_tuple=True)
        group = image * num_classes + cls
        keep = torchvision.ops.batched_nms(boxes[image, box].float(), scores[image, cls, box].float(), group, iou)
        # keep is sorted by score; the rank of each kept box inside its (image, class) group caps it.
        order = torch.argsort(group[keep], stable=True)
        sorted_groups = group[keep][order]
        first = torch.searchsorted(sorted_groups, sorted_groups, right=False)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=order.device) - first
        keep = keep[rank < max_per_class]
        keep = keep[torch.argsort(group[keep], stable=True)]  # ONNX order: by image, class, then score
        return torch.stack([image[keep], cls[keep], box[keep]], dim=1)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class: int, iou: float, conf: float):
        return g.op("NonMaxSuppression", boxes, scores,
                    g.op("Constant", value_t=torch.tensor([max_per_class], dtype=torch.int64)),
                    g.op("Constant", value_t=torch.tensor([iou], dtype=torch.float32)),
                    g.op("Constant", value_t=torch.tensor([conf], dtype=torch.float32)))


class InGraphNMS(nn.Module):
    """Per-class NMS as ONNX ops: boxes [B, N, 4], scores [B, N, C] -> detections [B, M, 6], num_detections [B].

    Args:
        conf: a (box, class) pair is a candidate when its score is above this.
        iou: a box is dropped when its IoU with a better box of the same class is above this.
        max_predictions: M, the most detections kept per image.
    """

    def __init__(self, conf: float, iou: float, max_predictions: int):
        super().__init__()
        self.conf, self.iou, self.max_predictions = float(conf), float(iou), int(max_predictions)

    def forward(self, boxes: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
        boxes, scores = boxes.float(), scores.float()  # ONNX NonMaxSuppression takes float32 only
        batch_ones = torch.ones_like(boxes[:, 0, 0], dtype=torch.int64)
        num_boxes, num_classes, top = boxes.shape[1], scores.shape[2], self.max_predictions
        selected = _NonMaxSuppression.apply(boxes, scores.transpose(1, 2), top, self.iou, self.conf)
        image, cls, box = selected[:, 0], selected[:, 1], selected[:, 2]
        kept_scores = scores.reshape(-1)[(image * num_boxes + box) * num_classes + cls]
        kept_boxes = boxes.reshape(-1, 4)[image * num_boxes + box]
        # Rank the kept pairs per image: a [B, K + M] score table, -1 where a pair belongs to another image, with
        # M padding columns so that top-M always exists.
        image_ids = batch_ones.cumsum(0) - 1
        table = torch.where(image[None, :] == image_ids[:, None], kept_scores[None, :], -torch.ones_like(kept_scores))
        padding = -torch.ones_like(image_ids, dtype=table.dtype)[:, None].expand(-1, top)
        table = torch.cat([table, padding], dim=1)
        best, index = table.topk(top, dim=1)
        valid = best >= 0
        rows = torch.cat([kept_boxes, cls[:, None].float()], dim=1)
        rows = torch.cat([rows, rows.new_zeros(top, 5)], dim=0)[index]  # [B, M, 5]
        detections = torch.cat([rows[..., :4], best[..., None], rows[..., 4:]], dim=-1)
        detections = torch.where(valid[..., None], detections, torch.zeros_like(detections))
        return detections, valid.sum(dim=1)


class ExportGraph(nn.Module):
    """images [B, 3, H, W] -> (boxes [B, N, 4], scores [B, N, C]), or NMS's (detections, num_detections)."""

    def __init__(self, model: nn.Module, nms: InGraphNMS | None = None):
        super().__init__()
        self.model, self.nms = model, nms

    @property
    def output_names(self) -> tuple[str, str]:
        return NMS_OUTPUTS if self.nms is not None else RAW_OUTPUTS

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        boxes, scores = self.model.boxes_and_scores(self.model(images))
        if self.nms is None:
            return boxes, scores
        return self.nms(boxes, scores)
