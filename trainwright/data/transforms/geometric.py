"""Geometric transforms: letterbox resize-and-pad, random affine, horizontal flip."""

from __future__ import annotations

import math

import cv2
import numpy as np

from trainwright.data.sample import DetectionSample
from trainwright.data.transforms.base import DetectionTransform, check_probability, check_size
from trainwright.ops.boxes import adjust_box_anns


def fit_scale(height: int, width: int, output_size: tuple[int, int]) -> float:
    """The largest scale at which a height x width image fits inside output_size (H, W)."""
    return min(output_size[0] / height, output_size[1] / width)


def resize_to_fit(sample: DetectionSample, output_size: tuple[int, int]) -> DetectionSample:
    """Resize (aspect kept) so the image fits in output_size; boxes scaled alike. No padding."""
    r = fit_scale(sample.height, sample.width, output_size)
    if r == 1.0:
        return sample
    new_w, new_h = max(1, round(sample.width * r)), max(1, round(sample.height * r))
    interpolation = cv2.INTER_LINEAR if r > 1 else cv2.INTER_AREA
    image = cv2.resize(sample.image, (new_w, new_h), interpolation=interpolation)
    boxes = sample.boxes * np.array([new_w / sample.width, new_h / sample.height] * 2, dtype=np.float32)
    return sample.replaced(image, boxes)


class Letterbox(DetectionTransform):
    """Resize keeping the aspect ratio so the image fits output_size (H, W), then pad with fill_value.

    The image sits at the top-left corner (padding right and bottom), or in the middle with center=True.
    Boxes follow ``adjust_box_anns`` (scaled, shifted by the padding, clipped to the output).
    """

    def __init__(self, output_size=(640, 640), fill_value: int = 114, center: bool = False, min_box_size: float = 1.0):
        super().__init__()
        self.output_size = check_size("output_size", output_size)
        self.fill_value = fill_value
        self.center = center
        self.min_box_size = min_box_size

    def __call__(self, sample: DetectionSample, rng: np.random.Generator | None = None) -> DetectionSample:
        out_h, out_w = self.output_size
        r = fit_scale(sample.height, sample.width, self.output_size)
        new_w, new_h = min(out_w, max(1, round(sample.width * r))), min(out_h, max(1, round(sample.height * r)))
        image = sample.image
        if (new_h, new_w) != (sample.height, sample.width):
            interpolation = cv2.INTER_LINEAR if r > 1 else cv2.INTER_AREA
            image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        pad_w, pad_h = ((out_w - new_w) // 2, (out_h - new_h) // 2) if self.center else (0, 0)
        canvas = np.full((out_h, out_w, 3), self.fill_value, dtype=image.dtype)
        canvas[pad_h:pad_h + new_h, pad_w:pad_w + new_w] = image
        boxes = adjust_box_anns(sample.boxes, r, pad_w, pad_h, out_w, out_h)
        return sample.replaced(canvas, boxes).clipped(self.min_box_size)


def affine_matrix(rng: np.random.Generator, input_size: tuple[int, int], output_size: tuple[int, int],
                  degrees: float, translate: float, scales: tuple[float, float], shear: float) -> np.ndarray:
    """A random 2x3 affine map: input centre -> origin, rotate+scale, shear, -> output centre + translation."""
    (in_h, in_w), (out_h, out_w) = input_size, output_size
    centre = np.array([[1, 0, -in_w / 2], [0, 1, -in_h / 2], [0, 0, 1]], dtype=np.float64)
    angle, scale = math.radians(rng.uniform(-degrees, degrees)), rng.uniform(*scales)
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    rotate = np.array([[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]], dtype=np.float64)
    shx, shy = (math.tan(math.radians(rng.uniform(-shear, shear))) for _ in range(2))
    shear_m = np.array([[1, shx, 0], [shy, 1, 0], [0, 0, 1]], dtype=np.float64)
    tx = (0.5 + rng.uniform(-translate, translate)) * out_w
    ty = (0.5 + rng.uniform(-translate, translate)) * out_h
    move = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)
    return (move @ shear_m @ rotate @ centre)[:2]


