"""quantize_int8: static INT8 by default, the whole network in INT8 once onnxruntime has loaded the file."""

import collections

import onnx
import pytest
import torch
from export_helpers import images, lively_yolox

from trainwright.export import OnnxDetector, export_onnx
from trainwright.models.export.optimize import (
    QUANTIZATION_MODES,
    float_convolutions,
    nodes_after_last_conv,
    quantize_int8,
)

ort = pytest.importorskip("onnxruntime")

SIZE = (64, 64)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    path = export_onnx(lively_yolox(input_size=SIZE), folder / "m.onnx", SIZE, dynamic_batch=True)
    calibration = [images(4, SIZE, seed=seed) for seed in range(2)]
    return path, quantize_int8(path, folder / "m.int8.onnx", calibration=calibration)  # no mode: the default


def ops_as_run(path, tmp_path, level) -> collections.Counter:
    """Op types of the graph onnxruntime runs after its optimisations at `level`."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = level
    options.optimized_model_filepath = str(tmp_path / "as_run.onnx")
    ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return collections.Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)


def decoding_inputs(graph, decoding: set[str]) -> set[str]:
    """Names of the tensors the float decoding reads."""
    return {name for node in graph.node if node.name in decoding for name in node.input}


@pytest.mark.parametrize("level", ["ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"])
def test_the_default_runs_the_network_in_int8_but_its_first_and_prediction_convolutions(exported, tmp_path, level):
    fp32, int8 = exported
    assert QUANTIZATION_MODES[0] == "static"
    source = onnx.load(str(fp32)).graph
    decoding = set(nodes_after_last_conv(fp32))
    conv_names = [node.name for node in source.node if node.op_type == "Conv"]
    silus = sum(node.op_type == "Sigmoid" and node.name not in decoding for node in source.node)
    head_outputs = [node.name for node in source.node if node.op_type == "Conv"
                    and any(out in decoding_inputs(source, decoding) for out in node.output)]
    kept_float = float_convolutions(fp32)
    assert kept_float == [conv_names[0], *head_outputs] and len(head_outputs) == 9
    ops = ops_as_run(int8, tmp_path, getattr(ort.GraphOptimizationLevel, level))
    # every other convolution and both halves of every SiLU run as INT8 kernels, nothing float in between: one
    # QuantizeLinear after the float first convolution, one DequantizeLinear before the prediction convolutions
    # of each head branch (whose outputs feed the float decoding)
    assert ops["QLinearConv"] == len(conv_names) - len(kept_float)
    assert ops["Conv"] + ops["FusedConv"] == len(kept_float)
    assert ops["QLinearSigmoid"] == ops["QLinearMul"] == silus > 0 and ops["QuickGelu"] == 0
    assert ops["QuantizeLinear"] == 1 and ops["DequantizeLinear"] == len(head_outputs)
    assert ops["QLinearAdd"] > 0 and ops["QLinearConcat"] > 0


def test_int8_outputs_follow_float32(exported):
    fp32, int8 = exported
    x = images(4, SIZE, seed=7)  # not a calibration batch
    float_boxes, float_scores = OnnxDetector(fp32).model(x)
    int8_boxes, int8_scores = OnnxDetector(int8).model(x)
    assert int8_boxes.shape == float_boxes.shape and int8_scores.shape == float_scores.shape
    # A random 113-layer network has no margins, so 8-bit rounding compounds through it: measured, the median
    # box corner moves 0.2-0.3 px (of 64) and a few outliers far more; scores correlate 0.6-0.8. A broken
    # quantisation (wrong scales, swapped channels, a lost decoding) moves boxes by tens of pixels.
    assert (float_boxes - int8_boxes).abs().median() < 1.0
    assert torch.corrcoef(torch.stack([float_scores.flatten(), int8_scores.flatten()]))[0, 1] > 0.5


def test_static_without_calibration_is_refused_and_writes_nothing(exported, tmp_path):
    fp32, _ = exported
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8(fp32, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="'fast'"):
        quantize_int8(fp32, tmp_path / "x.onnx", "fast")
    assert not list(tmp_path.iterdir())
