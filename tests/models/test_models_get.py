"""`trainwright.models.get`: SuperGradients' models.get semantics on real SuperGradients checkpoints, published
weights through the registry (served locally), and one-line errors for bad input."""

import io

import pytest
import torch
from test_yolox_layouts import legacy_sg_layout

from trainwright import models
from trainwright.checkpoints import load_pretrained_weights, read_ckpt_state_dict
from trainwright.models.coco_classes import COCO_CLASS_NAMES
from trainwright.nn.hub import PRETRAINED_WEIGHTS, MissingPretrainedWeightsException, register_pretrained_weights
from trainwright.nn.state_dict import StrictLoad

CLS_PREDS = "_head._modules_list.14.cls_preds."


def _net(path):
    return read_ckpt_state_dict(path)["net"]


def _equal_except_class_predictions(model, weights):
    state = model.state_dict()
    return all(torch.equal(state[k], v) for k, v in weights.items() if not k.startswith(CLS_PREDS))


@pytest.fixture
def registry():
    saved = dict(PRETRAINED_WEIGHTS)
    yield
    PRETRAINED_WEIGHTS.clear()
    PRETRAINED_WEIGHTS.update(saved)


def test_sg_checkpoint_of_80_classes_fine_tuned_to_5(sg_models_dir, capsys):
    path = sg_models_dir / "yolox_n_c80_ckpt.pth"
    model = models.get("yolox_n", num_classes=5, checkpoint_path=path)
    assert model.num_classes == 5 and _equal_except_class_predictions(model, _net(path))
    assert model.state_dict()[CLS_PREDS + "0.weight"].shape[0] == 5
    out = capsys.readouterr().out
    assert f"yolox_n: loaded 636 of 642 tensors (weights) from {path}" in out
    assert "class predictions re-initialised for 5 classes: _head._modules_list.14.cls_preds.0.weight" in out
    assert model(torch.zeros(1, 3, 64, 64))[0].shape[-1] == 4 + 1 + 5


@pytest.mark.parametrize("num_classes", [3, 80, None])
def test_sg_checkpoint_of_3_classes(sg_models_dir, num_classes, capsys):
    path = sg_models_dir / "yolox_n_c3_ckpt.pth"
    model = models.get("yolox_n", num_classes=num_classes, checkpoint_path=path, strict_load=StrictLoad.ON)
    assert model.num_classes == (num_classes or 3)
    if num_classes in (3, None):
        assert all(torch.equal(model.state_dict()[k], v) for k, v in _net(path).items())
        assert "nothing left initialised" in capsys.readouterr().out
    else:
        assert _equal_except_class_predictions(model, _net(path))


def test_checkpoint_num_classes_as_supergradients_takes_it(sg_models_dir):
    path = sg_models_dir / "yolox_n_c80_ckpt.pth"
    model = models.get("yolox_n", num_classes=2, checkpoint_path=path, checkpoint_num_classes=80)
    assert model.num_classes == 2 and _equal_except_class_predictions(model, _net(path))
    with pytest.raises(ValueError, match=f"checkpoint_num_classes=3 but checkpoint {path} predicts 80 classes"):
        models.get("yolox_n", num_classes=2, checkpoint_path=path, checkpoint_num_classes=3)


def test_checkpoint_of_another_architecture_is_named(sg_models_dir):
    path = sg_models_dir / "yolox_t_c80_ckpt.pth"
    with pytest.raises(ValueError) as info:
        models.get("yolox_n", num_classes=80, checkpoint_path=path)
    message = str(info.value)
    assert "\n" not in message and f"checkpoint {path} does not fit yolox_n with 80 classes" in message
    assert "_backbone._modules_list.0.conv.weight is [24, 3, 6, 6] in the checkpoint, [16, 3, 6, 6] in the model" in message
    assert message.endswith("it fits yolox_t")


def test_backbone_only(sg_models_dir, capsys):
    path = sg_models_dir / "yolox_n_c80_ckpt.pth"
    model = models.get("yolox_n", num_classes=4, checkpoint_path=path, load_backbone=True)
    state, weights = model.state_dict(), _net(path)
    assert all(torch.equal(state[k], weights[k]) for k in state if k.startswith("_backbone."))
    assert not torch.equal(state["_head._modules_list.0.conv.weight"], weights["_head._modules_list.0.conv.weight"])
    assert "left initialised (not in what was loaded): _head._modules_list.0.conv.weight" in capsys.readouterr().out


