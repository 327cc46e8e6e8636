"""trainwright.export.export_onnx: the contract it needs, what it writes, and what it refuses."""

import onnx
import pytest
import torch
from export_helpers import lively_yolox

from trainwright.export import OnnxDetector, export_onnx
from trainwright.models.export import OnnxMismatchError

pytest.importorskip("onnxruntime")

SIZE = (64, 64)


@pytest.fixture(scope="module")
def model():
    m = lively_yolox(input_size=SIZE)
    m.set_dataset_processing_params(class_names=["a", "b", "c", "d", "e"], input_size=[64, 64])
    return m


def test_metadata_input_size_and_names_come_from_the_model(model, tmp_path):
    path = export_onnx(model, tmp_path / "m.onnx", metadata={"architecture": "yolox_n"})
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["class_names"] == '["a", "b", "c", "d", "e"]' and props["input_size"] == "[64, 64]"
    assert props["output_format"] == '"boxes_scores"' and props["architecture"] == '"yolox_n"'
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["images"] and [o.name for o in graph.output] == ["boxes", "scores"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_overwrite_only_when_asked(model, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"user data")
    with pytest.raises(FileExistsError, match="already exists"):
        export_onnx(model, target)
    assert target.read_bytes() == b"user data"
    export_onnx(model, target, overwrite=True, opset=13)
    assert onnx.load(str(target)).opset_import[0].version == 13
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_model_without_the_contract_is_refused(tmp_path):
    with pytest.raises(TypeError, match="Sequential cannot be exported: it has no boxes_and_scores"):
        export_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)), tmp_path / "x.onnx", (32, 32))


def test_a_mismatch_found_by_the_check_keeps_nothing(model, tmp_path, monkeypatch):
    # A graph whose traced computation differs from its eager one: the check must catch it.
    monkeypatch.setattr("trainwright.models.export.graph.ExportGraph.forward",
                        lambda self, x: tuple(o * 1.5 if torch.jit.is_tracing() else o
                                              for o in self.model.boxes_and_scores(self.model(x))))
    with pytest.raises(OnnxMismatchError, match="boxes: ONNX Runtime and PyTorch differ"):
        export_onnx(model, tmp_path / "bad.onnx")
    assert not list(tmp_path.iterdir())


def test_prep_model_for_conversion_runs_on_a_copy(model, tmp_path):
    calls = []

    class Fusable(type(model)):
        def prep_model_for_conversion(self, input_size=None, **kwargs):
            calls.append(tuple(input_size))
            self.fused = True

    fusable = Fusable.__new__(Fusable)
    fusable.__dict__.update(model.__dict__)
    export_onnx(fusable, tmp_path / "f.onnx", SIZE)
    assert calls == [SIZE] and not hasattr(fusable, "fused")


@pytest.mark.parametrize("kwargs, error, named", [
    ({"input_size": (64, 70)}, ValueError, "64 x 70 is not divisible by the model stride 32"),
    ({"metadata": {"colour": 1}}, ValueError, "unknown metadata key(s) ['colour']"),
    ({"max_predictions": 0, "nms": True}, ValueError, "max_predictions must be a positive integer"),
    ({"iou": 0.0, "nms": True}, ValueError, "iou must be in (0, 1]"),
    ({"opset": "17"}, ValueError, "opset must be an integer"),
])
def test_bad_arguments_are_named(model, tmp_path, kwargs, error, named):
    with pytest.raises(error) as info:
        export_onnx(model, tmp_path / "x.onnx", **kwargs)
    assert named in str(info.value) and not list(tmp_path.iterdir())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's note on its TorchScript-based exporter
def test_a_file_without_our_metadata_is_named(tmp_path):
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Identity(), (torch.zeros(1, 3),), str(plain), dynamo=False)
    with pytest.raises(ValueError, match="plain.onnx has no trainwright export metadata"):
        OnnxDetector(plain)
    with pytest.raises(FileNotFoundError, match="ONNX file not found"):
        OnnxDetector(tmp_path / "missing.onnx")


def test_static_int8_keeps_the_decoding_float_and_the_scores_alive(model, tmp_path):
    from trainwright.models.export.optimize import nodes_after_last_conv, quantize_int8

    path = export_onnx(model, tmp_path / "m.onnx", dynamic_batch=True)
    graph = onnx.load(str(path)).graph
    excluded = set(nodes_after_last_conv(path))
    kinds = {node.op_type for node in graph.node if node.name in excluded}
    assert "Exp" in kinds and "Conv" not in kinds  # the box decoding, not the network
    calibration = [torch.rand(4, 3, *SIZE, generator=torch.Generator().manual_seed(i)) * 255 for i in range(2)]
    int8 = quantize_int8(path, tmp_path / "int8.onnx", "static", calibration)
    assert {n.op_type for n in onnx.load(str(int8)).graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    x = calibration[0]
    float_scores = OnnxDetector(path).model(x)[1]
    int8_scores = OnnxDetector(int8).model(x)[1]
    # a random network quantises coarsely; what must hold is that scores stay scores (not rounded to a few levels)
    assert int8_scores.std() > 0.05 and len(int8_scores.unique()) > 100
    assert torch.corrcoef(torch.stack([float_scores.flatten(), int8_scores.flatten()]))[0, 1] > 0.5


def test_comparison_accepts_equal_infinities_and_catches_the_rest():
    import numpy as np

    from trainwright.models.export import compare_outputs

    inf = np.inf
    assert compare_outputs([np.array([-inf, 100.0, 0.5])], [np.array([-inf, 100.001, 0.5])], 1e-4, 1e-4,
                           relative_to="output") < 2e-3
    for got in ([inf, 100.0, 0.5], [-inf, 100.0, np.nan], [-inf, 101.0, 0.5]):
        with pytest.raises(OnnxMismatchError):
            compare_outputs([np.array(got)], [np.array([-inf, 100.0, 0.5])], 1e-4, 1e-4, relative_to="output")
