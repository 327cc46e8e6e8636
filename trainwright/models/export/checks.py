"""Checks around an ONNX file: can onnxruntime run an opset, does a file agree with the PyTorch model."""

from __future__ import annotations

import functools
import os
import re

import numpy as np
import torch
from torch import Tensor, nn

from trainwright.models.export.contract import require

__all__ = ["MIN_OPSET", "OnnxMismatchError", "check_opset", "compare_outputs", "inference_session", "max_exporter_opset",
           "run_onnx", "torch_outputs"]

MIN_OPSET = 11  # NonMaxSuppression and TopK with a dynamic k need 10; 11 is the oldest opset tested here


class OnnxMismatchError(ValueError):
    """The ONNX Runtime outputs differ from the PyTorch outputs beyond the tolerance."""


def max_exporter_opset() -> int:
    """The newest opset torch's TorchScript-based ONNX exporter writes."""
    from torch.onnx import _constants

    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET))


@functools.cache
def _onnxruntime_error(opset: int) -> str | None:
    """None when onnxruntime loads an opset-`opset` model, else its error message."""
    onnx, ort = require("onnx"), require("onnxruntime")
    helper = onnx.helper
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    try:
        ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    except Exception:  # an opset newer than the onnx package knows: let onnxruntime judge it
        ir_version = onnx.IR_VERSION
    try:
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnx and onnxruntime raise their own error types
        newest = re.search(r"support for domain ai\.onnx is till opset (\d+)", str(err))
        if newest:
            return f"the newest opset it runs is {newest.group(1)}"
        return str(err).strip().splitlines()[0][-200:] if str(err).strip() else type(err).__name__
    return None


def check_opset(opset) -> int:
    """`opset` as an int, or a ValueError naming it when onnxruntime cannot run it or the exporter cannot write it."""
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise ValueError(f"opset must be an integer, got {opset!r}")
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old: export needs at least opset {MIN_OPSET}")
    ort = require("onnxruntime")
    error = _onnxruntime_error(opset)
    if error is not None:
        raise ValueError(f"opset {opset}: onnxruntime {ort.__version__} cannot run it ({error})")
    newest = max_exporter_opset()
    if opset > newest:
        raise ValueError(f"opset {opset} is newer than the ONNX exporter of torch {torch.__version__} writes; use "
                         f"{MIN_OPSET} to {newest}")
    return opset


def inference_session(path: str | os.PathLike, threads: int | None = None, optimization: str = "all"):
    """An onnxruntime CPU session on `path`; `threads` caps intra-op threads (None: onnxruntime's default)."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise here
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
             "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}[optimization]
    options.graph_optimization_level = level
    return ort.InferenceSession(os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"])


def run_onnx(session, images: Tensor | np.ndarray) -> list[np.ndarray]:
    """Run `session` on images [B, C, H, W], cast to the input type the file declares; its outputs in order."""
    array = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    declared = session.get_inputs()[0]
    dtype = np.float16 if declared.type == "tensor(float16)" else np.float32
    return session.run(None, {declared.name: np.ascontiguousarray(array, dtype=dtype)})


def compare_outputs(onnx_outputs, torch_outputs, rtol: float, atol: float, names=None,
                    relative_to: str = "element") -> float:
    """Largest |onnx - torch| over paired outputs; OnnxMismatchError when any |a - b| > atol + rtol * |b|, with |b|
    the value itself (`relative_to` "element", numpy's allclose) or the largest |b| of its output ("output": for
    coordinates, where a difference of two large numbers near 0 keeps the error of the large ones)."""
    if isinstance(torch_outputs, Tensor):
        torch_outputs = [torch_outputs]
    if len(onnx_outputs) != len(torch_outputs):
        raise OnnxMismatchError(f"the ONNX file has {len(onnx_outputs)} outputs, the PyTorch model {len(torch_outputs)}")
    worst = 0.0
    for i, (got, want) in enumerate(zip(onnx_outputs, torch_outputs)):
        name = names[i] if names else f"output {i}"
        want = want.detach().cpu().float().numpy() if isinstance(want, Tensor) else np.asarray(want, np.float32)
        got = np.asarray(got, np.float32)
        if got.shape != want.shape:
            raise OnnxMismatchError(f"{name}: ONNX shape {got.shape} differs from PyTorch shape {want.shape}")
        if got.size:
            same = (got == want) | (np.isnan(got) & np.isnan(want))  # equal infinities and NaNs agree
            with np.errstate(invalid="ignore"):
                diff = np.where(same, 0.0, np.abs(got - want))
            finite = np.abs(want[np.isfinite(want)])
            scale = np.abs(want) if relative_to == "element" else (finite.max() if finite.size else 0.0)
            bad = ~(diff <= atol + rtol * scale)  # any other NaN or infinity counts as a mismatch
            worst = max(worst, float(np.nanmax(np.where(np.isfinite(diff), diff, 0.0))))
            if bad.any():
                at = tuple(int(v) for v in np.argwhere(bad)[0])
                raise OnnxMismatchError(f"{name}: ONNX Runtime and PyTorch differ at {at}: {got[at]!r} vs "
                                        f"{want[at]!r} ({int(bad.sum())} of {bad.size} values beyond rtol={rtol}, "
                                        f"atol={atol})")
    return worst


@torch.no_grad()
def torch_outputs(module: nn.Module, images: Tensor) -> list[Tensor]:
    """The outputs of `module` on images as a flat list of tensors (tuples and lists are flattened)."""
    out = module(images)
    flat, stack = [], [out]
    while stack:
        item = stack.pop(0)
        if isinstance(item, (tuple, list)):
            stack[:0] = list(item)
        else:
            flat.append(item)
    return flat
