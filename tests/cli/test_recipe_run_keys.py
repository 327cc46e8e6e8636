"""Recipe keys that shape a run: the schedule checked against max_epochs, the starting weights, early stopping,
`num_workers: auto`, and what the run builds from them."""

import os

import pytest

from trainwright.callbacks.early_stopping import EarlyStop
from trainwright.data.loaders import default_num_workers
from trainwright.metrics import NonFinitePredictions
from trainwright.nn.hub import PRETRAINED_WEIGHTS, register_pretrained_weights
from trainwright.recipes import DEFAULT_RECIPE, RecipeError, load_recipe
from trainwright.recipes.detection import build_detection_run, read_detection_recipe
from trainwright.recipes.schedule import check_schedule, fitting_schedule

COCO_PATHS = ["dataset.train_images_dir=a", "dataset.train_annotations=b.json", "dataset.val_images_dir=c",
              "dataset.val_annotations=d.json"]


def _read(recipe=DEFAULT_RECIPE, *overrides):
    return read_detection_recipe(load_recipe(recipe, [*(COCO_PATHS if recipe == "coco_yolox" else []), *overrides]))


# --- the schedule ------------------------------------------------------------------------------------------------


def test_shipped_recipes_fit_their_own_length():
    for recipe in (DEFAULT_RECIPE, "coco_yolox"):
        _read(recipe)


def test_a_shortened_coco_yolox_names_every_problem_and_a_schedule_that_fits():
    with pytest.raises(RecipeError) as info:
        _read("coco_yolox", "training_params.max_epochs=10")
    message = str(info.value)
    assert message.startswith("the schedule does not fit in training_params.max_epochs=10: ")
    assert "lr_warmup_epochs=1 + lr_cooldown_epochs=5 >= max_epochs" not in message  # 6 < 10 fits
    assert "augmentation.mosaic_off_epoch=45 >= max_epochs: mosaic would never be switched off" in message
    assert message.endswith("For 10 epochs set e.g. training_params.lr_warmup_epochs=1 "
                            "training_params.lr_cooldown_epochs=2 augmentation.mosaic_off_epoch=8, or raise "
                            "training_params.max_epochs")


@pytest.mark.parametrize(("params", "mosaic", "problem"), [
    ({"max_epochs": 10, "lr_mode": "cosine", "lr_warmup_epochs": 3, "lr_cooldown_epochs": 15}, None,
     "lr_warmup_epochs=3 + lr_cooldown_epochs=15 >= max_epochs leaves no epoch for the cosine decay"),
    ({"max_epochs": 2, "lr_mode": "poly", "lr_warmup_epochs": 1, "lr_cooldown_epochs": 1}, None,
     "leaves no epoch for the poly decay"),
    ({"max_epochs": 1, "lr_warmup_epochs": 1}, None, "lr_warmup_epochs=1 >= max_epochs: the LR would still be warming"),
    ({"max_epochs": 5}, 5, "augmentation.mosaic_off_epoch=5 >= max_epochs"),
])
def test_schedules_that_cannot_happen(params, mosaic, problem):
    with pytest.raises(RecipeError, match="the schedule does not fit") as info:
        check_schedule(params, mosaic)
    assert problem in str(info.value)


@pytest.mark.parametrize(("params", "mosaic"), [
    ({"max_epochs": 10, "lr_mode": "cosine", "lr_warmup_epochs": 3, "lr_cooldown_epochs": 6}, 9),
    ({"max_epochs": 3, "lr_warmup_epochs": 2, "lr_cooldown_epochs": 5}, 0),  # constant LR: cooldown changes nothing
    ({"max_epochs": 1, "lr_warmup_epochs": 5, "lr_warmup_steps": 10}, None),  # a warmup in steps is not checked
])
def test_schedules_that_fit(params, mosaic):
    check_schedule(params, mosaic)


@pytest.mark.parametrize("epochs", [1, 2, 3, 5, 10, 30, 100])
def test_the_suggested_schedule_always_fits(epochs):
    warmup, cooldown, mosaic = fitting_schedule(epochs, 3, 15, 85, decays=True)
    check_schedule({"max_epochs": epochs, "lr_mode": "cosine", "lr_warmup_epochs": warmup,
                    "lr_cooldown_epochs": cooldown}, mosaic)
    assert warmup <= 3 and cooldown <= 15 and mosaic <= 85


@pytest.mark.parametrize(("override", "named"), [
    ("training_params.max_epochs=abc", "training_params.max_epochs must be a positive integer, got 'abc'"),
    ("training_params.lr_cooldown_epochs=-1", "training_params.lr_cooldown_epochs must be an integer >= 0"),
    ("augmentation.mosaic_off_epoch=1.5", "augmentation.mosaic_off_epoch must be an integer >= 0, got 1.5"),
])
def test_schedule_values_of_the_wrong_kind_are_named(override, named):
    with pytest.raises(RecipeError, match="must be"):
        _read(DEFAULT_RECIPE, override)
    with pytest.raises(RecipeError) as info:
        _read(DEFAULT_RECIPE, override)
    assert named in str(info.value)


# --- starting weights -----------------------------------------------------------------------------------------


