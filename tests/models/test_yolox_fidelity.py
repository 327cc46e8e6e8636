"""YOLOX fidelity against the SuperGradients reference fixtures: layout, parameter counts, eval/train outputs."""

import json

import pytest
import torch

from trainwright.checkpoints import StrictLoad, load_checkpoint_to_model
from trainwright.models import get_model

# tag -> (architecture, num_classes, parameters, state_dict keys) from the fixtures README.
MODELS = {
    "yolox_n_c80": ("yolox_n", 80, 912_159, 642),
    "yolox_n_c3": ("yolox_n", 3, 897_144, 642),
    "yolox_t_c80": ("yolox_t", 80, 5_055_855, 462),
    "yolox_s_c80": ("yolox_s", 80, 8_968_255, 462),
}
WITH_OUTPUTS = ["yolox_n_c80", "yolox_n_c3", "yolox_t_c80"]


def _flatten(output, prefix="out"):
    """Nested tuples/lists of tensors -> {"out[i][j]": tensor}, the key scheme of the fixtures."""
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


@pytest.mark.parametrize("tag", list(MODELS))
def test_state_dict_layout_matches_the_reference_manifest(sg_models_dir, tag):
    arch, num_classes, _, num_keys = MODELS[tag]
    manifest = json.loads((sg_models_dir / f"{tag}_state_dict_manifest.json").read_text())["keys"]
    with torch.device("meta"):
        state = get_model(arch, num_classes).state_dict()
    got = [[name, list(t.shape), str(t.dtype).removeprefix("torch.")] for name, t in state.items()]
    assert len(got) == num_keys
    assert got == manifest


@pytest.mark.parametrize("tag", list(MODELS))
def test_parameter_count_matches_the_reference(tag):
    arch, num_classes, num_params, _ = MODELS[tag]
    with torch.device("meta"):
        model = get_model(arch, num_classes)
    assert sum(p.numel() for p in model.parameters()) == num_params


def _load_reference(sg_models_dir, tag, perturbed, tmp_path):
    """(checkpoint path to load, input, reference results) for a plain or perturbed fixture.

    The perturbed variant is the reference checkpoint with the fixture's overrides applied, saved to tmp_path.
    """
    x = torch.load(sg_models_dir / "input_x.pt", map_location="cpu", weights_only=True)["x"]
    checkpoint_path = sg_models_dir / f"{tag}_ckpt.pth"
    suffix = "_perturbed_outputs.pt" if perturbed else "_outputs.pt"
    reference = torch.load(sg_models_dir / f"{tag}{suffix}", map_location="cpu", weights_only=True)
    if perturbed:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        checkpoint["net"].update(reference["overrides"])
        checkpoint_path = tmp_path / f"{tag}_perturbed_ckpt.pth"
        torch.save(checkpoint, checkpoint_path)
        x = x[:, :, :160, :160]
    return checkpoint_path, x, reference["results"]["x"]


def _assert_bn_stats_match(state, reference_stats):
    assert len(reference_stats) > 0
    for name, expected in reference_stats.items():
        if name.endswith("num_batches_tracked"):
            assert state[name].item() == expected.item(), name
        else:
            torch.testing.assert_close(state[name], expected, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("tag", WITH_OUTPUTS)
def test_plain_outputs_match_the_reference(sg_models_dir, tmp_path, tag):
    arch, num_classes, _, _ = MODELS[tag]
    checkpoint_path, x, reference = _load_reference(sg_models_dir, tag, False, tmp_path)
    model = get_model(arch, num_classes)
    load_checkpoint_to_model(model, checkpoint_path, strict=StrictLoad.ON)
    eval_out, train_out, state_after = _run_reference_procedure(model, x)

    assert set(eval_out) == set(reference["eval"]) and set(train_out) == set(reference["train"])
    for name, expected in reference["eval"].items():
        assert eval_out[name].shape == expected.shape, name
        assert _max_abs(eval_out[name], expected) <= 1e-4, name
    for name, expected in reference["train"].items():
        assert train_out[name].shape == expected.shape, name
        # Train-mode outputs carry batch-statistics summation noise: the fixture README bounds them at 2.5e-4
        # against float64 (up to 2x for another float32 implementation or thread count).
        assert _max_abs(train_out[name], expected) <= 5e-4, name
    _assert_bn_stats_match(state_after, reference["bn_running_stats_after_train_forward"])


@pytest.mark.parametrize("tag", WITH_OUTPUTS)
def test_perturbed_outputs_match_the_reference(sg_models_dir, tmp_path, tag):
    arch, num_classes, _, _ = MODELS[tag]
    checkpoint_path, x, reference = _load_reference(sg_models_dir, tag, True, tmp_path)
    model = get_model(arch, num_classes)
    load_checkpoint_to_model(model, checkpoint_path, strict=StrictLoad.ON)
    eval_out, train_out, state_after = _run_reference_procedure(model, x)

    expected_decoded = reference["eval"]["out[0]"]
    assert eval_out["out[0]"].shape == expected_decoded.shape == (2, 525, 5 + num_classes)
    torch.testing.assert_close(eval_out["out[0]"], expected_decoded, rtol=1e-2, atol=1e-3)
    for level in range(3):
        name = f"out[1][{level}]"
        torch.testing.assert_close(eval_out[name], reference["eval"][name], rtol=1e-3, atol=5e-3, msg=name)
    # The perturbed logits vary over positions, so this comparison exercises every layer.
    assert reference["eval"]["out[1][0]"].std(dim=(2, 3)).min() > 0.1
    for name, expected in reference["train"].items():
        torch.testing.assert_close(train_out[name], expected, rtol=1e-3, atol=5e-3, msg=name)
    _assert_bn_stats_match(state_after, reference["bn_running_stats_after_train_forward"])
