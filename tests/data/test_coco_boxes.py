"""Boxes checked against their image: empty or outside ones dropped, overhanging ones clipped, one warning counting them."""

import numpy as np
import pytest
import torch
from coco_files import annotation_entry, image_entry, write_coco, write_image

from trainwright.data import COCODetectionDataset, DatasetWarning
from trainwright.data.box_checks import CLIP_TOLERANCE, check_boxes


def dataset_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DatasetWarning)]


def test_check_boxes_vectorised():
    xywh = np.array([[1, 1, 5, 5], [2, 2, 0, 4], [3, 3, 4, -1], [60, 10, 10, 10], [90, 10, 5, 5],
                     [-0.5, 0, 10, 48.8], [-8, -2, 20, 10]], np.float64)
    check = check_boxes(xywh, np.full(7, 64), np.full(7, 48))
    np.testing.assert_array_equal(check.empty, [0, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(check.outside, [0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(check.clipped, [0, 0, 0, 1, 0, 0, 1])  # (5) overhangs by < 1 pixel only
    np.testing.assert_array_equal(check.keep, [1, 0, 0, 1, 0, 1, 1])
    np.testing.assert_allclose(check.boxes[[0, 3, 5, 6]], [[1, 1, 6, 6], [60, 10, 64, 20], [0, 0, 9.5, 48],
                                                           [0, 0, 12, 8]])
    assert check.boxes.dtype == np.float32
    summary = check.summary(np.arange(100, 107))
    assert summary == ("of 7 boxes, 2 with zero or negative width or height were dropped (annotation ids 101, 102); "
                       "1 lying entirely outside their image were dropped (annotation ids 104); "
                       f"2 reaching more than {CLIP_TOLERANCE:g} pixel beyond their image were clipped to it "
                       "(annotation ids 103, 106)")


def test_check_boxes_on_nothing():
    check = check_boxes(np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    assert check.boxes.shape == (0, 4) and check.summary(np.zeros(0, np.int64)) is None


def test_dataset_drops_and_clips_with_one_warning(tmp_path):
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    write_image(images_dir / "a.png", 64, 48)
    write_image(images_dir / "b.png", 32, 32)
    annotations = [annotation_entry(1, 1, [2, 2, 10, 10]), annotation_entry(2, 1, [5, 5, 0, 3]),
                   annotation_entry(3, 1, [50, 40, 30, 30], 4), annotation_entry(4, 2, [40, 0, 5, 5]),
                   annotation_entry(5, 2, [10, 10, -4, 4]), annotation_entry(6, 2, [0, 0, 32.5, 32.5], iscrowd=1)]
    _, path = write_coco(tmp_path, [image_entry(1, "a.png", 64, 48), image_entry(2, "b.png", 32, 32)], annotations)
    with pytest.warns(DatasetWarning) as record:
        ds = COCODetectionDataset(images_dir, path, input_size=None, with_crowd=True)
    messages = dataset_warnings(record)
    assert len(messages) == 1
    assert messages[0] == (f"{path}: of 6 boxes, 2 with zero or negative width or height were dropped (annotation "
                           f"ids 2, 5); 1 lying entirely outside their image were dropped (annotation ids 4); 1 "
                           f"reaching more than 1 pixel beyond their image were clipped to it (annotation ids 3)")
    _, targets, extras = ds[0]
    torch.testing.assert_close(targets, torch.tensor([[0.0, 7, 7, 10, 10], [1, 57, 44, 14, 8]]))
    _, targets, extras = ds[1]
    assert targets.shape == (0, 5)
    torch.testing.assert_close(extras["crowd_targets"], torch.tensor([[0.0, 16, 16, 32, 32]]))


def test_boxes_are_clipped_to_the_file_size_not_the_json_size(tmp_path):
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    write_image(images_dir / "a.png", 40, 30)
    _, path = write_coco(tmp_path, [image_entry(1, "a.png", 80, 60)], [annotation_entry(1, 1, [30, 20, 40, 30])])
    with pytest.warns(DatasetWarning) as record:
        ds = COCODetectionDataset(images_dir, path, input_size=None)
    assert len(dataset_warnings(record)) == 2  # the size disagreement, and the clipped box
    np.testing.assert_allclose(ds.records[0].boxes, [[30, 20, 40, 30]])