def warp_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The axis-aligned boxes [n, 4] enclosing the four warped corners of each box under ``matrix`` [2, 3]."""
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x1, y2], 1), np.stack([x2, y2], 1)], 1)
    warped = corners @ matrix[:, :2].T + matrix[:, 2]  # [n, 4, 2]
    return np.concatenate([warped.min(axis=1), warped.max(axis=1)], axis=1).astype(np.float32)


class RandomAffine(DetectionTransform):
    """Random rotation, scale, shear and translation, written onto an output_size (H, W) canvas.

    The input centre maps to the output centre (plus translation), so after Mosaic (a 2H x 2W canvas)
    with scale 1 the middle of the mosaic is kept. Boxes become the boxes enclosing their warped corners
    (so under rotation they are looser than the object, and one cut by the border may keep a corner
    of the image where the object itself is not visible), are clipped to the output, and are dropped when they shrink below min_box_size pixels, keep less
    than min_area_ratio of their scaled area, or get more elongated than max_aspect_ratio.
    mosaic_stage: set_mosaic_enabled(False) turns it off along with Mosaic and MixUp (pass
    mosaic_stage=False to keep it on for the whole run).
    """

    def __init__(self, degrees: float = 10.0, translate: float = 0.1, scales=(0.5, 1.5), shear: float = 2.0,
                 output_size=None, fill_value: int = 114, min_box_size: float = 2.0, min_area_ratio: float = 0.1,
                 max_aspect_ratio: float = 20.0, mosaic_stage: bool = True):
        super().__init__()
        if not 0 < scales[0] <= scales[1]:
            raise ValueError(f"scales must be (low, high) with 0 < low <= high, got {scales!r}")
        self.degrees, self.translate, self.scales, self.shear = degrees, translate, tuple(scales), shear
        self.output_size = None if output_size is None else check_size("output_size", output_size)
        self.fill_value = fill_value
        self.min_box_size, self.min_area_ratio, self.max_aspect_ratio = min_box_size, min_area_ratio, max_aspect_ratio
        self.mosaic_stage = mosaic_stage

    def __call__(self, sample: DetectionSample, rng: np.random.Generator) -> DetectionSample:
        if not self.enabled:
            return sample
        out_h, out_w = self.output_size or (sample.height, sample.width)
        matrix = affine_matrix(rng, (sample.height, sample.width), (out_h, out_w), self.degrees, self.translate,
                               self.scales, self.shear)
        image = cv2.warpAffine(sample.image, matrix, dsize=(out_w, out_h), borderValue=(self.fill_value,) * 3)
        boxes = warp_boxes(sample.boxes, matrix)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, out_w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, out_h)
        scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
        keep = self._box_candidates(sample.boxes * scale, boxes)
        return DetectionSample(image, boxes[keep], sample.labels[keep], sample.is_crowd[keep])

    def _box_candidates(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """bool [n]: which warped boxes are still worth training on (see the class docstring)."""
        w0, h0 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
        w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
        aspect = np.maximum(w1 / (h1 + 1e-16), h1 / (w1 + 1e-16))
        return ((w1 >= self.min_box_size) & (h1 >= self.min_box_size) & (w1 > 0) & (h1 > 0)
                & (w1 * h1 >= self.min_area_ratio * w0 * h0) & (aspect <= self.max_aspect_ratio))


class HorizontalFlip(DetectionTransform):
    """Mirror the image left-right with probability prob; x1' = W - x2, x2' = W - x1."""

    def __init__(self, prob: float = 0.5):
        super().__init__()
        self.prob = check_probability("prob", prob)

    def __call__(self, sample: DetectionSample, rng: np.random.Generator) -> DetectionSample:
        if rng.random() >= self.prob:
            return sample
        boxes = sample.boxes.copy()
        boxes[:, [0, 2]] = sample.width - sample.boxes[:, [2, 0]]
        return sample.replaced(np.ascontiguousarray(sample.image[:, ::-1]), boxes)
