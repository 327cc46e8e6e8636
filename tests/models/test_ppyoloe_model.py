"""PP-YOLOE models: registry, sizes, outputs in both modes, head replacement, fusion, processing params."""

import pytest
import torch

from trainwright.checkpoints import StrictLoad, load_checkpoint_to_model
from trainwright.models import get_model, list_models
from trainwright.models.detection.ppyoloe_blocks import RepVggBlock

# name -> (parameters, state_dict keys) with 80 classes
SIZES = {
    "ppyoloe_s": (8_084_588, 500),
    "ppyoloe_m": (24_134_892, 698),
    "ppyoloe_l": (54_078_556, 896),
    "ppyoloe_x": (102_331_484, 1094),
}


def tiny(num_classes=3):
    torch.manual_seed(0)
    return get_model("ppyoloe_s", num_classes, width_mult=0.125)


@pytest.mark.parametrize("name", list(SIZES))
def test_sizes_of_the_family(name):
    assert name in list_models()
    with torch.device("meta"):
        model = get_model(name, 80)
    params, keys = SIZES[name]
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == keys
    assert model.num_classes == 80 and model.strides == (32, 16, 8) and model.reg_max == 16


def test_outputs_in_train_and_eval_mode():
    model = tiny()
    x = torch.rand(2, 3, 96, 128) * 255
    n = 3 * 4 + 6 * 8 + 12 * 16  # stride 32, 16, 8 levels of a 96 x 128 input
    class_logits, box_logits, anchor_boxes, points, counts, strides = model.train()(x)
    assert class_logits.shape == (2, n, 3) and box_logits.shape == (2, n, 68)
    assert anchor_boxes.shape == (n, 4) and points.shape == (n, 2) and strides.shape == (n, 1)
    assert counts == [12, 48, 192]
    # Anchor point of row 1, column 2 of the stride-16 level; its anchor box is a square of side 5 strides.
    index = 12 + 1 * 8 + 2
    assert points[index].tolist() == [40.0, 24.0] and strides[index].item() == 16
    assert anchor_boxes[index].tolist() == [0.0, -16.0, 80.0, 64.0]

    (boxes, scores), raw = model.eval()(x)
    assert boxes.shape == (2, n, 4) and scores.shape == (2, n, 3) and len(raw) == 6
    torch.testing.assert_close(scores, raw[0].sigmoid())
    # Fresh head: every side is 8 strides away (box bias 1 everywhere: uniform bins, expectation 8).
    torch.testing.assert_close(boxes[0, index], torch.tensor([40.0 - 128, 24.0 - 128, 40.0 + 128, 24.0 + 128]))
    torch.testing.assert_close(scores, torch.full_like(scores, 0.01))


def test_overrides_and_bad_input():
    model = get_model("ppyoloe_s", 5, width_mult=0.125, in_channels=1, reg_max=8)
    class_logits, box_logits, *_ = model.train()(torch.rand(1, 1, 64, 64))
    assert class_logits.shape[-1] == 5 and box_logits.shape[-1] == 4 * 9
    with pytest.raises(TypeError, match=r"unknown architecture override\(s\) \['depthwise'\]"):
        get_model("ppyoloe_s", 5, depthwise=True)
    with pytest.raises(ValueError, match="divisible by 32, got H x W = 70 x 64"):
        model(torch.rand(1, 1, 70, 64))
    with pytest.raises(ValueError, match=r"shape \[B, 1, H, W\]"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        get_model("ppyoloe_s", 0)


def test_replace_head_keeps_everything_but_the_class_predictions():
    model = tiny(80)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.replace_head(4)
    after = model.state_dict()
    assert model.num_classes == 4
    for key, value in before.items():
        if key.startswith("head.pred_cls."):
            assert after[key].shape[0] == 4
        else:
            assert torch.equal(after[key], value), key
    class_logits = model.train()(torch.rand(1, 3, 64, 64))[0]
    assert class_logits.shape[-1] == 4
    with pytest.raises(ValueError, match="new_num_classes"):
        model.replace_head(0)


def test_fuse_keeps_the_eval_outputs():
    model = tiny()
    with torch.no_grad():  # non-trivial BatchNorm statistics and prediction weights
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
        for conv in [*model.head.pred_cls, *model.head.pred_reg]:
            conv.weight.normal_(0, 0.02)
    model.eval()
    x = torch.rand(2, 3, 64, 96) * 255
    with torch.no_grad():
        (boxes, scores), raw = model(x)
        model.fuse()
        (fused_boxes, fused_scores), fused_raw = model(x)
    assert all(m.fused for m in model.modules() if isinstance(m, RepVggBlock))
    assert not any("branch_1x1" in key for key in model.state_dict())
    torch.testing.assert_close(fused_raw[0], raw[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fused_raw[1], raw[1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fused_boxes, boxes, rtol=1e-4, atol=1e-3)
    model.fuse()  # a second fuse changes nothing


def test_processing_params_travel_with_the_checkpoint(tmp_path):
    model = tiny()
    model.set_dataset_processing_params(class_names=["a", "b", "c"], input_size=[64, 64], iou=None)
    assert model.get_processing_params() == {"class_names": ["a", "b", "c"], "input_size": [64, 64]}
    path = tmp_path / "ckpt.pth"
    torch.save({"net": model.state_dict(), "processing_params": model.get_processing_params()}, path)
    restored = tiny()
    load_checkpoint_to_model(restored, path, strict=StrictLoad.ON, load_processing_params=True)
    assert restored.get_processing_params()["class_names"] == ["a", "b", "c"]
