"""Drawing detection batches: predicted boxes and (translucent) ground truth on the input images."""

from __future__ import annotations

import os
from collections.abc import Callable

import cv2
import numpy as np
import torch

from trainwright.logging.files import atomic_write


def undo_image_preprocessing(im_tensor: torch.Tensor, *, scale: float | None = None) -> np.ndarray:
    """Model inputs [B, 3, H, W] RGB -> uint8 [B, H, W, 3] BGR images, the layout OpenCV draws on.

    scale: what to multiply values by to get 0..255. None decides from the data: a batch whose values all
    lie in [0, 1] is taken as 0..1 images (x255), anything else as 0..255 already (trainwright's batches).
    Values are clipped to 0..255.
    """
    if not isinstance(im_tensor, torch.Tensor) or im_tensor.ndim != 4 or im_tensor.shape[1] != 3:
        shape = tuple(im_tensor.shape) if hasattr(im_tensor, "shape") else type(im_tensor).__name__
        raise ValueError(f"im_tensor must be a [B, 3, H, W] tensor, got {shape}")
    images = im_tensor.detach().float().cpu()
    if scale is None:
        scale = 255.0 if images.numel() and images.min() >= 0 and images.max() <= 1 else 1.0
    images = (images * scale).clamp(0, 255).round().to(torch.uint8)
    return np.ascontiguousarray(images.flip(1).permute(0, 2, 3, 1).numpy())


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """One BGR colour per class, spread evenly around the hue wheel."""
    hues = (np.arange(max(num_classes, 1)) * 180 / max(num_classes, 1)).astype(np.uint8)
    hsv = np.stack([hues, np.full_like(hues, 220), np.full_like(hues, 255)], axis=1)[None]
    return [tuple(int(c) for c in bgr) for bgr in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]]


def _draw_box(image: np.ndarray, box, color, label: str, thickness: int) -> None:
    # Clipped just outside the canvas: an untrained model's huge boxes stay drawable (OpenCV takes int32 points).
    height, width = image.shape[:2]
    limits = np.array([width, height, width, height], dtype=np.float64) + 1.0
    coords = np.clip(np.nan_to_num(np.asarray(box, dtype=np.float64), nan=-1.0), -1.0, limits)
    x1, y1, x2, y2 = (int(round(v)) for v in coords)
    cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness)
    if label:
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        top = max(y1 - th - 4, 0)
        cv2.rectangle(image, (x1, top), (x1 + tw + 2, top + th + 4), color, -1)
        cv2.putText(image, label, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)


def _target_boxes_xyxy(targets: np.ndarray, height: int, width: int, normalized: bool | None) -> np.ndarray:
    """Rows (image index, class, cx, cy, w, h) -> [n, 4] xyxy pixels (x width/height when normalized)."""
    cxcywh = targets[:, 2:6].astype(np.float64)
    if normalized is None:
        normalized = bool(len(cxcywh)) and float(np.abs(cxcywh).max()) <= 1.0
    if normalized:
        cxcywh = cxcywh * np.array([width, height, width, height])
    return np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)


def _class_name(class_names, index: int) -> str:
    return class_names[index] if 0 <= index < len(class_names) else str(index)


def write_images(images: list[np.ndarray], folder, batch_name) -> list[str]:
    """Write uint8 BGR images [H, W, 3] as ``folder/{batch_name}_{i}.jpg`` (atomically); returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        ok, encoded = cv2.imencode(".jpg", image)
        if not ok:
            raise OSError(f"could not encode image {i} of batch {batch_name} as JPEG")
        paths.append(os.path.join(folder, f"{batch_name}_{i}.jpg"))
        atomic_write(paths[-1], lambda f, data=encoded: f.write(data.tobytes()))
    return paths


class DetectionVisualization:
    """Renders a batch of images with predictions and ground truth; see visualize_batch."""

    @staticmethod
    def visualize_batch(image_tensor: torch.Tensor, pred_boxes, target_boxes, batch_name, class_names,
                        checkpoint_dir: str | None = None,
                        undo_preprocessing_func: Callable[[torch.Tensor], np.ndarray] = undo_image_preprocessing,
                        box_thickness: int = 2, image_scale: float = 1.0, gt_alpha: float = 0.4, *,
                        targets_normalized: bool | None = None):
        """Draw each image of a batch with its predicted boxes and, translucent, its ground-truth boxes.

        image_tensor: model inputs [B, 3, H, W] (whatever undo_preprocessing_func takes; it must return
            uint8 BGR images [B, H, W, 3]).
        pred_boxes: per image a tensor [n, 6] (x1, y1, x2, y2, confidence, class) in input pixels, or None.
        target_boxes: [N, 6] (image index, class, cx, cy, w, h), or None. Pixels, or [0, 1] relative to the
            image when targets_normalized=True; None decides from the data (all coordinates <= 1 means
            normalised).
        batch_name: names the files, ``{batch_name}_{i}.jpg``.
        class_names: class index -> name (an index outside the list is drawn as the number).
        checkpoint_dir: folder to write the JPEGs into (created if needed; returns None); None returns the
            images as a list of uint8 BGR arrays [H*image_scale, W*image_scale, 3].
        box_thickness: line width in pixels; image_scale: resize factor of the drawn images;
        gt_alpha: opacity of the ground-truth boxes, 0 invisible .. 1 opaque.
        Predictions are labelled "name confidence", ground truth "name".
        """
        if not 0.0 <= gt_alpha <= 1.0:
            raise ValueError(f"gt_alpha must be in [0, 1], got {gt_alpha!r}")
        if image_scale <= 0:
            raise ValueError(f"image_scale must be positive, got {image_scale!r}")
        images = undo_preprocessing_func(image_tensor)
        if len(pred_boxes) != len(images):
            raise ValueError(f"pred_boxes has {len(pred_boxes)} entries for a batch of {len(images)} images")
        targets = np.zeros((0, 6)) if target_boxes is None else torch.as_tensor(target_boxes).detach().cpu().numpy()
        colors = class_colors(len(class_names))
        drawn = []
        for i, image in enumerate(images):
            height, width = image.shape[:2]
            preds = np.zeros((0, 6)) if pred_boxes[i] is None else torch.as_tensor(pred_boxes[i]).detach().cpu().numpy()
            mine = targets[targets[:, 0] == i]
            gt_xyxy = _target_boxes_xyxy(mine, height, width, targets_normalized) * image_scale
            canvas = cv2.resize(image, None, fx=image_scale, fy=image_scale) if image_scale != 1 else image.copy()
            overlay = canvas.copy()
            for box, cls in zip(gt_xyxy, mine[:, 1].astype(int)):
                _draw_box(overlay, box, colors[cls % len(colors)], _class_name(class_names, cls), box_thickness)
            canvas = cv2.addWeighted(overlay, gt_alpha, canvas, 1 - gt_alpha, 0)
            for row in preds:
                cls = int(row[5])
                label = f"{_class_name(class_names, cls)} {row[4]:.2f}"
                _draw_box(canvas, row[:4] * image_scale, colors[cls % len(colors)], label, box_thickness)
            drawn.append(canvas)
        if checkpoint_dir is None:
            return drawn
        write_images(drawn, checkpoint_dir, batch_name)
        return None
