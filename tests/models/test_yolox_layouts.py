"""The Focus stem and the 6x6 stem compute the same function; published YOLOX layouts map onto trainwright's."""

import re

import pytest
import torch
import torch.nn.functional as F

from trainwright.models import get_model
from trainwright.models.detection.yolox_layouts import (
    adapt_sg_yolox_state_dict,
    focus_to_stem_weight,
    infer_official_yolox_architecture,
    official_key_to_trainwright,
)

# Pixel phases (row parity, column parity) in the order the official Focus stacks them on channels.
FOCUS_PHASES = [(0, 0), (1, 0), (0, 1), (1, 1)]


def focus_forward(x, weight):
    """Official Focus: space-to-depth (top-left, bottom-left, top-right, bottom-right), then 3x3 conv, padding 1."""
    stacked = torch.cat([x[..., dr::2, dc::2] for dr, dc in FOCUS_PHASES], dim=1)
    return F.conv2d(stacked, weight, padding=1)


def focus_weight_of(stem):
    """The Focus weight [C, 4 * Cin, 3, 3] whose function is the 6x6 stride-2 stem ``stem`` [C, Cin, 6, 6]."""
    return torch.cat([stem[:, :, dr::2, dc::2] for dr, dc in FOCUS_PHASES], dim=1)


@pytest.mark.parametrize("size", [(32, 32), (64, 96), (2, 2)])
def test_focus_and_6x6_stem_are_the_same_function(size):
    generator = torch.Generator().manual_seed(0)
    focus = torch.randn(5, 12, 3, 3, generator=generator, dtype=torch.float64)
    x = torch.randn(2, 3, *size, generator=generator, dtype=torch.float64)
    stem = focus_to_stem_weight(focus)
    assert stem.shape == (5, 3, 6, 6)
    torch.testing.assert_close(F.conv2d(x, stem, stride=2, padding=2), focus_forward(x, focus), rtol=0, atol=1e-12)
    assert torch.equal(focus_weight_of(stem), focus)  # a bijection: no tap is lost or duplicated


def test_focus_weight_of_a_wrong_shape_is_named():
    with pytest.raises(ValueError, match=r"\[C, 4 \* Cin, 3, 3\], got \[5, 10, 3, 3\]"):
        focus_to_stem_weight(torch.zeros(5, 10, 3, 3))


def legacy_sg_layout(state):
    """trainwright / SuperGradients 3.x YOLOX weights written as SuperGradients' earlier YOLOX saved them."""
    csp = r"^(_backbone\._modules_list\.(?:2|4|6|9)|_head\._modules_list\.(?:3|7|10|13))\."
    legacy = {}
    for key, value in state.items():
        if key == "_backbone._modules_list.0.conv.weight":
            key, value = "_backbone._modules_list.0.conv.conv.weight", focus_weight_of(value)
        key = key.replace("_backbone._modules_list.0.bn.", "_backbone._modules_list.0.conv.bn.")
        key = re.sub(csp + r"conv([123])\.", r"\1.cv\2.", key)
        key = re.sub(csp + r"bottlenecks\.(\d+)\.", r"\1.m.\2.", key)
        legacy["module." + key] = value
    legacy["module._head._modules_list.14.stride"] = torch.tensor([8.0, 16.0, 32.0])
    return legacy


@pytest.mark.parametrize("arch", ["yolox_n", "yolox_s"])
def test_legacy_supergradients_layout_maps_back_exactly(arch):
    torch.manual_seed(0)
    state = get_model(arch, num_classes=80).state_dict()
    legacy = legacy_sg_layout(state)
    assert any(".cv3." in k for k in legacy) and any(".m.0." in k for k in legacy)  # the test exercises renames
    adapted = adapt_sg_yolox_state_dict(legacy)
    assert list(adapted) == list(state) and all(torch.equal(adapted[k], state[k]) for k in state)
    assert adapt_sg_yolox_state_dict(state).keys() == state.keys()  # the current layout passes unchanged


def test_official_keys_map_by_name():
    cases = {
        "backbone.backbone.stem.conv.bn.weight": "_backbone._modules_list.0.bn.weight",
        "backbone.backbone.dark2.0.dconv.conv.weight": "_backbone._modules_list.1.dconv.conv.weight",
        "backbone.backbone.dark2.0.pconv.bn.bias": "_backbone._modules_list.1.conv.bn.bias",
        "backbone.backbone.dark3.1.m.2.conv2.pconv.conv.weight": "_backbone._modules_list.4.bottlenecks.2.cv2.conv.conv.weight",
        "backbone.backbone.dark5.1.conv2.conv.weight": "_backbone._modules_list.8.cv2.conv.weight",
        "backbone.backbone.dark5.2.conv3.bn.running_var": "_backbone._modules_list.9.conv3.bn.running_var",
        "backbone.C3_n4.m.0.conv1.conv.weight": "_head._modules_list.13.bottlenecks.0.cv1.conv.weight",
        "backbone.bu_conv1.conv.weight": "_head._modules_list.11.conv.weight",
        "head.cls_convs.2.1.pconv.conv.weight": "_head._modules_list.14.cls_convs.2.1.conv.conv.weight",
        "head.obj_preds.0.bias": "_head._modules_list.14.obj_preds.0.bias",
        "module.head.stems.1.conv.weight": None,  # prefixes are removed before, not here
        "backbone.backbone.dark6.0.conv.weight": None,
    }
    for official, ours in cases.items():
        assert official_key_to_trainwright(official) == ours, official


def test_official_architecture_is_inferred_from_the_stem():
    weights = {"backbone.backbone.stem.conv.conv.weight": torch.zeros(16, 12, 3, 3),
               "backbone.backbone.dark2.0.dconv.conv.weight": torch.zeros(16, 1, 3, 3)}
    assert infer_official_yolox_architecture(weights) == "yolox_n"
    del weights["backbone.backbone.dark2.0.dconv.conv.weight"]
    with pytest.raises(ValueError, match="no trainwright architecture has a stem of 16 channels without depthwise"):
        infer_official_yolox_architecture(weights)
    assert infer_official_yolox_architecture({"backbone.backbone.stem.conv.conv.weight": torch.zeros(80, 12, 3, 3)}) == "yolox_x"
