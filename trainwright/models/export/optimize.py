"""Local optimisation of an exported detector: ONNX Runtime graph optimisation, INT8 quantisation, and what they cost.

- ``optimize_graph``: the graph after onnxruntime's extended optimisations (fused convolutions and activations),
  saved so that sessions start without redoing them; runnable by onnxruntime only.
- ``quantize_int8``: INT8 weights with onnxruntime.quantization. Static quantisation (the default: QDQ,
  activation ranges calibrated once on a few images) runs the whole network in INT8: onnxruntime fuses each
  DequantizeLinear -> op -> QuantizeLinear group into QLinearConv, QLinearSigmoid, QLinearMul (the two halves of
  SiLU), QLinearAdd, QLinearConcat when it loads the file at its full optimisation level ("all"; at "extended" or
  "basic" the same file runs 1.2x and 2.5x slower). Dynamic quantisation (activation ranges measured at run time)
  needs no data, but its ConvInteger kernels make a CNN slower than float32 on a CPU.
- ``measure_latency``, ``onnx_latencies`` and ``evaluate_map`` measure the result; ``optimization_report`` puts
  it together.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from trainwright.metrics.detection import DetectionMetrics_050, DetectionMetrics_050_095
from trainwright.models.export.checks import inference_session
from trainwright.models.export.contract import require
from trainwright.models.export.graph import INPUT_NAME

__all__ = ["QUANTIZATION_MODES", "evaluate_map", "measure_latency", "onnx_latencies", "onnx_latency", "optimization_report",
           "optimize_graph", "quantize_int8"]

QUANTIZATION_MODES = ("static", "dynamic")  # the first is the default


def optimize_graph(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Save `source` after onnxruntime's extended graph optimisations to `target` (atomically)."""
    ort = require("onnxruntime")
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = tmp
        options.log_severity_level = 3
        ort.InferenceSession(os.fspath(source), sess_options=options, providers=["CPUExecutionProvider"])
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def nodes_after_last_conv(path: str | os.PathLike) -> list[str]:
    """Names of the nodes of an ONNX graph from which no Conv can be reached: the decoding after the network."""
    onnx = require("onnx")
    nodes = onnx.load(os.fspath(path)).graph.node
    producer = {output: node for node in nodes for output in node.output}
    feeds_conv = set()
    stack = [node for node in nodes if node.op_type == "Conv"]
    while stack:
        node = stack.pop()
        if node.name in feeds_conv:
            continue
        feeds_conv.add(node.name)
        stack += [producer[i] for i in node.input if i in producer]
    return [node.name for node in nodes if node.name not in feeds_conv]


def float_convolutions(path: str | os.PathLike) -> list[str]:
    """Names of the Conv nodes static INT8 keeps in float32: the first (the image's) and the head's prediction
    convolutions (those whose outputs feed only the decoding)."""
    onnx = require("onnx")
    nodes = onnx.load(os.fspath(path)).graph.node
    decoding = set(nodes_after_last_conv(path))
    readers: dict[str, list[str]] = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node.name)
    convs = [node for node in nodes if node.op_type == "Conv"]
    predictions = [node.name for node in convs
                   if all(reader in decoding for output in node.output for reader in readers.get(output, []))]
    if not convs:
        return []
    return list(dict.fromkeys([convs[0].name, *predictions]))


class _CalibrationReader:
    """Feeds calibration batches [b, 3, H, W] to onnxruntime's static quantiser."""

    def __init__(self, batches: Iterable):
        self._batches = iter(batches)

    def get_next(self):
        batch = next(self._batches, None)
        if batch is None:
            return None
        array = batch.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        return {INPUT_NAME: np.ascontiguousarray(array, dtype=np.float32)}


def quantize_int8(source: str | os.PathLike, target: str | os.PathLike, mode: str = "static",
                  calibration: Iterable | None = None) -> Path:
    """INT8 copy of the float32 file `source` at `target`: `mode` "static" calibrated on `calibration` (an
    iterable of image batches [b, 3, H, W] as the model takes them), or "dynamic" (no calibration)."""
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"quantisation mode must be one of {QUANTIZATION_MODES}, got {mode!r}")
    if mode == "static" and calibration is None:
        raise ValueError("static quantisation needs calibration images (or use mode='dynamic')")
    quantization = require("onnxruntime.quantization")
    target = Path(target)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        prepared, quantized = os.path.join(tmp, "prepared.onnx"), os.path.join(tmp, "int8.onnx")
        quantization.quant_pre_process(os.fspath(source), prepared, skip_symbolic_shape=True)
        if mode == "dynamic":
            quantization.quantize_dynamic(prepared, quantized, weight_type=quantization.QuantType.QUInt8)
        else:
            # The network is quantised, the decoding after its last convolutions stays float: it concatenates
            # pixels with scores in (0, 1), and one 8-bit scale over both would round every score away.
            # The first convolution and the prediction convolutions stay float too: on trained YOLOX-N and -S
            # they held most of the accuracy lost (mAP@0.50:0.95 drop 1.01 -> 0.35 and 1.01 -> 0.69 points)
            # at no measurable latency.
            # Every op type onnxruntime can quantise is (op_types_to_quantize=None), SiLU's Sigmoid and Mul
            # included: left float, each SiLU costs a DequantizeLinear and a QuantizeLinear, which measured slower
            # than its QLinearSigmoid + QLinearMul. U8 activations with S8 weights per channel is onnxruntime's
            # fast x86 kernel (U8 weights measured ~1.3x slower); the QOperator format measured the same as QDQ.
            quantization.quantize_static(prepared, quantized, _CalibrationReader(calibration),
                                         quant_format=quantization.QuantFormat.QDQ,
                                         activation_type=quantization.QuantType.QUInt8,
                                         weight_type=quantization.QuantType.QInt8, per_channel=True,
                                         nodes_to_exclude=nodes_after_last_conv(prepared)
                                         + float_convolutions(prepared))
        os.replace(quantized, target)
    return target


