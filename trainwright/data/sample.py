"""The unit of work of the detection pipeline: one image with its boxes, as transforms see it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class DetectionSample:
    """One image and its annotations while it moves through the transforms.

    image: uint8 [H, W, 3] RGB (float32 after normalisation).
    boxes: float32 [n, 4] (x1, y1, x2, y2) in pixels of ``image``.
    labels: int64 [n] contiguous class indices.
    is_crowd: bool [n]; crowd regions travel with the ordinary boxes so that every geometric
        transform moves them too, and are split off only when the dataset returns the item.
    additional_samples: other samples a transform mixes in (mosaic tiles, the mixup partner); the
        dataset fills this list just before calling a transform that asks for them.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    is_crowd: np.ndarray
    additional_samples: list[DetectionSample] = field(default_factory=list)

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.is_crowd = np.asarray(self.is_crowd, dtype=bool).reshape(-1)
        if not (len(self.boxes) == len(self.labels) == len(self.is_crowd)):
            raise ValueError(
                f"boxes, labels and is_crowd must have the same length, got {len(self.boxes)}, "
                f"{len(self.labels)} and {len(self.is_crowd)}"
            )
        if self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"image must be [H, W, 3], got shape {tuple(self.image.shape)}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def replaced(self, image: np.ndarray, boxes: np.ndarray) -> DetectionSample:
        """A new sample with ``image`` and ``boxes`` [n, 4] (one per annotation of this sample)."""
        return DetectionSample(image, boxes, self.labels, self.is_crowd)

    def clipped(self, min_size: float = 1.0) -> DetectionSample:
        """Boxes clipped to the image; empty ones and those narrower or lower than ``min_size`` pixels are dropped."""
        boxes = self.boxes.copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, self.width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, self.height)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = (w >= min_size) & (h >= min_size) & (w > 0) & (h > 0)
        return DetectionSample(self.image, boxes[keep], self.labels[keep], self.is_crowd[keep])

    @staticmethod
    def concatenate(image: np.ndarray, parts: list[DetectionSample]) -> DetectionSample:
        """A sample on ``image`` holding the annotations of every part (their boxes already in image pixels)."""
        if not parts:
            return DetectionSample(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))
        boxes = np.concatenate([p.boxes for p in parts])
        labels = np.concatenate([p.labels for p in parts])
        crowd = np.concatenate([p.is_crowd for p in parts])
        return DetectionSample(image, boxes, labels, crowd)
