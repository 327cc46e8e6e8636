"""YOLOX model behaviour: output formats, decoding, input checks, initialisation, head replacement, registry."""

import math

import pytest
import torch
from torch import nn

from trainwright.checkpoints import StrictLoad, load_checkpoint_to_model
from trainwright.models import get_model, list_models
from trainwright.models.detection.yolox import YoloX, make_grid


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    return get_model("yolox_n", num_classes=5)


def test_list_models_names_every_yolox_size():
    assert [name for name in list_models() if name.startswith("yolox")] == \
        ["yolox_l", "yolox_m", "yolox_n", "yolox_s", "yolox_t", "yolox_x"]


def test_get_model_rejects_unknown_names_and_overrides():
    with pytest.raises(ValueError, match="yolox_q"):
        get_model("yolox_q", num_classes=3)
    with pytest.raises(TypeError, match="width"):
        get_model("yolox_n", num_classes=3, width=0.5)


@pytest.mark.parametrize("num_classes", [0, -1, 2.5, True])
def test_invalid_num_classes_is_rejected(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        get_model("yolox_n", num_classes=num_classes)


def test_train_mode_returns_three_raw_maps_for_a_non_square_input(nano):
    nano.train()
    out = nano(torch.rand(2, 3, 64, 96))
    assert isinstance(out, list)
    assert [tuple(o.shape) for o in out] == [(2, 1, 8, 12, 10), (2, 1, 4, 6, 10), (2, 1, 2, 3, 10)]
    assert nano.strides == (8, 16, 32) and nano.num_classes == 5


def test_eval_mode_decodes_every_cell_by_the_yolox_formula(nano):
    nano.eval()
    with torch.no_grad():
        decoded, raw = nano(torch.rand(1, 3, 64, 96))
    assert decoded.shape == (1, 8 * 12 + 4 * 6 + 2 * 3, 10)
    # Level 1 (stride 16, 4 x 6 cells), row gy = 2, column gx = 5: index 8*12 + 2*6 + 5 in the flat order.
    t = raw[1][0, 0, 2, 5]
    row = decoded[0, 96 + 2 * 6 + 5]
    expected = torch.cat([
        torch.stack([(t[0] + 5) * 16, (t[1] + 2) * 16]),
        torch.exp(t[2:4]) * 16,
        torch.sigmoid(t[4:]),
    ])
    torch.testing.assert_close(row, expected)


def test_decoding_handles_successive_input_sizes(nano):
    nano.eval()
    with torch.no_grad():
        for h, w in [(32, 32), (64, 32), (32, 64)]:
            decoded, raw = nano(torch.zeros(1, 3, h, w))
            last = raw[2][0, 0, -1, -1]
            torch.testing.assert_close(decoded[0, -1, :2], (last[:2] + torch.tensor([w / 32 - 1, h / 32 - 1])) * 32)


def test_grid_cache_follows_dtype_and_is_reused():
    model = get_model("yolox_n", num_classes=2).eval()
    x = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        decoded32, _ = model(x)
        cached = dict(model._grid_cache)
        model(x)
        assert model._grid_cache.keys() == cached.keys()
        assert all(model._grid_cache[k][0] is cached[k][0] for k in cached)
        decoded64, _ = model.double()(x.double())
    assert decoded64.dtype == torch.float64 and len(model._grid_cache) == 2
    torch.testing.assert_close(decoded64.float(), decoded32, rtol=1e-4, atol=1e-4)


def test_make_grid_is_row_major_with_x_first():
    grid, strides = make_grid([(2, 3)], [8])
    assert grid.tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]]
    assert strides.tolist() == [[8.0]] * 6


@pytest.mark.parametrize("size", [(100, 96), (96, 40)])
def test_input_size_not_divisible_by_32_is_a_clear_error(nano, size):
    with pytest.raises(ValueError, match=f"{size[0]} x {size[1]}"):
        nano(torch.zeros(1, 3, *size))


def test_wrong_channel_count_is_a_clear_error(nano):
    with pytest.raises(ValueError, match=r"\[1, 1, 64, 64\]|\(1, 1, 64, 64\)"):
        nano(torch.zeros(1, 1, 64, 64))


