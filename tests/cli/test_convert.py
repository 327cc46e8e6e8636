"""`trainwright convert yolox-official IN OUT`: official YOLOX checkpoints become trainwright checkpoints that
compute the same outputs (checked against LibreYOLO's implementation of the official layout), and every
wrong input is a one-line error that leaves the files as they were."""

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from trainwright import models
from trainwright.cli import main
from trainwright.nn.state_dict import StrictLoad

REPO_ROOT = Path(__file__).resolve().parents[2]
LIBREYOLO_REASON = ("LibreYOLO cannot be imported: it is the independent implementation of the official YOLOX layout "
                    "this check converts from (pip install -e '.[interop]')")

# The official YOLOX (Megvii) state-dict grammar, from its yolo_pafpn.py, darknet.py, network_blocks.py, yolo_head.py.
OFFICIAL_KEY = re.compile(
    r"^(backbone\.backbone\.(stem|dark[2-5])|backbone\.(lateral_conv0|reduce_conv1|bu_conv1|bu_conv2|C3_p4|C3_p3|"
    r"C3_n3|C3_n4)|head\.(stems|cls_convs|reg_convs|cls_preds|reg_preds|obj_preds))"
    r"(\.(conv|bn|dconv|pconv|conv[123]|m|\d+))*\.(weight|bias|running_mean|running_var|num_batches_tracked)$"
)


