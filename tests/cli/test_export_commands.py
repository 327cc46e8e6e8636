"""`trainwright export`, `predict` on the .onnx it writes, and `trainwright registry`, as a user types them."""

import contextlib
import io
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from export_helpers import lively_yolox, write_checkpoint

from trainwright.cli import main
from trainwright.export import OnnxDetector
from trainwright.registry import LocalModelRegistry

pytest.importorskip("onnxruntime")

SIZE = (64, 64)


def run_cli(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    return write_checkpoint(folder / "ckpt_best.pth", lively_yolox(input_size=SIZE), input_size=SIZE)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(48, 80), (64, 64)]):
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        cv2.rectangle(image, (10, 10), (30, 40), (0, 0, 255), -1)
        cv2.imwrite(str(folder / f"img{i}.png"), image)
        paths.append(folder / f"img{i}.png")
    return paths


def test_export_writes_the_default_file_with_metadata_and_refuses_to_overwrite(checkpoint):
    code, out, _ = run_cli(["export", checkpoint])
    target = checkpoint.with_suffix(".onnx")
    assert code == 0 and target.is_file()
    assert "images [1, 3, 64, 64] float32 -> boxes [1, N, 4]" in out and str(target) in out
    detector = OnnxDetector(target)
    assert detector.class_names == ["circle", "square", "triangle", "cross", "star"]
    assert detector.input_size == SIZE and detector.info.architecture == "yolox_n"
    before = target.read_bytes()
    code, _, err = run_cli(["export", checkpoint])
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 2
    assert target.read_bytes() == before
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["ckpt_best.onnx", "ckpt_best.pth"]


def test_predict_on_the_onnx_file_matches_the_checkpoint(checkpoint, image_files, tmp_path):
    onnx_file = tmp_path / "model.onnx"
    assert run_cli(["export", checkpoint, "--output", onnx_file, "--dynamic-batch"])[0] == 0
    results = {}
    for name, model_file in (("torch", checkpoint), ("onnx", onnx_file)):
        code, out, _ = run_cli(["predict", model_file, *image_files, "--output", tmp_path / name, "--conf", "0.3",
                                "--device", "cpu"])
        assert code == 0
        results[name] = out
    torch_lines, onnx_lines = results["torch"].splitlines(), results["onnx"].splitlines()
    assert len(torch_lines) == len(onnx_lines) > len(image_files)
    for a, b in zip(torch_lines, onnx_lines):
        if a.startswith("  "):  # class, score and corners (pixels, 1 decimal)
            assert a.split()[0] == b.split()[0]
            np.testing.assert_allclose([float(v) for v in a.split()[1::2][:1] + a.split()[3::2]],
                                       [float(v) for v in b.split()[1::2][:1] + b.split()[3::2]], atol=0.11)
        else:
            assert a.replace("torch", "onnx").replace(str(checkpoint), str(onnx_file)) == b
    for image in image_files:
        drawn = [cv2.imread(str(tmp_path / name / image.name)).astype(int) for name in ("torch", "onnx")]
        assert np.abs(drawn[0] - drawn[1]).mean() < 0.5  # the same boxes drawn (JPEG noise aside)


def test_predict_with_nms_inside_the_file(checkpoint, image_files, tmp_path):
    onnx_file = tmp_path / "nms.onnx"
    code, out, _ = run_cli(["export", checkpoint, "--output", onnx_file, "--nms", "--conf", "0.3", "--iou", "0.6",
                            "--max-predictions", "20"])
    assert code == 0 and "detections [1, 20, 6]" in out and "num_detections [1] int64" in out
    code, out, _ = run_cli(["predict", onnx_file, image_files[0], "--output", tmp_path / "drawn", "--conf", "0.3"])
    assert code == 0 and 0 < len([line for line in out.splitlines() if line.startswith("  ")]) <= 20
    code, _, err = run_cli(["predict", onnx_file, image_files[0], "--output", tmp_path / "drawn", "--conf", "0.1"])
    assert code == 2 and "below the threshold 0.3 built into" in err


