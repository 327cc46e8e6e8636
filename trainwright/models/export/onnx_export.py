"""`export_onnx`: a detector (eval mode, with its decoding, optionally NMS) to an ONNX file, written atomically."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from trainwright._version import __version__
from trainwright.models.export.checks import (
    check_opset,
    compare_outputs,
    inference_session,
    run_onnx,
    torch_outputs,
)
from trainwright.models.export.contract import check_exportable, check_input_size, export_copy, model_stride, require
from trainwright.models.export.graph import INPUT_NAME, ExportGraph, InGraphNMS
from trainwright.models.export.metadata import ExportInfo, write_metadata

__all__ = ["export_onnx", "DEFAULT_OPSET", "check_output_path"]

DEFAULT_OPSET = 17
EXTRA_METADATA = ("architecture", "category_ids", "postprocess")
# Agreement demanded from the file written (check=True), as a fraction of each output's largest magnitude (at least
# 1): float32 to 1e-4; float16 keeps about 3 significant digits per layer, so the outputs of a deep network to 5e-2.
FLOAT32_TOLERANCE = 1e-4
FLOAT16_TOLERANCE = 5e-2


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """`path` as a Path; an error naming it when it is a folder, or an existing file without `overwrite`."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output {path} is a directory; give a file name such as {path / 'model.onnx'}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"output {path} already exists; choose another name, or overwrite it (--overwrite, "
                              f"overwrite=True)")
    return path


def _check_choices(batch_size, conf, iou, max_predictions) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    if not 0.0 <= float(conf) <= 1.0:
        raise ValueError(f"conf must be in [0, 1], got {conf}")
    if not 0.0 < float(iou) <= 1.0:
        raise ValueError(f"iou must be in (0, 1], got {iou}")
    if isinstance(max_predictions, bool) or not isinstance(max_predictions, int) or max_predictions < 1:
        raise ValueError(f"max_predictions must be a positive integer, got {max_predictions!r}")


def _trace(graph: ExportGraph, sample: torch.Tensor, target: str, opset: int, dynamic_batch: bool) -> None:
    """torch.onnx.export with the TorchScript-based exporter (no onnxscript needed), its known warnings muted."""
    names = list(graph.output_names)
    dynamic_axes = {name: {0: "batch"} for name in [INPUT_NAME, *names]} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.onnx")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)  # torchvision NMS
        torch.onnx.export(graph, (sample,), target, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=names, dynamic_axes=dynamic_axes, do_constant_folding=True)


def _simplify(model_proto):
    """The graph simplified by onnxslim (preferred) or onnxsim, whichever is installed."""
    try:
        import onnxslim
    except ImportError:
        onnxslim = None
    if onnxslim is not None:
        return onnxslim.slim(model_proto)
    try:
        import onnxsim
    except ImportError:
        raise ImportError("simplify needs onnxslim or onnxsim; pip install 'trainwright[simplify]' (onnxslim)") \
            from None
    simplified, ok = onnxsim.simplify(model_proto)
    if not ok:
        raise ValueError("onnxsim could not validate the simplified graph; export without simplify")
    return simplified


