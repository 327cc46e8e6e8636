"""Annotation-file errors users make: each a one-line DatasetError naming the file and the id, nothing written."""

import json
import os

import numpy as np
import pytest
from coco_files import annotation_entry, image_entry, two_image_dataset, write_coco, write_image

from trainwright.data import COCODetectionDataset, DatasetError, parse_coco_annotations


def edit_json(path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def raises_dataset_error(images_dir, annotations, *named: str) -> DatasetError:
    """Build the dataset, expect a DatasetError whose single-line message names the file and every ``named``."""
    before = sorted(os.listdir(annotations.parent))
    with pytest.raises(DatasetError) as info:
        COCODetectionDataset(images_dir, annotations)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{annotations}: ")
    assert info.value.path == str(annotations)
    for text in named:
        assert text in message, (text, message)
    assert sorted(os.listdir(annotations.parent)) == before  # nothing written next to the data
    return info.value


def test_a_valid_file_loads_without_warnings(tmp_path, recwarn):
    ds = COCODetectionDataset(*two_image_dataset(tmp_path), input_size=None)
    assert len(ds) == 2 and not recwarn.list
    assert [(r.width, r.height) for r in ds.records] == [(64, 48), (32, 40)]


def test_invalid_json_names_file_line_and_column(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    annotations.write_text('{\n "images": [],\n "annotations": [\n  {"id": 1,}\n ],\n "categories": []\n}')
    error = raises_dataset_error(images_dir, annotations, "invalid JSON at line 4, column 12")
    assert isinstance(error, ValueError)


def test_results_file_instead_of_instances_file(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    annotations.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]))
    raises_dataset_error(images_dir, annotations, "not a COCO instances file", "detection results file")


def test_missing_top_level_key(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d.pop("categories"))
    raises_dataset_error(images_dir, annotations, "no 'categories' key")


@pytest.mark.parametrize("key", ["file_name", "width", "height"])
def test_image_without_a_required_key_names_the_image(tmp_path, key):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d["images"][1].pop(key))
    raises_dataset_error(images_dir, annotations, "image id 2", f"no '{key}' key")


def test_image_without_an_id_names_its_position(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d["images"][1].pop("id"))
    raises_dataset_error(images_dir, annotations, "image #1 of 'images'", "no 'id' key")


@pytest.mark.parametrize("key", ["image_id", "category_id", "bbox"])
def test_annotation_without_a_required_key_names_the_annotation(tmp_path, key):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: [a.pop(key) for a in d["annotations"][1:]])
    raises_dataset_error(images_dir, annotations, "annotation id 11", f"no '{key}' key", "2 entries lack it")


def test_annotation_without_an_id_names_its_position(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d["annotations"][2].pop("id"))
    raises_dataset_error(images_dir, annotations, "annotation #2 of 'annotations'", "no 'id' key")


def test_empty_split_is_an_error(tmp_path):
    images_dir, annotations = write_coco(tmp_path, [], [])
    raises_dataset_error(images_dir, annotations, "lists no images", "empty")


def test_duplicate_image_ids_name_the_id_and_both_files(tmp_path):
    """The second image used to get the first one's boxes and lose its own."""
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d["images"][1].update(id=1))
    raises_dataset_error(images_dir, annotations, "duplicate image id 1", "'a.jpg'", "'b.png'")


def test_duplicate_annotation_ids(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d["annotations"][2].update(id=10))
    raises_dataset_error(images_dir, annotations, "duplicate annotation id 10", "image_id 1", "image_id 2")


def test_duplicate_category_ids(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d["categories"].append({"id": 4, "name": "again"}))
    raises_dataset_error(images_dir, annotations, "duplicate category id 4", "'disc'", "'again'")


def test_annotation_of_a_missing_image(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d["annotations"][1].update(image_id=77))
    raises_dataset_error(images_dir, annotations, "annotation id 11", "image_id 77", "not an id in 'images'")


def test_annotation_of_an_unknown_category_counts_them(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: [a.update(category_id=9) for a in d["annotations"][1:]])
    raises_dataset_error(images_dir, annotations, "annotation id 11", "category_id 9", "'categories'",
                         "2 annotations")