def test_ema_weights_and_processing_params_of_a_checkpoint(tmp_path, sg_models_dir):
    weights = _net(sg_models_dir / "yolox_n_c3_ckpt.pth")
    path = tmp_path / "ckpt.pth"
    torch.save({"net": {k: torch.zeros_like(v) for k, v in weights.items()}, "ema_net": weights,
                "processing_params": {"class_names": ["a", "b", "c"], "input_size": [64, 64]}}, path)
    model = models.get("yolox_n", checkpoint_path=path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())  # EMA preferred
    assert model.get_processing_params() == {"class_names": ["a", "b", "c"], "input_size": [64, 64]}
    assert models.get("yolox_n", num_classes=5, checkpoint_path=path).get_processing_params() == {}  # other classes


def test_checkpoint_from_a_url(weights_server, weights_cache, sg_models_dir):
    path = sg_models_dir / "yolox_n_c3_ckpt.pth"
    url = weights_server.serve("/run/ckpt_best.pth", path.read_bytes())
    model = models.get("yolox_n", num_classes=3, checkpoint_path=url)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in _net(path).items())


def _serve_published_yolox_n(server, sg_models_dir):
    """SuperGradients' published layout of the 80-class fixture (EMA weights), served as yolox_n's COCO weights."""
    weights = _net(sg_models_dir / "yolox_n_c80_ckpt.pth")
    buffer = io.BytesIO()
    torch.save({"net": legacy_sg_layout({k: torch.zeros_like(v) for k, v in weights.items()}),
                "ema_net": legacy_sg_layout(weights), "acc": 0.25, "epoch": 299}, buffer)
    register_pretrained_weights("yolox_n", "coco", server.serve("/models/yolox_n_coco.pth", buffer.getvalue()),
                                overwrite=True)
    return weights


def test_pretrained_coco_weights_downloaded_once_and_head_replaced(weights_server, weights_cache, sg_models_dir,
                                                                    registry, capsys):
    weights = _serve_published_yolox_n(weights_server, sg_models_dir)
    reference = models.get("yolox_n", checkpoint_path=sg_models_dir / "yolox_n_c80_ckpt.pth").eval()
    coco = models.get("yolox_n", pretrained_weights="coco").eval()
    assert coco.num_classes == 80 and all(torch.equal(coco.state_dict()[k], v) for k, v in weights.items())
    assert coco.get_processing_params()["class_names"] == list(COCO_CLASS_NAMES)
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        assert torch.equal(coco(x)[0], reference(x)[0])
    tuned = models.get("yolox_n", num_classes=3, pretrained_weights="coco").eval()
    with torch.no_grad():  # a new head: the same boxes and objectness, 3 fresh class scores
        decoded = tuned(x)[0]
        torch.testing.assert_close(decoded[..., :5], reference(x)[0][..., :5], rtol=1e-6, atol=1e-6)
    assert decoded.shape[-1] == 8 and tuned.get_processing_params() == {}
    assert weights_server.requests == ["/models/yolox_n_coco.pth"]  # downloaded once, then from the cache
    assert "(EMA weights) from yolox_n coco weights" in capsys.readouterr().out


