"""What an exported file says about itself: ONNX metadata_props, one JSON value per key.

Keys: ``class_names`` (list), ``input_size`` ([H, W]), ``output_format`` ("boxes_scores" or "nms"), ``nms``
({"conf", "iou", "max_predictions", "multi_label_per_box"} or null), ``batch_size`` (int, or "dynamic"),
``half`` (bool), ``trainwright_version``; the exporter may add ``architecture``, ``category_ids`` and
``postprocess`` (the NMS settings the model was validated with).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["ExportInfo", "write_metadata", "read_metadata", "OUTPUT_FORMATS"]

OUTPUT_FORMATS = ("boxes_scores", "nms")


@dataclass
class ExportInfo:
    """The metadata of an exported file (see the module docstring for the keys)."""

    class_names: list[str]
    input_size: tuple[int, int]
    output_format: str
    nms: dict | None = None
    batch_size: int | str = 1
    half: bool = False
    architecture: str | None = None
    category_ids: list[int] | None = None
    postprocess: dict = field(default_factory=dict)
    trainwright_version: str | None = None

    def to_props(self) -> dict[str, str]:
        return {key: json.dumps(value) for key, value in vars(self).items() if value is not None}


def write_metadata(model_proto, info: ExportInfo) -> None:
    """Replace the metadata_props of an onnx.ModelProto by `info`."""
    del model_proto.metadata_props[:]
    for key, value in info.to_props().items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(props: dict[str, str], source: str) -> ExportInfo:
    """ExportInfo from metadata_props (a dict of strings); a ValueError naming `source` when they are not ours."""
    try:
        values = {key: json.loads(value) for key, value in props.items() if key in ExportInfo.__dataclass_fields__}
        info = ExportInfo(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source} has no trainwright export metadata ({err}); export it with trainwright export") \
            from None
    if info.output_format not in OUTPUT_FORMATS:
        raise ValueError(f"{source}: unknown output_format {info.output_format!r}; expected one of {OUTPUT_FORMATS}")
    if not isinstance(info.class_names, list) or not all(isinstance(n, str) for n in info.class_names):
        raise ValueError(f"{source}: class_names metadata must be a list of strings, got {info.class_names!r}")
    info.input_size = tuple(int(v) for v in info.input_size)
    return info