def measure_latency(run: Callable[[], object], runs: int = 10, warmup: int = 2) -> dict[str, float]:
    """Median and mean wall time of `run()` in milliseconds over `runs` calls after `warmup` calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times), "runs": runs}


def onnx_latencies(paths: dict[str, str | os.PathLike], batch_size: int, input_size: tuple[int, int],
                   runs: int = 10, warmup: int = 2, threads: int | None = None) -> dict[str, dict[str, float]]:
    """Latency of each file as `onnx_latency` measures it, timed in turns (one run of each file per round), so
    that a change of load on a shared machine slows every file alike and their ratios stay meaningful."""
    sessions, images = {}, {}
    for name, path in paths.items():
        sessions[name] = inference_session(path, threads=threads)
        declared = sessions[name].get_inputs()[0]
        dtype = np.float16 if declared.type == "tensor(float16)" else np.float32
        array = (np.random.default_rng(0).random((batch_size, 3, *input_size)) * 255).astype(dtype)
        images[name] = {declared.name: array}
    for _ in range(warmup):
        for name, session in sessions.items():
            session.run(None, images[name])
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(runs):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, images[name])
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: {"median_ms": statistics.median(t), "mean_ms": statistics.fmean(t), "runs": runs}
            for name, t in times.items()}


def onnx_latency(path: str | os.PathLike, batch_size: int, input_size: tuple[int, int], runs: int = 10,
                 warmup: int = 2, threads: int | None = None) -> dict[str, float]:
    """Latency of one onnxruntime session run of `path` on a random batch [batch_size, 3, H, W]."""
    session = inference_session(path, threads=threads)
    declared = session.get_inputs()[0]
    dtype = np.float16 if declared.type == "tensor(float16)" else np.float32
    images = (np.random.default_rng(0).random((batch_size, 3, *input_size)) * 255).astype(dtype)
    return measure_latency(lambda: session.run(None, {declared.name: images}), runs, warmup)


@torch.no_grad()
def evaluate_map(predict: Callable, post_prediction_callback: Callable, loader: Iterable, num_classes: int,
                 max_batches: int | None = None) -> dict[str, float]:
    """mAP@0.50 and mAP@0.50:0.95 (trainwright's COCO-style metrics) of `predict(images)` over a detection loader
    whose batches are (images, targets [n, 6] in pixels) or (images, targets, {"crowd_targets": ...})."""
    metrics = [DetectionMetrics_050(num_classes, post_prediction_callback, normalize_targets=True),
               DetectionMetrics_050_095(num_classes, post_prediction_callback, normalize_targets=True)]
    for index, batch in enumerate(loader):
        if max_batches is not None and index >= max_batches:
            break
        images, targets = batch[0], batch[1]
        crowd = batch[2].get("crowd_targets") if len(batch) > 2 and isinstance(batch[2], dict) else None
        preds = predict(images.cpu().float())
        for metric in metrics:
            metric.update(preds, targets.cpu(), device="cpu", inputs=images, crowd_targets=crowd)
    out = {}
    for metric in metrics:
        out.update({k: float(v) for k, v in metric.compute().items() if k.startswith("mAP")})
    return out


def optimization_report(onnx_path: str | os.PathLike, out_dir: str | os.PathLike, *, batch_size: int = 1,
                        quantization: str = "static", calibration: Iterable | None = None,
                        loader: Iterable | None = None, postprocess: dict | None = None, runs: int = 10,
                        max_batches: int | None = None) -> dict:
    """Optimise and quantise a float32 export into `out_dir`, then measure both against it.

    Writes ``model.optimized.onnx`` and ``model.int8.onnx``; returns {"files", "latency_ms" (median per
    variant, batch `batch_size`, the variants timed in turns), "map" (per variant, when `loader` is given), "map_drop_points" (float32
    minus INT8, in points)}.
    """
    from trainwright.models.export.runtime import OnnxDetector

    out_dir = Path(out_dir)
    variants = {"onnxruntime_fp32": Path(onnx_path),
                "onnxruntime_optimized": optimize_graph(onnx_path, out_dir / "model.optimized.onnx"),
                "onnxruntime_int8": quantize_int8(onnx_path, out_dir / "model.int8.onnx", quantization, calibration)}
    detectors = {name: OnnxDetector(path) for name, path in variants.items()}
    size = detectors["onnxruntime_fp32"].input_size
    report: dict = {"batch_size": batch_size, "input_size": list(size), "quantization": quantization,
                    "files": {name: path.name for name, path in variants.items()}, "latency_ms": {}, "map": {}}
    for name, latency in onnx_latencies(variants, batch_size, size, runs).items():
        report["latency_ms"][name] = round(latency["median_ms"], 3)
    if loader is not None:
        settings = {"conf": 0.001, "iou": 0.6, "max_predictions": 100, **(postprocess or {})}
        for name in ("onnxruntime_fp32", "onnxruntime_int8"):
            detector = detectors[name]
            post = detector.post_prediction_callback(settings["conf"], settings["iou"], settings["max_predictions"])
            report["map"][name] = evaluate_map(detector.model, post, loader, len(detector.class_names), max_batches)
        fp32, int8 = report["map"]["onnxruntime_fp32"], report["map"]["onnxruntime_int8"]
        report["map_drop_points"] = {k: round(100 * (fp32[k] - int8[k]), 3) for k in fp32}
    return report