def test_ppyoloe_coco_weights_fine_tuned_to_3_classes(weights_server, weights_cache, sg_models_dir, registry,
                                                     capsys):
    path = sg_models_dir / "ppyoloe_s_c80_ckpt.pth"
    register_pretrained_weights("ppyoloe_s", "coco", weights_server.serve("/models/ppyoloe_s_coco.pth",
                                                                          path.read_bytes()), overwrite=True)
    model = models.get("ppyoloe_s", num_classes=3, pretrained_weights="coco")
    weights, state = _net(path), model.state_dict()
    replaced = sorted(k for k, v in weights.items() if state[k].shape != v.shape or not torch.equal(state[k], v))
    assert replaced == [f"head.pred_cls.{i}.{p}" for i in range(3) for p in ("bias", "weight")]
    assert model.num_classes == 3 and state["head.pred_cls.0.weight"].shape[0] == 3
    assert "class predictions re-initialised for 3 classes: head.pred_cls.0.weight" in capsys.readouterr().out


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"model_name": "yolox_ss", "num_classes": 2}, ValueError, "unknown model 'yolox_ss'; did you mean 'yolox_s'"),
    ({"model_name": 7, "num_classes": 2}, TypeError, "model_name must be a string, got 7"),
    ({"model_name": "yolox_n", "num_classes": 0}, ValueError, "num_classes must be a positive integer, got 0"),
    ({"model_name": "yolox_n", "num_classes": True}, ValueError, "num_classes must be a positive integer, got True"),
    ({"model_name": "yolox_n", "num_classes": 2.5}, ValueError, "num_classes must be a positive integer, got 2.5"),
    ({"model_name": "yolox_n"}, ValueError, "yolox_n: pass num_classes"),
    ({"model_name": "yolox_n", "num_classes": 2, "checkpoint_num_classes": -1}, ValueError,
     "checkpoint_num_classes must be a positive integer, got -1"),
    ({"model_name": "yolox_n", "num_classes": 2, "arch_params": [1]}, TypeError, "arch_params must be a mapping"),
    ({"model_name": "yolox_n", "num_classes": 2, "arch_params": {"widht_mult": 1}}, TypeError,
     r"unknown architecture override\(s\) \['widht_mult'\]"),
    ({"model_name": "yolox_n", "num_classes": 2, "strict_load": "sometimes"}, ValueError, "strict must be"),
    ({"model_name": "yolox_n", "num_classes": 2, "load_backbone": True}, ValueError, "load_backbone=True needs"),
    ({"model_name": "yolox_n", "num_classes": 2, "checkpoint_path": "a.pth", "pretrained_weights": "coco"},
     ValueError, "pass checkpoint_path or pretrained_weights, not both"),
    ({"model_name": "yolox_n", "num_classes": 2, "checkpoint_path": "/nowhere/a.pth"}, FileNotFoundError,
     "checkpoint not found: /nowhere/a.pth"),
    ({"model_name": "yolox_x", "num_classes": 2, "pretrained_weights": "coco"}, MissingPretrainedWeightsException,
     "no weights 'coco' registered for architecture 'yolox_x'"),
    ({"model_name": "yolox_s", "num_classes": 2, "pretrained_weights": "imagenet"}, MissingPretrainedWeightsException,
     "no weights 'imagenet' registered for architecture 'yolox_s'"),
])
def test_bad_input_is_a_one_line_error(kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        models.get(**kwargs)
    assert "\n" not in str(info.value)


def test_get_without_weights_builds_like_get_model():
    torch.manual_seed(0)
    built = models.get("YOLOX_N", num_classes=4, arch_params={"in_channels": 1})
    torch.manual_seed(0)
    reference = models.get_model("yolox_n", num_classes=4, in_channels=1)
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in built.state_dict().items())
    with pytest.warns(DeprecationWarning, match="num_classes in arch_params"):
        assert models.get("yolox_n", arch_params={"num_classes": 6}).num_classes == 6


def test_get_model_suggests_the_closest_name():
    with pytest.raises(ValueError, match="unknown model 'yolo_s'; did you mean 'yolox_s'"):
        models.get_model("yolo_s", num_classes=3)


def test_backbone_of_another_architecture_is_a_one_line_error(sg_models_dir):
    path = sg_models_dir / "yolox_t_c80_ckpt.pth"
    with pytest.raises(ValueError, match=f"cannot load the backbone of {path} into yolox_n: ") as info:
        models.get("yolox_n", num_classes=3, checkpoint_path=path, load_backbone=True, strict_load=StrictLoad.ON)
    assert "\n" not in str(info.value)


def test_published_layout_from_a_local_file_and_through_load_pretrained_weights(tmp_path, weights_server,
                                                                                 weights_cache, sg_models_dir, registry):
    weights = _serve_published_yolox_n(weights_server, sg_models_dir)
    local = tmp_path / "yolox_n_coco.pth"  # the offline way: the zoo's file, downloaded elsewhere
    local.write_bytes(weights_server.routes["/models/yolox_n_coco.pth"].body)
    model = models.get("yolox_n", num_classes=3, checkpoint_path=local)
    assert model.num_classes == 3 and _equal_except_class_predictions(model, weights)
    model = models.get_model("yolox_n", num_classes=80)
    report = load_pretrained_weights(model, "yolox_n", "coco")  # SuperGradients' function, same registry
    assert not report.shape_mismatch and all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
