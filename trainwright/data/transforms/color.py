"""Colour transforms: HSV jitter and normalisation. Boxes are left as they are."""

from __future__ import annotations

import cv2
import numpy as np

from trainwright.data.sample import DetectionSample
from trainwright.data.transforms.base import DetectionTransform, check_probability


class HSVJitter(DetectionTransform):
    """Scale hue, saturation and value by random gains in [1 - gain, 1 + gain] (uint8 RGB images).

    Hue wraps around (OpenCV's 0..179 range); saturation and value are clipped to 0..255. One lookup
    table per channel, so the cost does not depend on the gains.
    """

    def __init__(self, prob: float = 1.0, hgain: float = 0.015, sgain: float = 0.7, vgain: float = 0.4):
        super().__init__()
        self.prob = check_probability("prob", prob)
        for name, gain in (("hgain", hgain), ("sgain", sgain), ("vgain", vgain)):
            if not 0 <= gain <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {gain!r}")
        self.hgain, self.sgain, self.vgain = hgain, sgain, vgain

    def __call__(self, sample: DetectionSample, rng: np.random.Generator) -> DetectionSample:
        if rng.random() >= self.prob:
            return sample
        if sample.image.dtype != np.uint8:
            raise TypeError(f"HSVJitter needs a uint8 image, got {sample.image.dtype}; put it before Normalize")
        gains = rng.uniform(-1, 1, 3) * np.array([self.hgain, self.sgain, self.vgain]) + 1
        hue, sat, val = cv2.split(cv2.cvtColor(sample.image, cv2.COLOR_RGB2HSV))
        x = np.arange(256, dtype=np.float32)
        lut_h = ((x * gains[0]) % 180).astype(np.uint8)
        lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
        lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
        hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
        return sample.replaced(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), sample.boxes)


class Normalize(DetectionTransform):
    """image -> (image - mean) / std per RGB channel, as float32. Put it last: later transforms expect uint8."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0)):
        super().__init__()
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3)
        self.std = np.asarray(std, dtype=np.float32).reshape(3)
        if (self.std <= 0).any():
            raise ValueError(f"std must be positive, got {std!r}")

    def __call__(self, sample: DetectionSample, rng: np.random.Generator | None = None) -> DetectionSample:
        image = (sample.image.astype(np.float32) - self.mean) / self.std
        return sample.replaced(image, sample.boxes)
