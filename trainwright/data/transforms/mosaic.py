"""Mosaic: four images tiled around a random centre on a canvas twice the input size."""

from __future__ import annotations

import numpy as np

from trainwright.data.sample import DetectionSample
from trainwright.data.transforms.base import DetectionTransform, check_probability, check_size


def get_mosaic_coordinate(mosaic_index, xc, yc, w, h, input_h, input_w):
    """Where tile ``mosaic_index`` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of size w x h goes.

    The canvas is (2 * input_h) x (2 * input_w) with the tiles meeting at (xc, yc). Each tile touches the
    centre with one corner and is cut by the canvas border.

    Returns ((x1, y1, x2, y2), (x1s, y1s, x2s, y2s)): the region on the canvas and the same-sized region
    of the tile that is copied there (ints, end-exclusive).
    """
    canvas_w, canvas_h = 2 * input_w, 2 * input_h
    if mosaic_index == 0:
        x1, y1, x2, y2 = max(xc - w, 0), max(yc - h, 0), xc, yc
        small = (w - (x2 - x1), h - (y2 - y1), w, h)
    elif mosaic_index == 1:
        x1, y1, x2, y2 = xc, max(yc - h, 0), min(xc + w, canvas_w), yc
        small = (0, h - (y2 - y1), min(w, x2 - x1), h)
    elif mosaic_index == 2:
        x1, y1, x2, y2 = max(xc - w, 0), yc, xc, min(yc + h, canvas_h)
        small = (w - (x2 - x1), 0, w, min(h, y2 - y1))
    elif mosaic_index == 3:
        x1, y1, x2, y2 = xc, yc, min(xc + w, canvas_w), min(yc + h, canvas_h)
        small = (0, 0, min(w, x2 - x1), min(h, y2 - y1))
    else:
        raise ValueError(f"mosaic_index must be 0, 1, 2 or 3, got {mosaic_index!r}")
    return (x1, y1, x2, y2), small


class Mosaic(DetectionTransform):
    """Tile the sample with three others around a random centre; output (2*H) x (2*W) for input_size (H, W).

    Follow it with RandomAffine(output_size=input_size) to bring the canvas back to the input size.
    Each tile's boxes are clipped to the part of the tile that is visible on the canvas.
    """

    additional_samples_count = 3
    mosaic_stage = True

    def __init__(self, input_size=(640, 640), prob: float = 1.0, center_range=(0.5, 1.5), fill_value: int = 114,
                 min_box_size: float = 1.0):
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.prob = check_probability("prob", prob)
        if not 0 <= center_range[0] <= center_range[1] <= 2:
            raise ValueError(f"center_range must be (low, high) with 0 <= low <= high <= 2, got {center_range!r}")
        self.center_range = tuple(center_range)
        self.fill_value = fill_value
        self.min_box_size = min_box_size

    def __call__(self, sample: DetectionSample, rng: np.random.Generator) -> DetectionSample:
        tiles = [sample, *sample.additional_samples]
        if not self.enabled or rng.random() >= self.prob:
            return DetectionSample(sample.image, sample.boxes, sample.labels, sample.is_crowd)
        if len(tiles) < 4:
            raise ValueError(f"Mosaic needs 3 additional samples, got {len(tiles) - 1}")
        in_h, in_w = self.input_size
        yc = int(rng.uniform(self.center_range[0] * in_h, self.center_range[1] * in_h))
        xc = int(rng.uniform(self.center_range[0] * in_w, self.center_range[1] * in_w))
        canvas = np.full((2 * in_h, 2 * in_w, 3), self.fill_value, dtype=sample.image.dtype)
        parts = []
        for index, tile in enumerate(tiles[:4]):
            (x1, y1, x2, y2), (sx1, sy1, sx2, sy2) = get_mosaic_coordinate(
                index, xc, yc, tile.width, tile.height, in_h, in_w)
            canvas[y1:y2, x1:x2] = tile.image[sy1:sy2, sx1:sx2]
            boxes = tile.boxes.copy()
            boxes[:, 0::2] = boxes[:, 0::2].clip(sx1, sx2) + (x1 - sx1)
            boxes[:, 1::2] = boxes[:, 1::2].clip(sy1, sy2) + (y1 - sy1)
            parts.append(tile.replaced(tile.image, boxes))
        return DetectionSample.concatenate(canvas, parts).clipped(self.min_box_size)