def test_starting_weights_default_to_coco_for_coco_yolox_and_to_none_for_the_shapes_recipe():
    coco = _read("coco_yolox")
    assert (coco.pretrained_weights, coco.checkpoint_path) == ("coco", None)
    shapes = _read()
    assert (shapes.pretrained_weights, shapes.checkpoint_path) == (None, None)


def test_starting_weights_are_checked_without_downloading(tmp_path):
    checkpoint = tmp_path / "start.pth"
    checkpoint.write_bytes(b"checked when loaded, not when read")
    spec = _read(DEFAULT_RECIPE, f"model.checkpoint_path={checkpoint}")
    assert spec.checkpoint_path == str(checkpoint)
    for url in ("https://example.invalid/w.pth", checkpoint.as_uri()):
        assert _read(DEFAULT_RECIPE, f"model.checkpoint_path={url}").checkpoint_path == url
    with pytest.raises(RecipeError, match="no checkpoint file at"):
        _read(DEFAULT_RECIPE, f"model.checkpoint_path={(tmp_path / 'gone.pth').as_uri()}")
    with pytest.raises(RecipeError, match="model.architecture: unknown model 'yolox_q'"):
        _read(DEFAULT_RECIPE, "model.architecture=yolox_q")
    assert _read(DEFAULT_RECIPE, "model.architecture=YOLOX_N").architecture == "yolox_n"


@pytest.fixture
def registry():
    saved = dict(PRETRAINED_WEIGHTS)
    yield
    PRETRAINED_WEIGHTS.clear()
    PRETRAINED_WEIGHTS.update(saved)


def test_a_run_starts_from_registered_weights_served_locally(tmp_path, capsys, monkeypatch, registry):
    """model.pretrained_weights goes through trainwright.models.get and the hash-checked registry."""
    import torch

    from trainwright.models import get_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    torch.manual_seed(1)
    weights = get_model("yolox_n", num_classes=80).state_dict()
    path = tmp_path / "yolox_n_local.pth"
    torch.save({"net": weights}, path)
    register_pretrained_weights("yolox_n", "local_test", path.as_uri(), num_classes=80)
    spec = _read(DEFAULT_RECIPE, "model.pretrained_weights=local_test", f"dataset.root={tmp_path / 'shapes'}",
                 "dataset.generation={image_size: 64, num_train: 4, num_val: 2}", "train_dataloader.batch_size=2",
                 "train_dataloader.num_workers=0")
    run = build_detection_run(spec)
    out = capsys.readouterr().out
    assert "yolox_n: loaded 636 of 642 tensors (weights) from yolox_n local_test weights" in out
    assert "class predictions re-initialised for 5 classes" in out
    key = "_backbone._modules_list.0.conv.weight"
    assert torch.equal(run.model.state_dict()[key], weights[key]) and run.model.num_classes == 5
    assert isinstance(run.training_params["valid_metrics_list"][-1], NonFinitePredictions)


# --- early stopping and workers -------------------------------------------------------------------------------


def test_early_stopping_keys_build_an_early_stop_on_the_watched_metric():
    spec = _read(DEFAULT_RECIPE, "training_params.early_stopping_patience=3",
                 "training_params.early_stopping_min_delta=0.01")
    assert spec.early_stopping == {"patience": 3, "min_delta": 0.01}
    assert _read().early_stopping is None
    with pytest.raises(RecipeError, match="early_stopping_min_delta must be a number >= 0, got -1"):
        _read(DEFAULT_RECIPE, "training_params.early_stopping_patience=3", "training_params.early_stopping_min_delta=-1")
    with pytest.raises(RecipeError, match="watches training_params.metric_to_watch; set it"):
        _read(DEFAULT_RECIPE, "training_params.early_stopping_patience=3", "training_params.metric_to_watch=null")


def test_early_stop_callback_of_a_built_run(tmp_path):
    spec = _read(DEFAULT_RECIPE, "training_params.early_stopping_patience=2", f"dataset.root={tmp_path}",
                 "dataset.generation={image_size: 64, num_train: 4, num_val: 2}", "train_dataloader.batch_size=2",
                 "train_dataloader.num_workers=0", "training_params.greater_metric_to_watch_is_better=false")
    stop = [cb for cb in build_detection_run(spec).training_params["phase_callbacks"] if isinstance(cb, EarlyStop)]
    assert len(stop) == 1 and stop[0].monitor_key == "mAP@0.50" and stop[0].mode == "min" and stop[0].patience == 2


def test_num_workers_auto_is_what_the_machine_has():
    spec = _read("coco_yolox")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert spec.train_loader["num_workers"] is None and spec.valid_loader["num_workers"] is None  # the loader's default
    assert default_num_workers() == (0 if cpus <= 2 else min(8, cpus // 2)) <= cpus  # never more than torch's suggested maximum: no warning
    assert _read(DEFAULT_RECIPE, "train_dataloader.num_workers=3").train_loader["num_workers"] == 3
    with pytest.raises(RecipeError, match="train_dataloader.num_workers must be an integer >= 0 or auto, got 'many'"):
        _read(DEFAULT_RECIPE, "train_dataloader.num_workers=many")
