"""The PP-YOLOE recipes read and build the family's pieces; YOLOX recipes keep theirs."""

import pytest

from trainwright.callbacks.ppyoloe_stage_switch import PPYoloETrainingStageSwitchCallback
from trainwright.callbacks.stage_switch import YoloXTrainingStageSwitchCallback
from trainwright.data import CrowdDetectionCollateFN, CrowdDetectionPPYoloECollateFN, DetectionCollateFN
from trainwright.models.detection.postprocess import YoloXPostPredictionCallback
from trainwright.models.detection.ppyoloe_postprocess import PPYoloEPostPredictionCallback
from trainwright.recipes import RecipeError, load_recipe
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


@pytest.mark.parametrize("override", ["train_dataloader.random_resize_modes=[7]",
                                      "train_dataloader.random_resize_sizes=[[64,40]]",
                                      "training_params.static_assigner_end_epoch=1.5"])
def test_bad_ppyoloe_keys_are_named(override):
    key = override.split("=")[0].split(".")[-1]
    with pytest.raises(RecipeError, match=key):
        read_detection_recipe(load_recipe("ppyoloe_s_shapes", [override]))
