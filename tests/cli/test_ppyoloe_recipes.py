"""The PP-YOLOE recipes read and build the family's pieces; YOLOX recipes keep theirs."""

import pytest

from trainwright.callbacks.ppyoloe_stage_switch import PPYoloETrainingStageSwitchCallback
from trainwright.callbacks.stage_switch import YoloXTrainingStageSwitchCallback
from trainwright.data import CrowdDetectionCollateFN, CrowdDetectionPPYoloECollateFN, DetectionCollateFN
from trainwright.models.detection.postprocess import YoloXPostPredictionCallback
from trainwright.models.detection.ppyoloe_postprocess import PPYoloEPostPredictionCallback
from trainwright.recipes import RecipeError, list_recipes, load_recipe
from trainwright.recipes.architectures import PPYoloEFamily, YoloXFamily, family_of
from trainwright.recipes.detection import build_detection_run, read_detection_recipe

COCO_PATHS = ["dataset.train_images_dir=a", "dataset.train_annotations=b.json", "dataset.val_images_dir=c",
              "dataset.val_annotations=d.json"]


def test_family_follows_the_architecture_name():
    assert isinstance(family_of("ppyoloe_s"), PPYoloEFamily) and isinstance(family_of("PP_YOLOE_L"), PPYoloEFamily)
    assert isinstance(family_of("yolox_n"), YoloXFamily) and isinstance(family_of("my_detector"), YoloXFamily)


def test_coco_ppyoloe_has_the_reference_settings():
    spec = read_detection_recipe(load_recipe("coco_ppyoloe", COCO_PATHS))
    params = spec.training_params
    assert spec.architecture == "ppyoloe_s" and spec.dataset["input_size"] == [640, 640]
    assert params["optimizer"] == "AdamW" and params["optimizer_params"] == {"weight_decay": 0.0001}
    assert (params["initial_lr"], params["lr_mode"], params["cosine_final_lr_ratio"]) == (0.002, "cosine", 0.1)
    assert (params["lr_warmup_steps"], params["warmup_initial_lr"]) == (1000, 1e-6)
    assert params["ema"] and params["ema_params"] == {"decay": 0.9997, "decay_type": "threshold"}
    assert params["max_epochs"] == 300 and params["loss"] == "ppyoloe_loss"
    assert spec.family_params["static_assigner_end_epoch"] == 90
    assert spec.family_params["random_resize_sizes"] == list(range(320, 769, 32))
    assert spec.postprocess == {"conf": 0.01, "iou": 0.7, "nms_top_k": 1000, "max_predictions": 300}


def test_shapes_run_builds_ppyoloe_pieces(tmp_path):
    overrides = [f"dataset.root={tmp_path}", "dataset.generation={image_size: 64, num_train: 4, num_val: 2}",
                 "dataset.input_size=[64,64]", "train_dataloader.batch_size=2", "train_dataloader.num_workers=0",
                 "train_dataloader.random_resize_sizes=[32,[64,96]]", "training_params.static_assigner_end_epoch=2"]
    run = build_detection_run(read_detection_recipe(load_recipe("ppyoloe_s_shapes", overrides)))
    assert run.training_params["criterion_params"] == {"num_classes": 5, "reg_max": 16}  # no YOLOX strides
    collate = run.train_loader.collate_fn
    assert isinstance(collate, CrowdDetectionPPYoloECollateFN) and collate.random_resize_sizes == [(32, 32), (64, 96)]
    assert isinstance(run.valid_loader.collate_fn, CrowdDetectionCollateFN)
    assert len(run.train_loader.dataset[0]) == 3  # training items carry their crowd regions
    switches = [c for c in run.training_params["phase_callbacks"] if isinstance(c, PPYoloETrainingStageSwitchCallback)]
    assert [s.static_assigner_end_epoch for s in switches] == [2]
    post = run.training_params["valid_metrics_list"][0].post_prediction_callback
    assert isinstance(post, PPYoloEPostPredictionCallback)
    assert (post.score_threshold, post.nms_threshold, post.max_predictions) == (0.01, 0.6, 100)


def test_yolox_run_keeps_its_pieces(tmp_path):
    overrides = [f"dataset.root={tmp_path}", "dataset.generation={image_size: 64, num_train: 4, num_val: 2}",
                 "dataset.input_size=[64,64]", "train_dataloader.batch_size=2", "train_dataloader.num_workers=0",
                 "augmentation.mosaic_off_epoch=3"]
    run = build_detection_run(read_detection_recipe(load_recipe("yolox_n_shapes", overrides)))
    assert run.training_params["criterion_params"] == {"num_classes": 5, "strides": [8, 16, 32]}
    assert type(run.train_loader.collate_fn) is DetectionCollateFN
    assert len(run.train_loader.dataset[0]) == 2
    assert any(isinstance(c, YoloXTrainingStageSwitchCallback) for c in run.training_params["phase_callbacks"])
    assert isinstance(run.training_params["valid_metrics_list"][0].post_prediction_callback,
                      YoloXPostPredictionCallback)


@pytest.mark.parametrize("override, message", [
    ("train_dataloader.random_resize_modes=[7]", "random_resize_modes must be OpenCV interpolation flags 0..4"),
    ("train_dataloader.random_resize_sizes=[50]", "random_resize_sizes: 50 is not a positive multiple of 32"),
    ("train_dataloader.random_resize_sizes=[[64,40]]", r"random_resize_sizes: \[64, 40\] is not a positive multiple"),
    ("training_params.static_assigner_end_epoch=1.5", "static_assigner_end_epoch must be an integer >= 0, got 1.5"),
    ("training_params.static_assigner_end_epoch=-1", "static_assigner_end_epoch must be an integer >= 0, got -1"),
])
def test_bad_ppyoloe_keys_are_named(override, message):
    with pytest.raises(RecipeError, match=message):
        read_detection_recipe(load_recipe("ppyoloe_s_shapes", [override]))


def test_yolox_settings_are_refused_in_a_ppyoloe_run(tmp_path):
    with pytest.raises(RecipeError, match="postprocess.with_confidence is a YOLOX setting"):
        read_detection_recipe(load_recipe("ppyoloe_s_shapes", ["postprocess.with_confidence=true"]))
    with pytest.raises(RecipeError, match="mosaic_off_epoch=4 is a YOLOX stage"):
        read_detection_recipe(load_recipe("ppyoloe_s_shapes", ["augmentation.mosaic_off_epoch=4"]))
    with pytest.raises(RecipeError, match="postprocess.with_confidence is a YOLOX setting"):
        PPYoloEFamily().post_prediction({"conf": 0.1, "with_confidence": False})  # a checkpoint's settings


def test_a_ppyoloe_key_in_a_yolox_recipe_is_reported_unused():
    with pytest.raises(Exception, match="training_params.static_assigner_end_epoch"):
        read_detection_recipe(load_recipe("yolox_n_shapes", ["training_params.static_assigner_end_epoch=1"]))
    with pytest.raises(Exception, match="train_dataloader.random_resize_sizes"):
        read_detection_recipe(load_recipe("yolox_n_shapes", ["train_dataloader.random_resize_sizes=[64]"]))


def test_shipped_ppyoloe_recipes_are_listed():
    assert {"ppyoloe_s_shapes", "coco_ppyoloe"} <= set(list_recipes())
