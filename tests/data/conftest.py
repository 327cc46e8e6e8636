"""Fixtures of the data tests: a tiny COCO-format dataset written on the fly."""

import json

import cv2
import numpy as np
import pytest

# category ids are deliberately not contiguous and not in order
CATEGORIES = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}, {"id": 12, "name": "bird"}]


def write_tiny_coco(root, missing_image: bool = False):
    """Three 48x64 images: one with two boxes and a crowd region, one with a degenerate box only, one unannotated."""
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    names = ["a.png", "b.png", "c.png"]
    for i, name in enumerate(names):
        if missing_image and i == 2:
            continue
        image = np.full((48, 64, 3), 40 * (i + 1), np.uint8)
        cv2.imwrite(str(images_dir / name), image)
    images = [{"id": 10 + i, "file_name": n, "width": 64, "height": 48} for i, n in enumerate(names)]
    annotations = [
        {"id": 1, "image_id": 10, "category_id": 3, "bbox": [4, 6, 20, 10], "area": 200, "iscrowd": 0},
        {"id": 2, "image_id": 10, "category_id": 12, "bbox": [30.5, 20, 10, 8], "area": 80, "iscrowd": 0},
        {"id": 3, "image_id": 10, "category_id": 7, "bbox": [40, 2, 20, 12], "area": 240, "iscrowd": 1},
        {"id": 4, "image_id": 11, "category_id": 7, "bbox": [5, 5, 0, 10], "area": 0, "iscrowd": 0},
    ]
    annotations_file = root / "instances_tiny.json"
    annotations_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return images_dir, annotations_file


@pytest.fixture
def tiny_coco(tmp_path):
    return write_tiny_coco(tmp_path)


@pytest.fixture
def make_tiny_coco():
    return write_tiny_coco


@pytest.fixture(scope="session")
def tiny_shapes_root(tmp_path_factory):
    return tmp_path_factory.mktemp("shapes")


@pytest.fixture(scope="session")
def tiny_shapes_params():
    """A shapes configuration small enough to generate in a fraction of a second."""
    return dict(image_size=64, num_train=12, num_val=4, min_object_size=8, max_object_size=24)
