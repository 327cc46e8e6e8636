"""Run an exported detector with onnxruntime behind the interface the PyTorch path uses (predict, evaluate)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from trainwright.models.detection.nms_threads import nms_threads
from trainwright.models.detection.postprocess import DetectionPostPredictionCallback
from trainwright.models.export.checks import inference_session, run_onnx
from trainwright.models.export.metadata import ExportInfo, read_metadata
from trainwright.ops.boxes import xyxy2cxcywh
from trainwright.ops.nms import non_max_suppression

__all__ = ["OnnxDetector", "BoxesScoresPostPrediction", "InGraphNMSPostPrediction", "is_onnx_file"]


def is_onnx_file(path: str | os.PathLike) -> bool:
    """Whether `path` names an ONNX file (by its suffix)."""
    return Path(path).suffix.lower() == ".onnx"


class BoxesScoresPostPrediction(DetectionPostPredictionCallback):
    """NMS over (boxes [B, N, 4] xyxy, scores [B, N, C]), the same as YoloXPostPredictionCallback on YOLOX output.

    Rows (cx, cy, w, h, 1, scores...) go through ``non_max_suppression(with_confidence=True)``: with an
    objectness of 1 the candidates and scores are exactly those of the model's own output.
    """

    def __init__(self, conf: float = 0.001, iou: float = 0.6, max_predictions: int | None = 300,
                 nms_top_k: int | None = 1000, multi_label_per_box: bool = True):
        super().__init__()
        self.conf, self.iou, self.max_predictions = conf, iou, max_predictions
        self.nms_top_k, self.multi_label_per_box = nms_top_k, multi_label_per_box

    def forward(self, x, device=None) -> list[Tensor | None]:
        boxes, scores = x
        rows = torch.cat([xyxy2cxcywh(boxes.float()), torch.ones_like(scores[..., :1]).float(), scores.float()], -1)
        results = non_max_suppression(rows, self.conf, self.iou, self.multi_label_per_box, with_confidence=True,
                                      nms_top_k=self.nms_top_k, max_predictions=self.max_predictions,
                                      executor=nms_threads())
        return results if device is None else [None if r is None else r.to(device) for r in results]


class InGraphNMSPostPrediction(DetectionPostPredictionCallback):
    """(detections [B, M, 6], num_detections [B]) of a graph with NMS inside -> per image [n, 6] or None.

    Only a confidence threshold at or above the one built into the graph can be applied afterwards.
    """

    def __init__(self, conf: float, graph_conf: float, max_predictions: int | None = None):
        super().__init__()
        if conf < graph_conf:
            raise ValueError(f"confidence {conf} is below the threshold {graph_conf} built into the ONNX file (its NMS "
                             f"already dropped those boxes); use at least {graph_conf}, or export without NMS")
        self.conf, self.max_predictions = conf, max_predictions

    def forward(self, x, device=None) -> list[Tensor | None]:
        detections, counts = x
        results = []
        for rows, count in zip(detections.float(), counts.tolist()):  # one slice per image, rows already sorted
            rows = rows[:count]
            rows = rows[rows[:, 4] > self.conf][: self.max_predictions]
            results.append(None if len(rows) == 0 else rows if device is None else rows.to(device))
        return results


class OnnxDetector:
    """An exported detector run by onnxruntime on CPU, shaped like a checkpoint's model for predict/evaluate.

    Attributes: ``class_names``, ``category_ids``, ``input_size`` (H, W), ``postprocess`` (the NMS settings:
    those built into the graph, else those the model was validated with), ``device`` (cpu), ``info``.
    ``model(images [B, 3, H, W])`` returns the file's two outputs as tensors, and
    ``post_prediction_callback(conf, iou, max_predictions)`` the matching post-processing.
    """

    def __init__(self, path: str | os.PathLike, device=None, threads: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {path}")
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"ONNX files run on the CPU with onnxruntime; device {device!r} is not available for them")
        self.path = path
        self.session = inference_session(path, threads=threads)
        self.info: ExportInfo = read_metadata(self.session.get_modelmeta().custom_metadata_map, str(path))
        self.class_names = list(self.info.class_names) or [str(i) for i in range(self._num_classes())]
        self.category_ids = list(self.info.category_ids or range(1, len(self.class_names) + 1))
        self.input_size = self.info.input_size
        self.postprocess = dict(self.info.postprocess or {})
        if self.info.nms:
            self.postprocess.update(iou=self.info.nms["iou"], max_predictions=self.info.nms["max_predictions"])
        self.device = torch.device("cpu")
        batch = self.session.get_inputs()[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) else None

    def _num_classes(self) -> int:
        shape = self.session.get_outputs()[1].shape if self.info.output_format == "boxes_scores" else None
        return int(shape[-1]) if shape and isinstance(shape[-1], int) else 0

    def model(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Run the file on images [B, C, H, W] (any B: a fixed-batch file runs in padded chunks)."""
        expected = (self.session.get_inputs()[0].shape[1], *self.input_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"{self.path.name} takes images of shape [B, {expected[0]}, {expected[1]}, "
                             f"{expected[2]}], got {tuple(images.shape)}")
        step = self.fixed_batch or images.shape[0]
        parts = []
        for start in range(0, images.shape[0], step):
            chunk = images[start:start + step]
            pad = step - chunk.shape[0]
            if pad:
                chunk = torch.cat([chunk, chunk.new_zeros(pad, *chunk.shape[1:])])
            parts.append([out[: step - pad] for out in run_onnx(self.session, chunk)])
        first, second = (np.concatenate(outputs) for outputs in zip(*parts))
        return torch.from_numpy(first).float(), torch.from_numpy(second)

    def post_prediction_callback(self, conf: float = 0.001, iou: float | None = None,
                                 max_predictions: int | None = None, nms_top_k: int | None = 1000,
                                 ) -> DetectionPostPredictionCallback:  # fmt: skip
        """The post-processing of this file's outputs; with NMS in the graph only a higher `conf` may be applied.

        `iou` None: the file's (NMS inside) or the training one; `max_predictions` None: the file's, else 300.
        """
        if not self.info.nms:
            return BoxesScoresPostPrediction(conf, self.postprocess.get("iou", 0.6) if iou is None else iou,
                                             300 if max_predictions is None else max_predictions, nms_top_k)
        built = self.info.nms
        if iou is not None and abs(iou - built["iou"]) > 1e-9:
            raise ValueError(f"{self.path.name} runs NMS inside with iou {built['iou']}; iou {iou} cannot change it "
                             f"(export without NMS to choose the IoU threshold at run time)")
        if max_predictions is not None and max_predictions > built["max_predictions"]:
            raise ValueError(f"{self.path.name} keeps at most {built['max_predictions']} detections per image (NMS "
                             f"inside); max_predictions {max_predictions} cannot raise it")
        return InGraphNMSPostPrediction(conf, built["conf"], max_predictions)

    def predict(self, images: Tensor, conf: float = 0.25) -> list[Tensor | None]:
        """Detections per image [n, 6] (x1, y1, x2, y2, score, class) in input pixels, or None."""
        return self.post_prediction_callback(conf)(self.model(images), device="cpu")
