"""DeciLabUploadCallback through Trainer.train on a tiny shapes run: the registry gets the checkpoint, the ONNX
exports and a report; a failure is logged and the run still ends normally."""

import json
import logging

import pytest

from trainwright.recipes import load_recipe
from trainwright.recipes.detection import build_detection_run, read_detection_recipe
from trainwright.registry import LocalModelRegistry
from trainwright.training import Trainer
from trainwright.utils import DeciLabUploadCallback

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow


def _train(root, callback, name="run"):
    overrides = [
        f"ckpt_root_dir={root / 'checkpoints'}", f"experiment_name={name}", "dataset.input_size=[64,64]",
        "dataset.cache_images=false", "model.architecture=yolox_n", "augmentation.mosaic_prob=0.0",
        "train_dataloader.batch_size=4", "train_dataloader.num_workers=0", "valid_dataloader.batch_size=4",
        "valid_dataloader.num_workers=0", "visualization.freq=0", "training_params.max_epochs=1",
        "training_params.max_train_batches=2", "training_params.lr_warmup_epochs=0", f"dataset.root={root / 'shapes'}",
        "dataset.generation={image_size: 64, num_train: 8, num_val: 4, min_object_size: 10, max_object_size: 30}",
    ]
    run = build_detection_run(read_detection_recipe(load_recipe("yolox_n_shapes", overrides)))
    params = {**run.training_params, "silent_mode": True,
              "phase_callbacks": [*run.training_params["phase_callbacks"], callback]}
    trainer = Trainer(name, ckpt_root_dir=root / "checkpoints", device="cpu")
    return trainer.train(run.model, params, run.train_loader, run.valid_loader, processing_params=run.processing_params)


def test_the_trained_model_lands_in_the_registry_with_its_optimised_versions(tmp_path):
    callback = DeciLabUploadCallback({"name": "yolox-shapes", "primary_batch_size": 2},
                                     {"quantization_level": "INT8", "quantization_method": "static"},
                                     registry=str(tmp_path / "registry"), latency_runs=1, calibration_batches=1)
    _train(tmp_path, callback)
    assert callback.uploaded is not None and callback.uploaded.version == "1"
    folder = tmp_path / "registry" / "yolox-shapes" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt_best.pth", "model.int8.onnx", "model.json",
                                                       "model.onnx", "model.optimized.onnx", "optimization.json"]
    card = json.loads((folder / "model.json").read_text())
    assert card["architecture"] == "yolox_n" and card["input_size"] == [64, 64] and len(card["class_names"]) == 5
    assert set(card["latency_ms"]) == {"onnxruntime_fp32", "onnxruntime_optimized", "onnxruntime_int8"}
    assert "onnxruntime_int8/mAP@0.50:0.95" in card["metrics"] and "git_revision" in card
    report = json.loads((folder / "optimization.json").read_text())
    assert report["batch_size"] == 2 and report["quantization"] == "static"
    assert set(report["map_drop_points"]) == {"mAP@0.50", "mAP@0.50:0.95"}
    assert callback.get_optimization_status("yolox-shapes/1")
    assert LocalModelRegistry(tmp_path / "registry").pull("yolox-shapes", "1", tmp_path / "pulled").is_dir()


def test_a_failed_upload_is_logged_and_the_run_ends_normally(tmp_path, caplog):
    callback = DeciLabUploadCallback({"name": "m"}, {}, ckpt_name="no_such.pth", registry=str(tmp_path / "registry"))
    with caplog.at_level(logging.ERROR, logger="trainwright"):
        metrics = _train(tmp_path, callback, "failing")
    assert "mAP@0.50" in metrics
    assert "could not upload m: FileNotFoundError" in caplog.text
    assert not (tmp_path / "registry").exists() or not list((tmp_path / "registry").rglob("model.json"))


@pytest.mark.parametrize("meta, form, kwargs, named", [
    ({"name": "../x"}, {}, {}, "'../x' is not allowed"),
    ({"name": "m"}, {"quantization_level": "FP16"}, {}, "quantization_level 'FP16'"),
    ({"name": "m"}, {"quantization_method": "magic"}, {}, "quantization_method"),
    ({"name": "m"}, {}, {"version": "a/b"}, "'a/b' is not allowed"),
    ({"name": "m"}, {}, {"colour": 1}, "['colour']"),
])
def test_bad_arguments_are_named(tmp_path, meta, form, kwargs, named):
    with pytest.raises((ValueError, TypeError)) as info:
        DeciLabUploadCallback(meta, form, registry=str(tmp_path), **kwargs)
    assert named in str(info.value)
