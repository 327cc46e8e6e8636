"""MixUp: blend the sample half-and-half with another, randomly scaled, flipped and shifted, image."""

from __future__ import annotations

import cv2
import numpy as np

from trainwright.data.sample import DetectionSample
from trainwright.data.transforms.base import DetectionTransform, check_probability
from trainwright.data.transforms.geometric import fit_scale


class MixUp(DetectionTransform):
    """With probability prob, average the image with a partner sample and keep the boxes of both.

    The partner is resized to fit the sample's size times a factor drawn from mixup_scale, mirrored with
    probability flip_prob, and placed at a random offset (cropped where it overflows, padded with
    fill_value where it does not cover). Partner boxes are moved alike, clipped, and dropped below
    min_box_size pixels.
    """

    additional_samples_count = 1
    mosaic_stage = True

    def __init__(self, prob: float = 1.0, mixup_scale=(0.5, 1.5), flip_prob: float = 0.5, fill_value: int = 114,
                 min_box_size: float = 2.0):
        super().__init__()
        self.prob = check_probability("prob", prob)
        if not 0 < mixup_scale[0] <= mixup_scale[1]:
            raise ValueError(f"mixup_scale must be (low, high) with 0 < low <= high, got {mixup_scale!r}")
        self.mixup_scale = tuple(mixup_scale)
        self.flip_prob = check_probability("flip_prob", flip_prob)
        self.fill_value = fill_value
        self.min_box_size = min_box_size

    def __call__(self, sample: DetectionSample, rng: np.random.Generator) -> DetectionSample:
        if not self.enabled or rng.random() >= self.prob:
            return DetectionSample(sample.image, sample.boxes, sample.labels, sample.is_crowd)
        if not sample.additional_samples:
            raise ValueError("MixUp needs 1 additional sample, got none")
        partner = sample.additional_samples[0]
        h, w = sample.height, sample.width
        r = fit_scale(partner.height, partner.width, (h, w)) * rng.uniform(*self.mixup_scale)
        pw, ph = max(1, round(partner.width * r)), max(1, round(partner.height * r))
        image = cv2.resize(partner.image, (pw, ph), interpolation=cv2.INTER_LINEAR)
        boxes = partner.boxes * np.array([pw / partner.width, ph / partner.height] * 2, dtype=np.float32)
        if rng.random() < self.flip_prob:
            image = image[:, ::-1]
            boxes[:, [0, 2]] = pw - boxes[:, [2, 0]]
        ox = int(rng.integers(min(0, w - pw), max(0, w - pw) + 1))
        oy = int(rng.integers(min(0, h - ph), max(0, h - ph) + 1))
        canvas = np.full_like(sample.image, self.fill_value)
        x1, y1, x2, y2 = max(ox, 0), max(oy, 0), min(ox + pw, w), min(oy + ph, h)
        canvas[y1:y2, x1:x2] = image[y1 - oy:y2 - oy, x1 - ox:x2 - ox]
        boxes += np.array([ox, oy, ox, oy], dtype=np.float32)
        blended = (0.5 * sample.image.astype(np.float32) + 0.5 * canvas.astype(np.float32)).astype(sample.image.dtype)
        moved = partner.replaced(partner.image, boxes)
        return DetectionSample.concatenate(blended, [sample, moved]).clipped(self.min_box_size)
