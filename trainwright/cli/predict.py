"""`trainwright predict CHECKPOINT IMAGE... [--output DIR --conf 0.3]`: draw and print detections."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import torch

from trainwright.cli.inference import load_checkpoint_model, prepare_image, to_original_pixels
from trainwright.data.coco import read_rgb_image
from trainwright.logging import atomic_write
from trainwright.models.detection.postprocess import YoloXPostPredictionCallback
from trainwright.models.export.runtime import OnnxDetector, is_onnx_file
from trainwright.visualization.detection import DetectionVisualization, undo_image_preprocessing

__all__ = ["run_predict", "output_names"]


def output_names(paths: list[str]) -> list[str]:
    """`<stem>.jpg` per input image; a stem seen before gets `_2`, `_3`, ... so no output overwrites another."""
    names: list[str] = []
    for path in paths:
        stem, n = Path(path).stem, 1
        name = f"{stem}.jpg"
        while name in names:
            n += 1
            name = f"{stem}_{n}.jpg"
        names.append(name)
    return names


def _draw(image, rows: torch.Tensor, class_names: list[str]):
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    return DetectionVisualization.visualize_batch(
        tensor, [rows], None, "prediction", class_names,
        undo_preprocessing_func=lambda t: undo_image_preprocessing(t, scale=1.0))[0]


@torch.no_grad()
def run_predict(checkpoint: str, images: list[str], output: str = "predictions", conf: float = 0.3,
                iou: float | None = None, device=None) -> int:
    """Write each image with its detections drawn to `output`, and print the detections."""
    if not 0.0 <= conf <= 1.0:
        raise ValueError(f"--conf must be in [0, 1], got {conf}")
    if iou is not None and not 0.0 < iou <= 1.0:
        raise ValueError(f"--iou must be in (0, 1], got {iou}")
    missing = [p for p in images if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"image file(s) not found: {', '.join(missing)}")
    if is_onnx_file(checkpoint):  # run by onnxruntime behind the same interface
        cm = OnnxDetector(checkpoint, device)
        post_prediction_callback = cm.post_prediction_callback
    else:
        cm = load_checkpoint_model(checkpoint, device)
        post_prediction_callback = YoloXPostPredictionCallback
    post = post_prediction_callback(conf=conf, iou=iou if iou is not None else cm.postprocess.get("iou", 0.6),
                                    max_predictions=cm.postprocess.get("max_predictions", 100))
    os.makedirs(output, exist_ok=True)
    for path, name in zip(images, output_names(images)):
        image = read_rgb_image(path)
        rows = post(cm.model(prepare_image(image, cm.input_size)[None].to(cm.device)), device="cpu")[0]
        rows = torch.zeros(0, 6) if rows is None else rows
        rows = torch.cat([to_original_pixels(rows[:, :4], *image.shape[:2], cm.input_size), rows[:, 4:]], dim=1)
        ok, encoded = cv2.imencode(".jpg", _draw(image, rows, cm.class_names))
        if not ok:
            raise OSError(f"could not encode the drawing of {path} as JPEG")
        target = os.path.join(output, name)
        atomic_write(target, lambda f, data=encoded: f.write(data.tobytes()))
        print(f"{path}: {len(rows)} detection(s) -> {target}")
        for x1, y1, x2, y2, score, cls in rows.tolist():
            print(f"  {cm.class_names[int(cls)]:<14} {score:.3f}  x1 {x1:.1f}  y1 {y1:.1f}  x2 {x2:.1f}  y2 {y2:.1f}")
    return 0
