"""Layouts of detection target rows and where the class id sits in them."""

from __future__ import annotations

from enum import Enum


class DetectionTargetsFormat(Enum):
    """Column layout of a target row: the box format, whether it is normalised to [0, 1], and the label's side.

    Without NORMALIZED the coordinates are in image pixels; e.g. LABEL_NORMALIZED_XYXY is
    (class_id, x1, y1, x2, y2) with coordinates divided by the image size.
    """

    LABEL_XYXY = "LABEL_XYXY"
    XYXY_LABEL = "XYXY_LABEL"
    LABEL_NORMALIZED_XYXY = "LABEL_NORMALIZED_XYXY"
    NORMALIZED_XYXY_LABEL = "NORMALIZED_XYXY_LABEL"
    LABEL_CXCYWH = "LABEL_CXCYWH"
    CXCYWH_LABEL = "CXCYWH_LABEL"
    LABEL_NORMALIZED_CXCYWH = "LABEL_NORMALIZED_CXCYWH"
    NORMALIZED_CXCYWH_LABEL = "NORMALIZED_CXCYWH_LABEL"


def get_cls_posx_in_target(target_format: DetectionTargetsFormat) -> int:
    """Column of the class id in a target row: 0 for LABEL_* layouts, -1 for *_LABEL layouts.

    Accepts the enum member or its name (e.g. "LABEL_CXCYWH").
    """
    if isinstance(target_format, str) and not isinstance(target_format, DetectionTargetsFormat):
        try:
            target_format = DetectionTargetsFormat[target_format]
        except KeyError:
            names = ", ".join(f.name for f in DetectionTargetsFormat)
            raise ValueError(f"target_format {target_format!r} is not one of {names}") from None
    if not isinstance(target_format, DetectionTargetsFormat):
        raise TypeError(f"target_format must be a DetectionTargetsFormat, got {type(target_format).__name__}")
    return 0 if target_format.name.startswith("LABEL_") else -1
