"""Recipes: loading by name or path, key=value overrides, and unused or misspelt keys named in the error."""

import pytest
from omegaconf import OmegaConf

from trainwright.config import UnusedConfigParamException
from trainwright.recipes import DEFAULT_RECIPE, RecipeError, list_recipes, load_recipe, parse_overrides, recipe_path
from trainwright.recipes.detection import read_detection_recipe

COCO_PATHS = ["dataset.train_images_dir=a", "dataset.train_annotations=b.json", "dataset.val_images_dir=c",
              "dataset.val_annotations=d.json"]


def test_shipped_recipes_are_listed_and_found():
    assert {"yolox_n_shapes", "coco_yolox"} <= set(list_recipes())
    assert DEFAULT_RECIPE == "yolox_n_shapes"
    assert recipe_path("coco_yolox").name == "coco_yolox.yaml"


def test_default_recipe_reads_completely():
    spec = read_detection_recipe(load_recipe())
    assert spec.architecture == "yolox_n" and spec.dataset["type"] == "shapes"
    assert spec.training_params["loss"] == "yolox_loss" and spec.training_params["max_epochs"] >= 1


def test_overrides_are_parsed_as_yaml_values():
    recipe = load_recipe(DEFAULT_RECIPE, ["training_params.max_epochs=3", "dataset.input_size=[96,128]",
                                          "training_params.initial_lr=0.5", "device=null"])
    assert recipe.training_params.max_epochs == 3 and isinstance(recipe.training_params.max_epochs, int)
    assert list(recipe.dataset.input_size) == [96, 128]
    assert recipe.training_params.initial_lr == 0.5 and recipe.device is None
    spec = read_detection_recipe(recipe)
    assert spec.training_params["max_epochs"] == 3 and spec.dataset["input_size"] == [96, 128]


def test_recipe_from_a_path(tmp_path):
    path = tmp_path / "mine.yaml"
    recipe = OmegaConf.load(recipe_path(DEFAULT_RECIPE))
    recipe.experiment_name = "mine"
    OmegaConf.save(recipe, path)
    assert load_recipe(str(path)).experiment_name == "mine"


@pytest.mark.parametrize("item", ["max_epochs", "=3", " a=1", "a.b"])
def test_malformed_override_is_named(item):
    with pytest.raises(RecipeError, match="key=value") as info:
        parse_overrides([item])
    assert repr(item) in str(info.value)


def test_unknown_recipe_is_named():
    with pytest.raises(RecipeError, match="no_such_recipe"):
        load_recipe("no_such_recipe")


def test_replacing_a_section_by_a_value_is_named():
    with pytest.raises(RecipeError, match="training_params is a section"):
        load_recipe(DEFAULT_RECIPE, ["training_params=3"])


def test_bad_yaml_is_named(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(RecipeError, match="broken.yaml"):
        load_recipe(str(path))


@pytest.mark.parametrize(("override", "unused", "hint"), [
    ("training_params.max_epoch=3", "training_params.max_epoch", "training_params.max_epochs"),
    ("augmentation.mosaic_prb=0.5", "augmentation.mosaic_prb", "augmentation.mosaic_prob"),
    ("dataset.generation.num_trian=10", "dataset.generation.num_trian", "dataset.generation.num_train"),
    ("trainig_params.seed=1", "trainig_params", "training_params"),
    ("postprocess.conff=0.1", "postprocess.conff", "postprocess.conf"),
])
def test_misspelt_keys_are_named_with_a_hint(override, unused, hint):
    with pytest.raises(UnusedConfigParamException) as info:
        read_detection_recipe(load_recipe(DEFAULT_RECIPE, [override]))
    assert info.value.unused_params == [unused]
    assert info.value.suggestions == {unused: hint}


def test_key_of_another_dataset_type_is_unused():
    with pytest.raises(UnusedConfigParamException) as info:
        read_detection_recipe(load_recipe("coco_yolox", [*COCO_PATHS, "dataset.generation={num_train: 5}"]))
    assert info.value.unused_params == ["dataset.generation"]


def test_coco_recipe_needs_its_paths():
    with pytest.raises(RecipeError, match="dataset.train_images_dir is required"):
        read_detection_recipe(load_recipe("coco_yolox"))
    spec = read_detection_recipe(load_recipe("coco_yolox", COCO_PATHS))
    assert spec.dataset["val_annotations"] == "d.json"


def test_parameters_built_by_the_recipe_are_refused():
    with pytest.raises(RecipeError, match="training_params.phase_callbacks"):
        read_detection_recipe(load_recipe(DEFAULT_RECIPE, ["training_params.phase_callbacks=[]"]))


def test_unknown_dataset_type_is_named():
    with pytest.raises(RecipeError, match="'voc'"):
        read_detection_recipe(load_recipe(DEFAULT_RECIPE, ["dataset.type=voc"]))


def test_recipe_and_overrides_are_told_apart():
    from trainwright.cli.train import split_recipe_and_overrides

    assert split_recipe_and_overrides([]) == (DEFAULT_RECIPE, [])
    assert split_recipe_and_overrides(["a=1", "coco_yolox", "b.c=[1,2]"]) == ("coco_yolox", ["a=1", "b.c=[1,2]"])
    with pytest.raises(RecipeError, match="at most one recipe"):
        split_recipe_and_overrides(["x", "y"])


def test_training_workers_follow_the_cpus_unless_given(tmp_path):
    from trainwright.data.loaders import default_num_workers
    from trainwright.recipes.detection import build_detection_run

    tiny = [f"dataset.root={tmp_path}", "dataset.input_size=[32,32]", "dataset.cache_images=false",
            "dataset.generation={image_size: 32, num_train: 4, num_val: 2, min_object_size: 6, max_object_size: 12}",
            "train_dataloader.batch_size=2"]
    spec = read_detection_recipe(load_recipe(DEFAULT_RECIPE, tiny))
    assert spec.train_loader["num_workers"] is None
    run = build_detection_run(spec)
    assert run.train_loader.num_workers == default_num_workers()
    assert run.train_loader.persistent_workers == (default_num_workers() > 0)
    given = build_detection_run(read_detection_recipe(load_recipe(DEFAULT_RECIPE, [*tiny, "train_dataloader.num_workers=0"])))
    assert given.train_loader.num_workers == 0
