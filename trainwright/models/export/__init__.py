"""ONNX export of detectors and running the exported files with onnxruntime (the `export` extra).

- ``export_onnx(model, path, input_size, ...)``: the model in eval mode with its decoding, optionally NMS inside
  the graph (``graph`` defines both output layouts exactly), metadata (class names, input size), written
  atomically and checked against PyTorch in onnxruntime.
- ``OnnxDetector(path)``: an exported file behind the interface `predict` and `evaluate` use.
- ``contract``: what a detector must provide to be exported (``boxes_and_scores``, optional ``strides`` and
  ``prep_model_for_conversion``).

onnx and onnxruntime are imported only when a function needs them.
"""

from trainwright.models.export.checks import OnnxMismatchError, check_opset, compare_outputs
from trainwright.models.export.graph import INPUT_NAME, NMS_OUTPUTS, RAW_OUTPUTS, ExportGraph, InGraphNMS
from trainwright.models.export.metadata import ExportInfo
from trainwright.models.export.onnx_export import DEFAULT_OPSET, export_onnx
from trainwright.models.export.runtime import OnnxDetector, is_onnx_file

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAME",
    "NMS_OUTPUTS",
    "RAW_OUTPUTS",
    "ExportGraph",
    "ExportInfo",
    "InGraphNMS",
    "OnnxDetector",
    "OnnxMismatchError",
    "check_opset",
    "compare_outputs",
    "export_onnx",
    "is_onnx_file",
]