@pytest.mark.parametrize("extra, named", [
    (["--input-size", "100", "64"], "100 x 64 is not divisible by the model stride 32"),
    (["--opset", "99"], "opset 99"),
    (["--opset", "5"], "opset 5 is too old"),
    (["--conf", "1.5"], "conf must be in [0, 1], got 1.5"),
    (["--batch", "0"], "batch size must be a positive integer, got 0"),
])
def test_bad_export_arguments_are_named(checkpoint, tmp_path, extra, named):
    code, _, err = run_cli(["export", checkpoint, "--output", tmp_path / "x.onnx", *extra])
    assert code == 2 and named in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written, no temporary file left


def test_bad_export_inputs_are_named(checkpoint, tmp_path):
    code, _, err = run_cli(["export", tmp_path / "missing.pth"])
    assert code == 2 and "checkpoint not found" in err and "missing.pth" in err
    code, _, err = run_cli(["export", checkpoint, "--output", tmp_path])
    assert code == 2 and "is a directory" in err
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["processing_params"]["architecture"] = "yolox_q"
    torch.save(ckpt, tmp_path / "odd.pth")
    code, _, err = run_cli(["export", tmp_path / "odd.pth"])
    assert code == 2 and "unknown architecture 'yolox_q'" in err


def test_half_and_simplify(checkpoint, tmp_path):
    pytest.importorskip("onnxslim")
    code, out, _ = run_cli(["export", checkpoint, "--output", tmp_path / "half.onnx", "--half", "--simplify"])
    assert code == 0 and "float16" in out
    detector = OnnxDetector(tmp_path / "half.onnx")
    assert detector.session.get_inputs()[0].type == "tensor(float16)" and detector.info.half


def test_simplify_without_a_simplifier_is_a_clear_error(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxslim", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "onnxsim", None)
    code, _, err = run_cli(["export", checkpoint, "--output", tmp_path / "s.onnx", "--simplify"])
    assert code == 2 and "simplify needs onnxslim or onnxsim" in err
    assert not list(tmp_path.iterdir())


def test_batch_and_dynamic_batch_exclude_each_other_in_a_subprocess(checkpoint):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "trainwright", "export", str(checkpoint), "--batch", "2",
                           "--dynamic-batch"], capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "not allowed with argument" in done.stderr


def test_registry_commands(tmp_path, checkpoint):
    registry = LocalModelRegistry(tmp_path / "registry")
    registry.push("yolox-shapes", [checkpoint], {"architecture": "yolox_n", "input_size": [64, 64],
                                                 "class_names": ["a"], "metrics": {"mAP@0.50": 0.5}})
    root = tmp_path / "registry"
    code, out, _ = run_cli(["registry", "--registry", root, "list"])
    assert code == 0 and out.split()[:4] == ["yolox-shapes", "1", "yolox_n", "64x64"]
    code, out, _ = run_cli(["registry", "--registry", root, "show", "yolox-shapes"])
    assert code == 0 and json.loads(out)["files"]["ckpt_best.pth"]["sha256"]
    code, out, _ = run_cli(["registry", "--registry", root, "pull", "yolox-shapes", "1", "--output", tmp_path / "got"])
    assert code == 0 and (tmp_path / "got" / "ckpt_best.pth").read_bytes() == checkpoint.read_bytes()
    for args in (["show", "../etc"], ["pull", "yolox-shapes", "/abs"], ["list", "a b"]):
        code, _, err = run_cli(["registry", "--registry", root, *args])
        assert code == 2 and "is not allowed" in err and len(err.strip().splitlines()) == 2
    code, _, err = run_cli(["registry", "--registry", root, "show", "nope"])
    assert code == 2 and "'nope' is not in the registry" in err