def run_cli(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["convert", "yolox-official", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


def _assert_one_line_error(code, err, *fragments):
    assert code == 2 and "Traceback" not in err
    first = err.splitlines()[0]
    assert first.startswith("trainwright convert: error: ")
    for fragment in fragments:
        assert fragment in first, (fragment, first)


# --- wrong input ------------------------------------------------------------------------------------------------


def _nano_fragment():
    """A few official nano tensors: enough to infer the architecture, not to convert."""
    return {"model": {"backbone.backbone.stem.conv.conv.weight": torch.zeros(16, 12, 3, 3),
                      "backbone.backbone.dark2.0.dconv.conv.weight": torch.zeros(16, 1, 3, 3),
                      "head.cls_preds.0.weight": torch.zeros(80, 64, 1, 1)}}


def test_missing_garbage_and_foreign_inputs(tmp_path):
    out = tmp_path / "out.pth"
    code, _, err = run_cli([tmp_path / "absent.pth", out])
    _assert_one_line_error(code, err, "checkpoint not found", "absent.pth")
    (tmp_path / "garbage.pth").write_bytes(b"\x00garbage" * 100)
    code, _, err = run_cli([tmp_path / "garbage.pth", out])
    _assert_one_line_error(code, err, "garbage.pth could not be read")
    torch.save({"net": models.get_model("yolox_n", num_classes=2).state_dict()}, tmp_path / "ours.pth")
    code, _, err = run_cli([tmp_path / "ours.pth", out])
    _assert_one_line_error(code, err, "ours.pth is not an official YOLOX checkpoint: no 'model' entry")
    assert not out.exists()


def test_incomplete_or_mismatched_checkpoints_name_the_mismatch(tmp_path):
    torch.save(_nano_fragment(), tmp_path / "nano.pth")
    code, _, err = run_cli([tmp_path / "nano.pth", tmp_path / "out.pth", "--arch", "yolox_s"])
    _assert_one_line_error(code, err, "is an official yolox_n checkpoint (stem of 16 channels, depthwise convs), "
                                      "not yolox_s")
    code, _, err = run_cli([tmp_path / "nano.pth", tmp_path / "out.pth"])
    _assert_one_line_error(code, err, "does not map onto yolox_n with 80 classes: missing keys (")
    fragment = _nano_fragment()
    fragment["model"]["backbone.backbone.dark6.0.conv.weight"] = torch.zeros(1)
    torch.save(fragment, tmp_path / "odd.pth")
    code, _, err = run_cli([tmp_path / "odd.pth", tmp_path / "out.pth"])
    _assert_one_line_error(code, err, "not an official YOLOX state dict: 1 of 4 keys", "dark6")
    code, _, err = run_cli([tmp_path / "nano.pth", tmp_path / "out.pth", "--arch", "yolox_q"])
    _assert_one_line_error(code, err, "unknown model 'yolox_q'")
    assert not (tmp_path / "out.pth").exists()


def test_nothing_is_overwritten_without_asking(tmp_path):
    torch.save(_nano_fragment(), tmp_path / "nano.pth")
    before = (tmp_path / "nano.pth").read_bytes()
    code, _, err = run_cli([tmp_path / "nano.pth", tmp_path / "nano.pth"])
    _assert_one_line_error(code, err, "OUT must differ from IN")
    (tmp_path / "out.pth").write_bytes(b"keep me")
    code, _, err = run_cli([tmp_path / "nano.pth", tmp_path / "out.pth"])
    _assert_one_line_error(code, err, "out.pth exists; pass --overwrite")
    assert (tmp_path / "nano.pth").read_bytes() == before and (tmp_path / "out.pth").read_bytes() == b"keep me"


# --- equivalence with the official layout -------------------------------------------------------------------------


def official_model(size: str, seed: int, calibration: torch.Tensor):
    """LibreYOLO's YOLOX of ``size`` (official layout) with random weights and BatchNorm statistics."""
    libre = _import_libreyolo_yolox()
    torch.manual_seed(seed)
    model = libre.LibreYOLOXModel(config=size, nb_classes=80)
    generator = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for norm in norms:  # random affine; running statistics = those of the calibration batch (cumulative mode)
            norm.weight.copy_(0.2 + 0.3 * torch.rand(norm.weight.shape, generator=generator))
            norm.bias.copy_(0.2 * torch.randn(norm.bias.shape, generator=generator))
            norm.reset_running_stats()
            norm.momentum = None
        model.train()
        model(calibration)
        for norm in norms:
            norm.momentum = 0.03
    return model.eval()


def _import_libreyolo_yolox():
    try:
        import libreyolo.models.yolox.nn as libre
    except ImportError as error:  # absent, or installed without its dependencies
        pytest.skip(f"{LIBREYOLO_REASON}; {error}")
    return libre


def official_outputs(model, x):
    """(decoded [B, N, 85] in pixels, raw maps [B, 85, h, w] per level: box offsets, sigmoid obj and classes)."""
    with torch.no_grad():
        model.head.export = True
        decoded = model(x)
        model.head.export = False
        return decoded, model(x)


def our_outputs(model, x):
    """The same two outputs from a trainwright YOLOX."""
    with torch.no_grad():
        decoded, raw = model(x)
    maps = [torch.cat([r[:, 0, ..., :4], r[:, 0, ..., 4:].sigmoid()], dim=-1).permute(0, 3, 1, 2) for r in raw]
    return decoded, maps


def max_differences(official, ours):
    (dec_a, maps_a), (dec_b, maps_b) = official, ours
    return (dec_a - dec_b).abs().max().item(), max((a - b).abs().max().item() for a, b in zip(maps_a, maps_b))


@pytest.mark.slow
@pytest.mark.parametrize(("size", "arch", "through_subprocess"), [("n", "yolox_n", True), ("s", "yolox_s", False)])
def test_converted_official_weights_compute_the_same_outputs(tmp_path, size, arch, through_subprocess):
    x = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(3)) * 255
    official = official_model(size, seed=1, calibration=x)
    weights = official.state_dict()
    assert all(OFFICIAL_KEY.match(k) for k in weights), [k for k in weights if not OFFICIAL_KEY.match(k)][:3]
    for key in ("backbone.backbone.stem.conv.conv.weight", "backbone.backbone.dark5.1.conv2.bn.running_var",
                "backbone.C3_n4.m.0.conv2.conv.weight" if size == "s" else "backbone.C3_n4.m.0.conv2.pconv.conv.weight",
                "head.stems.2.bn.weight", "head.obj_preds.1.bias"):
        assert key in weights, key
    source, converted = tmp_path / f"yolox_{size}.pth", tmp_path / f"trainwright_{arch}.pth"
    torch.save({"start_epoch": 300, "model": weights, "best_ap": 0.0}, source)

    if through_subprocess:  # the command as a user types it
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run([sys.executable, "-m", "trainwright", "convert", "yolox-official", str(source),
                               str(converted)], capture_output=True, text=True, env=env, timeout=300)
        code, out, err = done.returncode, done.stdout, done.stderr
    else:
        code, out, err = run_cli([source, converted])
    assert code == 0, err
    assert f"official YOLOX as {arch}, 80 classes" in out and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [source.name, converted.name])

    ours = models.get(arch, checkpoint_path=converted, strict_load=StrictLoad.ON).eval()
    assert ours.get_processing_params()["class_names"][:2] == ["person", "bicycle"]
    for dtype, tolerance in ((torch.float64, 1e-5), (torch.float32, None)):
        official.to(dtype)
        ours.to(dtype)
        decoded, maps = max_differences(official_outputs(official, x.to(dtype)), our_outputs(ours, x.to(dtype)))
        print(f"{arch} {dtype}: max abs difference decoded {decoded:.3g}, raw maps {maps:.3g}")
        if tolerance is not None:  # the conversion itself: exact up to float64 rounding
            assert decoded < tolerance and maps < tolerance
        else:  # float32: the raw maps within 1e-5; boxes in pixels (up to ~150 here) within float32 summation noise
            assert maps < 1e-5 and decoded < 1e-3


@pytest.mark.slow
def test_converted_nano_runs_in_predict(tmp_path):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 255
    weights = official_model("n", seed=2, calibration=x).state_dict()
    torch.save({"model": weights}, tmp_path / "yolox_nano.pth")
    code, _, err = run_cli([tmp_path / "yolox_nano.pth", tmp_path / "nano.pth"])
    assert code == 0, err
    image = tmp_path / "street.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["predict", str(tmp_path / "nano.pth"), str(image), "--output", str(tmp_path / "pred"),
                     "--device", "cpu"]) == 0
    assert "street.png" in out.getvalue() and (tmp_path / "pred" / "street.png").is_file()


def test_an_official_checkpoint_given_to_models_get_says_to_convert_it(tmp_path):
    torch.save(_nano_fragment(), tmp_path / "yolox_nano.pth")
    with pytest.raises(ValueError, match=r"yolox_nano.pth is an official YOLOX checkpoint: convert it first with "
                                         r"`trainwright convert yolox-official .*yolox_nano.pth OUT.pth`"):
        models.get("yolox_n", num_classes=3, checkpoint_path=tmp_path / "yolox_nano.pth")
