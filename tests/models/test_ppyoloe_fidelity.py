"""PP-YOLOE-S fidelity against the SuperGradients reference fixtures: layout, eval/train outputs, fused deployment."""

import json

import torch

from trainwright.checkpoints import StrictLoad, load_checkpoint_to_model
from trainwright.models import get_model

TAG = "ppyoloe_s_c80"
NUM_PARAMETERS, NUM_KEYS = 8_084_588, 500


def _flatten(output, prefix="out"):
    """Nested tuples/lists -> {"out[i][j]": leaf}, the key scheme of the fixtures (ints stay ints)."""
    if isinstance(output, (list, tuple)):
        flat = {}
        for i, item in enumerate(output):
            flat.update(_flatten(item, f"{prefix}[{i}]"))
        return flat
    return {prefix: output}


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def _run_reference_procedure(model, x):
    """Eval forward, then train forward after seeding, as the fixtures were produced; returns both and BN stats."""
    model.eval()
    with torch.no_grad():
        eval_out = _flatten(model(x))
    model.train()
    torch.manual_seed(2)
    with torch.no_grad():
        train_out = _flatten(model(x))
    return eval_out, train_out, model.state_dict()


def _perturbed_state(sg_models_dir, reference):
    """The reference checkpoint with the fixture's float and int8-coded overrides applied."""
    checkpoint = torch.load(sg_models_dir / f"{TAG}_ckpt.pth", map_location="cpu", weights_only=True)
    checkpoint["net"].update(reference["overrides"])
    for key, coded in reference["overrides_int8"].items():
        checkpoint["net"][key] = coded["codes"].float() * coded["scale"]
    return checkpoint


def _load(sg_models_dir, tmp_path, perturbed: bool):
    """(model loaded through load_checkpoint_to_model with StrictLoad.ON, input, reference results)."""
    x = torch.load(sg_models_dir / "input_x.pt", map_location="cpu", weights_only=True)["x"]
    suffix = "_perturbed_outputs.pt" if perturbed else "_outputs.pt"
    reference = torch.load(sg_models_dir / f"{TAG}{suffix}", map_location="cpu", weights_only=True)
    checkpoint_path = sg_models_dir / f"{TAG}_ckpt.pth"
    if perturbed:
        checkpoint_path = tmp_path / f"{TAG}_perturbed_ckpt.pth"
        torch.save(_perturbed_state(sg_models_dir, reference), checkpoint_path)
        x = x[:, :, :160, :160]
    model = get_model("ppyoloe_s", 80)
    load_checkpoint_to_model(model, checkpoint_path, strict=StrictLoad.ON)
    return model, x, reference["results"]["x"]


def _assert_same_structure(got: dict, expected: dict):
    assert set(got) == set(expected)
    for name, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert got[name].shape == value.shape and got[name].dtype == value.dtype, name
        else:
            assert got[name] == value, name  # anchors per level: exact ints


def _assert_bn_stats_match(state, reference_stats):
    assert len(reference_stats) == 3 * 78
    for name, expected in reference_stats.items():
        if name.endswith("num_batches_tracked"):
            assert state[name].item() == expected.item(), name
        else:
            torch.testing.assert_close(state[name], expected, rtol=1e-4, atol=1e-5, msg=name)


def test_state_dict_layout_matches_the_reference_manifest(sg_models_dir):
    manifest = json.loads((sg_models_dir / f"{TAG}_state_dict_manifest.json").read_text())["keys"]
    with torch.device("meta"):
        state = get_model("ppyoloe_s", 80).state_dict()
    got = [[name, list(t.shape), str(t.dtype).removeprefix("torch.")] for name, t in state.items()]
    assert len(got) == NUM_KEYS
    assert got == manifest


def test_parameter_count_and_batchnorm_settings_match_the_reference():
    with torch.device("meta"):
        model = get_model("ppyoloe_s", 80)
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMETERS
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 78 and {(m.eps, m.momentum) for m in norms} == {(1e-5, 0.1)}


def test_plain_outputs_match_the_reference(sg_models_dir, tmp_path):
    model, x, reference = _load(sg_models_dir, tmp_path, perturbed=False)
    eval_out, train_out, state_after = _run_reference_procedure(model, x)
    _assert_same_structure(eval_out, reference["eval"])
    _assert_same_structure(train_out, reference["train"])
    # Zero-initialised prediction convs: every output is a constant, boxes decode to 8 strides per side.
    assert _max_abs(eval_out["out[0][0]"], reference["eval"]["out[0][0]"]) <= 1e-4
    for got, expected in ((eval_out, reference["eval"]), (train_out, reference["train"])):
        for name, value in expected.items():
            if isinstance(value, torch.Tensor):
                assert _max_abs(got[name], value) <= 1e-4, name
    _assert_bn_stats_match(state_after, reference["bn_running_stats_after_train_forward"])


def test_perturbed_outputs_match_the_reference(sg_models_dir, tmp_path):
    model, x, reference = _load(sg_models_dir, tmp_path, perturbed=True)
    eval_out, train_out, state_after = _run_reference_procedure(model, x)
    _assert_same_structure(eval_out, reference["eval"])
    _assert_same_structure(train_out, reference["train"])
    expected = reference["eval"]
    assert expected["out[1][0]"].std(dim=1).min() > 0.1  # the logits vary over anchors: every layer is exercised
    torch.testing.assert_close(eval_out["out[0][0]"], expected["out[0][0]"], rtol=1e-2, atol=5e-2)  # boxes px
    torch.testing.assert_close(eval_out["out[0][1]"], expected["out[0][1]"], rtol=0, atol=1e-3)  # scores
    for name in ("out[1][0]", "out[1][1]"):  # class logits, box-bin logits
        torch.testing.assert_close(eval_out[name], expected[name], rtol=1e-3, atol=5e-3, msg=name)
    for name in ("out[1][2]", "out[1][3]", "out[1][5]"):  # anchor boxes, points, strides: exact
        assert torch.equal(eval_out[name], expected[name]), name
    for name, value in reference["train"].items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(train_out[name], value, rtol=1e-3, atol=5e-3, msg=name)
    _assert_bn_stats_match(state_after, reference["bn_running_stats_after_train_forward"])


def test_fused_model_gives_the_same_eval_outputs(sg_models_dir, tmp_path):
    model, x, _ = _load(sg_models_dir, tmp_path, perturbed=True)
    model.eval()
    with torch.no_grad():
        before = _flatten(model(x))
        model.fuse()
        after = _flatten(model(x))
    state = model.state_dict()
    assert not any("branch_3x3" in k or "branch_1x1" in k for k in state)
    assert sum(".rbr_reparam.weight" in k for k in state) == 6 + 5  # RepVGG blocks: backbone 1+2+2+1, neck 5 x 1
    for name, value in before.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(after[name], value, rtol=1e-3, atol=1e-3, msg=name)