def _commit(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished temp file to `path`: a rename when overwriting, else a hard link that fails if it exists."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"output {path} already exists (created while exporting); nothing was overwritten") \
            from None
    except OSError:  # a filesystem without hard links
        check_output_path(path, overwrite=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@torch.no_grad()
def _verify(path: Path, graph: ExportGraph, dtype: torch.dtype, sample: torch.Tensor) -> float:
    """Run the file in onnxruntime on `sample`; compare with PyTorch (raw graphs) or check the NMS layout."""
    outputs = run_onnx(inference_session(path), sample)
    if graph.nms is None:
        # Against the float32 model, within a fraction of each output's largest magnitude (boxes are pixels).
        rtol = FLOAT32_TOLERANCE if dtype == torch.float32 else FLOAT16_TOLERANCE
        return compare_outputs(outputs, torch_outputs(graph.float(), sample.float()), rtol, rtol, graph.output_names,
                               relative_to="output")
    detections, counts = outputs
    top = graph.nms.max_predictions
    if detections.shape != (sample.shape[0], top, 6) or counts.shape != (sample.shape[0],):
        raise ValueError(f"NMS outputs have shapes {detections.shape} and {counts.shape}, expected "
                         f"({sample.shape[0]}, {top}, 6) and ({sample.shape[0]},)")
    if (counts < 0).any() or (counts > top).any():
        raise ValueError(f"num_detections out of [0, {top}]: {counts.tolist()}")
    return 0.0


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_size: Sequence[int] | None = None,
    *,
    batch_size: int = 1,
    dynamic_batch: bool = False,
    nms: bool = False,
    conf: float = 0.25,
    iou: float = 0.6,
    max_predictions: int = 100,
    opset: int | None = None,
    half: bool = False,
    simplify: bool = False,
    class_names: Sequence[str] | None = None,
    metadata: dict | None = None,
    overwrite: bool = False,
    check: bool = True,
) -> Path:
    """Write `model` as an ONNX file at `path`; returns the path.

    The graph takes ``images`` [B, 3, H, W] (the model's own input: float RGB as the validation pipeline makes
    it). Without NMS it returns ``boxes`` [B, N, 4] (x1, y1, x2, y2 in input pixels) and ``scores`` [B, N, C];
    with ``nms=True`` ``detections`` [B, max_predictions, 6] (x1, y1, x2, y2, score, class, zero rows past the
    count) and ``num_detections`` [B] int64, as ``trainwright.models.export.graph`` defines exactly.

    Args:
        input_size: (H, W), multiples of the model stride; default: the model's processing params.
        batch_size: B baked into the graph, unless ``dynamic_batch`` makes the batch dimension free.
        conf, iou, max_predictions: the in-graph NMS settings (used with ``nms=True`` only).
        opset: ONNX opset (default 17); one onnxruntime cannot run is refused.
        half: float16 weights, input and outputs (traced and checked on CPU; NMS runs in float32).
        simplify: pass the graph through onnxslim or onnxsim (whichever is installed).
        class_names: stored as metadata; default: the model's processing params, else "0", "1", ...
        metadata: extra JSON-able metadata (architecture, category_ids, postprocess).
        overwrite: replace an existing file (otherwise FileExistsError; nothing is written).
        check: run the file in onnxruntime on a random batch before keeping it: without NMS its outputs must match
            PyTorch's within 1e-4 (float16: 5e-2) of each output's largest magnitude, else OnnxMismatchError.
    """
    require("onnx")
    path = check_output_path(path, overwrite)
    _check_choices(batch_size, conf, iou, max_predictions)
    opset = check_opset(DEFAULT_OPSET if opset is None else opset)
    check_exportable(model)
    processing = model.get_processing_params() if callable(getattr(model, "get_processing_params", None)) else {}
    if input_size is None and not processing.get("input_size"):
        raise ValueError("input_size is required: the model carries no processing params with one")
    size = check_input_size(input_size if input_size is not None else processing["input_size"], model_stride(model))
    extra = dict(metadata or {})
    unknown = sorted(set(extra) - set(EXTRA_METADATA))
    if unknown:
        raise ValueError(f"unknown metadata key(s) {unknown}; allowed: {list(EXTRA_METADATA)}")
    dtype = torch.float16 if half else torch.float32
    nms_module = InGraphNMS(conf, iou, max_predictions) if nms else None
    graph = ExportGraph(export_copy(model, size, dtype), nms_module).eval()
    in_channels = int(getattr(model, "in_channels", 3))
    sample = (torch.rand(batch_size, in_channels, *size, generator=torch.Generator().manual_seed(0)) * 255).to(dtype)
    names = list(class_names or processing.get("class_names") or [])
    info = ExportInfo(
        class_names=[str(n) for n in names], input_size=size, output_format="nms" if nms else "boxes_scores",
        nms={"conf": float(conf), "iou": float(iou), "max_predictions": int(max_predictions),
             "multi_label_per_box": True} if nms else None,
        batch_size="dynamic" if dynamic_batch else batch_size, half=half, trainwright_version=__version__,
        **extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _trace(graph, sample, tmp_name, opset, dynamic_batch)
        _finish(tmp, info, simplify)
        if check:
            _verify(tmp, graph, dtype, sample)
        os.chmod(tmp, 0o644)
        _commit(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _finish(tmp: Path, info: ExportInfo, simplify: bool) -> None:
    """Add the metadata (and simplify), validate the graph with onnx.checker, and save it back to `tmp`."""
    onnx = require("onnx")
    proto = onnx.load(os.fspath(tmp))
    if simplify:
        proto = _simplify(proto)
    write_metadata(proto, info)
    onnx.checker.check_model(proto)
    onnx.save(proto, os.fspath(tmp))