@pytest.mark.parametrize(("bbox", "named"), [([1, 2, 3], "[1, 2, 3]"), ([1, 2, "3", 4], "'3'"),
                                             ([1, 2, 3, None], "None"), ("1 2 3 4", "'1 2 3 4'")])
def test_malformed_bbox_names_the_annotation(tmp_path, bbox, named):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d["annotations"][1].update(bbox=bbox))
    raises_dataset_error(images_dir, annotations, "annotation id 11", named, "[x, y, width, height]")


def test_non_finite_bbox_names_the_annotation(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    annotations.write_text(annotations.read_text().replace("[\n    30,", "[\n    NaN,"))
    raises_dataset_error(images_dir, annotations, "annotation id 11", "finite")


@pytest.mark.parametrize(("section", "key", "value"), [("images", "id", "2"), ("images", "width", 6.5),
                                                        ("annotations", "image_id", None),
                                                        ("annotations", "category_id", True)])
def test_ids_and_sizes_must_be_integers(tmp_path, section, key, value):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d[section][1].update({key: value}))
    raises_dataset_error(images_dir, annotations, f"{key}={value!r}", "must be an integer")


def test_iscrowd_must_be_zero_or_one(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d["annotations"][0].update(iscrowd=2))
    raises_dataset_error(images_dir, annotations, "annotation id 10", "iscrowd=2")


@pytest.mark.parametrize("name", ["../outside.jpg", "/etc/passwd", "sub/../../outside.jpg"])
def test_file_name_may_not_lead_outside_images_dir(tmp_path, name):
    images_dir, annotations = two_image_dataset(tmp_path)
    write_image(tmp_path / "outside.jpg")
    edit_json(annotations, lambda d: d["images"][0].update(file_name=name))
    raises_dataset_error(images_dir, annotations, repr(name), "outside images_dir")


def test_one_file_listed_as_two_images(tmp_path):
    """Merged exports: each entry would train with only its own boxes, the other entry's as background."""
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d["images"][1].update(file_name="./a.jpg"))
    raises_dataset_error(images_dir, annotations, "image ids 1 and 2 are the same file 'a.jpg'")


def test_file_names_in_subfolders_are_fine(tmp_path):
    images_dir = tmp_path / "images"
    (images_dir / "day").mkdir(parents=True)
    write_image(images_dir / "day" / "x.png", 20, 10)
    _, annotations = write_coco(tmp_path, [image_entry(5, "day/x.png", 20, 10)],
                                [annotation_entry(1, 5, [1, 1, 5, 5])])
    records, _, _ = parse_coco_annotations(annotations, images_dir)
    assert records[0].path == str(images_dir / "day" / "x.png")


def test_missing_annotations_file_is_named(tmp_path):
    images_dir, _ = two_image_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        COCODetectionDataset(images_dir, tmp_path / "nope.json")


def test_ignore_empty_annotations_leaving_nothing_is_an_error(tmp_path):
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    write_image(images_dir / "a.jpg")
    _, annotations = write_coco(tmp_path, [image_entry(1, "a.jpg")], [])
    assert len(COCODetectionDataset(images_dir, annotations)) == 1
    with pytest.raises(DatasetError, match="ignore_empty_annotations"):
        COCODetectionDataset(images_dir, annotations, ignore_empty_annotations=True)


def test_records_follow_the_file_order_with_their_own_boxes(tmp_path):
    images_dir, annotations = two_image_dataset(tmp_path)
    edit_json(annotations, lambda d: d["annotations"].reverse())
    records, ids, _ = parse_coco_annotations(annotations, images_dir)
    assert [r.image_id for r in records] == [1, 2] and ids == [1, 4]
    np.testing.assert_allclose(records[0].boxes, [[30, 20, 40, 32], [2, 3, 22, 13]])
    np.testing.assert_array_equal(records[0].labels, [1, 0])
    np.testing.assert_allclose(records[1].boxes, [[4, 4, 12, 12]])