def test_fresh_model_initialisation():
    model = get_model("yolox_t", num_classes=7)
    head = model._head.detection_head
    for conv in (*head.cls_preds, *head.obj_preds):
        torch.testing.assert_close(conv.bias, torch.full_like(conv.bias, -math.log(99)))
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 74
    assert {(bn.eps, bn.momentum) for bn in bns} == {(1e-3, 0.03)}


def test_fresh_model_scores_start_at_the_prior():
    model = get_model("yolox_n", num_classes=3).eval()
    with torch.no_grad():
        decoded, _ = model(torch.zeros(1, 3, 64, 64))
    torch.testing.assert_close(decoded[..., 4:], torch.full_like(decoded[..., 4:], 0.01), rtol=0, atol=1e-6)


def test_train_forward_backpropagates_to_every_parameter():
    model = get_model("yolox_n", num_classes=2).train()
    out = model(torch.rand(2, 3, 64, 64))
    sum(o.square().mean() for o in out).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_replace_head_changes_classes_and_keeps_other_weights():
    model = get_model("yolox_n", num_classes=80)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.replace_head(new_num_classes=4)
    assert model.num_classes == 4
    after = model.state_dict()
    assert list(after) == list(before)
    changed = sorted(k for k in after if after[k].shape != before[k].shape or not torch.equal(after[k], before[k]))
    assert changed and all(".cls_preds." in k for k in changed)
    assert after["_head._modules_list.14.cls_preds.0.weight"].shape == (4, 64, 1, 1)
    assert model.train()(torch.rand(2, 3, 32, 32))[0].shape[-1] == 9
    with pytest.raises(ValueError, match="new_num_classes"):
        model.replace_head(0)


def test_processing_params_round_trip_and_stay_out_of_the_state_dict():
    model = get_model("yolox_n", num_classes=2)
    assert model.get_processing_params() == {}
    names = ["cat", "dog"]
    model.set_dataset_processing_params(class_names=names, input_size=[320, 320], iou=None)
    names.append("mutated")
    assert model.get_processing_params() == {"class_names": ["cat", "dog"], "input_size": [320, 320]}
    assert not any("processing" in k for k in model.state_dict())


def test_arch_overrides_reach_the_model():
    model = get_model("yolox_s", num_classes=1, width_mult=0.125, depthwise=True, in_channels=1)
    assert isinstance(model, YoloX)
    assert model._backbone._modules_list[0].conv.weight.shape == (8, 1, 6, 6)
    assert model.train()(torch.rand(2, 1, 32, 32))[2].shape == (2, 1, 1, 1, 6)


# Parameter counts of the larger sizes (80 classes), as published for YOLOX: M 25.3M, L 54.2M, X 99.1M.
@pytest.mark.parametrize("name, millions", [("yolox_m", 25.3), ("yolox_l", 54.2), ("yolox_x", 99.1)])
def test_large_models_have_the_published_size_and_output_shapes(name, millions):
    with torch.device("meta"):
        model = get_model(name, num_classes=80).eval()
        decoded, raw = model(torch.empty(1, 3, 640, 640))
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == millions
    assert decoded.shape == (1, 8400, 85)
    assert [tuple(r.shape) for r in raw] == [(1, 1, 80, 80, 85), (1, 1, 40, 40, 85), (1, 1, 20, 20, 85)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_forward_matches_cpu():
    torch.manual_seed(0)
    model = get_model("yolox_n", num_classes=3).eval()
    x = torch.rand(2, 3, 96, 64)
    with torch.no_grad():
        cpu_decoded, _ = model(x)
        gpu_decoded, _ = model.cuda()(x.cuda())
    torch.testing.assert_close(gpu_decoded.cpu(), cpu_decoded, rtol=1e-3, atol=1e-3)


def test_processing_params_survive_a_checkpoint_round_trip(tmp_path):
    source = get_model("yolox_n", num_classes=2)
    source.set_dataset_processing_params(class_names=["cat", "dog"], input_size=[64, 96])
    path = tmp_path / "ckpt.pth"
    torch.save({"net": source.state_dict(), "processing_params": source.get_processing_params()}, path)
    target = get_model("yolox_n", num_classes=2)
    load_checkpoint_to_model(target, path, strict=StrictLoad.ON, load_processing_params=True)
    assert target.get_processing_params() == {"class_names": ["cat", "dog"], "input_size": [64, 96]}
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
