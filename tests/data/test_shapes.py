import json
import os

import numpy as np
import pytest

from trainwright.data import SHAPE_CLASSES, ShapesConfig, ShapesDetectionDataset, generate_shapes_dataset
from trainwright.data.shapes import default_cache_dir


def test_generation_is_deterministic_and_cached(tmp_path, tiny_shapes_params):
    config = ShapesConfig(**tiny_shapes_params)
    a = generate_shapes_dataset(config, tmp_path / "a")
    b = generate_shapes_dataset(config, tmp_path / "b")
    for split in ("train", "val"):
        assert (a / "annotations" / f"instances_{split}.json").read_text() == \
            (b / "annotations" / f"instances_{split}.json").read_text()
    assert (a / "images/train/000003.png").read_bytes() == (b / "images/train/000003.png").read_bytes()
    stamp = os.stat(a / "manifest.json").st_mtime_ns
    assert generate_shapes_dataset(config, tmp_path / "a") == a
    assert os.stat(a / "manifest.json").st_mtime_ns == stamp  # reused, not regenerated
    assert [p.name for p in (tmp_path / "a").iterdir()] == [a.name]  # no temp folder left behind


def test_generated_folder_has_the_permissions_of_a_plain_mkdir(tmp_path, tiny_shapes_params):
    folder = generate_shapes_dataset(ShapesConfig(**tiny_shapes_params), tmp_path / "cache")
    (tmp_path / "plain").mkdir()
    assert folder.stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_changed_parameters_give_a_new_folder(tmp_path, tiny_shapes_params):
    a = generate_shapes_dataset(ShapesConfig(**tiny_shapes_params), tmp_path)
    b = generate_shapes_dataset(ShapesConfig(**{**tiny_shapes_params, "generation_seed": 1}), tmp_path)
    assert a != b and (b / "manifest.json").is_file()
    assert json.loads((b / "manifest.json").read_text())["config"]["generation_seed"] == 1


def test_interrupted_generation_leaves_no_dataset(tmp_path, monkeypatch, tiny_shapes_params):
    import trainwright.data.shapes as shapes

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(shapes, "_write_split", fail)
    with pytest.raises(KeyboardInterrupt):
        generate_shapes_dataset(ShapesConfig(**tiny_shapes_params), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_dataset_content(tiny_shapes_root, tiny_shapes_params):
    train = ShapesDetectionDataset("train", root=tiny_shapes_root, **tiny_shapes_params)
    val = ShapesDetectionDataset("val", root=tiny_shapes_root, **tiny_shapes_params)
    assert len(train) == 12 and len(val) == 4
    assert train.class_names == list(SHAPE_CLASSES)
    counts = [len(r.boxes) for r in train.records]
    assert 1 <= min(counts) and max(counts) <= 6
    for record in train.records:
        assert (record.boxes[:, :2] >= 0).all() and (record.boxes[:, 2:] <= 64 + 1e-6).all()
        sizes = record.boxes[:, 2:] - record.boxes[:, :2]
        assert (sizes >= 7).all() and (sizes <= 25).all()
    image, targets = train[0]
    assert image.shape == (3, 64, 64) and targets.shape[1] == 5


def test_boxes_enclose_the_drawn_shapes(tiny_shapes_root, tiny_shapes_params):
    """Each annotated box is tight: the shape's colour reaches every side of its box (sample of unoccluded ones)."""
    val = ShapesDetectionDataset("val", root=tiny_shapes_root, **tiny_shapes_params)
    for i, record in enumerate(val.records):
        image = val.load_raw(i).image.astype(np.int32)
        for k, (x1, y1, x2, y2) in enumerate(record.boxes.astype(int)):
            others = np.delete(record.boxes, k, axis=0)
            if len(others) and ((others[:, 0] < x2) & (others[:, 2] > x1) & (others[:, 1] < y2) & (others[:, 3] > y1)).any():
                continue
            inside = image[y1:y2, x1:x2]
            centre = image[(y1 + y2) // 2, (x1 + x2) // 2]
            is_shape = np.abs(inside - centre).sum(-1) == 0
            assert is_shape[0].any() and is_shape[-1].any() and is_shape[:, 0].any() and is_shape[:, -1].any()
            border = np.concatenate([image[y1 - 1, x1:x2] if y1 > 0 else np.zeros((0, 3), int),
                                     image[y2, x1:x2] if y2 < 64 else np.zeros((0, 3), int)])
            assert (np.abs(border - centre).sum(-1) > 30).all() if len(border) else True


def test_unknown_parameter_and_bad_split():
    with pytest.raises(TypeError, match="image_sise"):
        ShapesDetectionDataset("train", image_sise=64)
    with pytest.raises(ValueError, match="split"):
        ShapesDetectionDataset("test")
    with pytest.raises(ValueError, match="max_objects"):
        ShapesConfig(min_objects=3, max_objects=2)


def test_default_cache_dir_is_configurable(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINWRIGHT_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("TRAINWRIGHT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "trainwright"


def test_training_items_without_mosaic_stage_are_the_plain_images(tiny_shapes_root, tiny_shapes_params):
    from trainwright.data.transforms import detection_train_transforms, detection_val_transforms

    size = (tiny_shapes_params["image_size"],) * 2
    train = ShapesDetectionDataset("val", root=tiny_shapes_root, transforms=detection_train_transforms(
        size, hsv_prob=0.0, flip_prob=0.0), **tiny_shapes_params)
    plain = ShapesDetectionDataset("val", root=tiny_shapes_root, transforms=detection_val_transforms(size),
                                   **tiny_shapes_params)
    mosaic_image, _ = train[0]
    assert mosaic_image.shape == (3, *size) and not np.array_equal(mosaic_image.numpy(), plain[0][0].numpy())
    train.set_mosaic_enabled(False)
    for i in range(len(plain)):
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(train[i], plain[i]))
