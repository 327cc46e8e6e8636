"""Annotation boxes checked against their image: empty ones dropped, overhanging ones clipped, all counted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainwright.data.errors import examples

__all__ = ["BoxCheck", "check_boxes", "CLIP_TOLERANCE"]

# Boxes that overhang their image by at most this many pixels (rounding in annotation tools) are clipped
# without being counted.
CLIP_TOLERANCE = 1.0


@dataclass(frozen=True)
class BoxCheck:
    """Result of check_boxes over A boxes.

    boxes (float32 [A, 4]): (x1, y1, x2, y2) clipped to the image; keep (bool [A]): the boxes to use;
    empty, outside, clipped (bool [A]): zero or negative width or height as written; lying entirely outside
    the image; overhanging it by more than CLIP_TOLERANCE pixels (and clipped).
    """

    boxes: np.ndarray
    keep: np.ndarray
    empty: np.ndarray
    outside: np.ndarray
    clipped: np.ndarray

    def summary(self, ids: np.ndarray) -> str | None:
        """One sentence counting what was dropped or clipped, with example annotation ``ids`` [A]; None if nothing."""
        parts = [f"{int(mask.sum())} {what} (annotation ids {examples(ids[mask].tolist())})"
                 for mask, what in ((self.empty, "with zero or negative width or height were dropped"),
                                    (self.outside, "lying entirely outside their image were dropped"),
                                    (self.clipped, f"reaching more than {CLIP_TOLERANCE:g} pixel beyond their "
                                                   f"image were clipped to it"))
                 if mask.any()]
        return f"of {len(self.keep)} boxes, " + "; ".join(parts) if parts else None


def check_boxes(xywh: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> BoxCheck:
    """Check COCO boxes against the size of their image.

    Args:
        xywh (ndarray[A, 4]): (x, y, width, height) in pixels, finite.
        widths, heights (ndarray[A]): size of each box's image in pixels.
    Returns:
        BoxCheck.
    """
    xywh = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    limits = np.stack([widths, heights, widths, heights], axis=1).astype(np.float64)
    clipped_boxes = xyxy.clip(0.0, limits)
    empty = (xywh[:, 2] <= 0) | (xywh[:, 3] <= 0)
    outside = ~empty & ((clipped_boxes[:, 2] <= clipped_boxes[:, 0]) | (clipped_boxes[:, 3] <= clipped_boxes[:, 1]))
    overhang = np.abs(clipped_boxes - xyxy).max(axis=1, initial=0.0) > CLIP_TOLERANCE
    clipped = ~empty & ~outside & overhang
    keep = ~empty & ~outside
    return BoxCheck(clipped_boxes.astype(np.float32), keep, empty, outside, clipped)
