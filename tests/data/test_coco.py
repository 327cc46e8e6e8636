import numpy as np
import pytest
import torch

from trainwright.data import COCODetectionDataset, DatasetWarning, parse_coco_annotations

# The tiny dataset has one box of zero width on purpose; the warning about it is tested once, below.
pytestmark = pytest.mark.filterwarnings("ignore:.*zero or negative width:trainwright.data.errors.DatasetWarning")


def test_categories_map_to_contiguous_indices_in_id_order(tiny_coco):
    records, ids, names = parse_coco_annotations(tiny_coco[1], tiny_coco[0])
    assert ids == [3, 7, 12] and names == ["cat", "dog", "bird"]
    first = records[0]
    np.testing.assert_array_equal(first.labels, [0, 2, 1])
    np.testing.assert_allclose(first.boxes, [[4, 6, 24, 16], [30.5, 20, 40.5, 28], [40, 2, 60, 14]])
    np.testing.assert_array_equal(first.is_crowd, [False, False, True])


def test_degenerate_boxes_skipped_and_images_without_annotations_kept(tiny_coco):
    with pytest.warns(DatasetWarning, match=r"of 4 boxes, 1 with zero or negative width or height were dropped "
                                            r"\(annotation ids 4\)"):
        records, _, _ = parse_coco_annotations(tiny_coco[1], tiny_coco[0])
    assert [r.image_id for r in records] == [10, 11, 12]
    assert len(records[1].boxes) == 0 and len(records[2].boxes) == 0


def test_item_layout_and_crowd_targets_apart(tiny_coco):
    ds = COCODetectionDataset(*tiny_coco, input_size=None, with_crowd=True)
    image, targets, extras = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 48, 64)
    assert float(image[0, 0, 0]) == 40.0
    torch.testing.assert_close(targets, torch.tensor([[0, 14, 11, 20, 10], [2, 35.5, 24, 10, 8]]))
    torch.testing.assert_close(extras["crowd_targets"], torch.tensor([[1.0, 50, 8, 20, 12]]))
    plain = COCODetectionDataset(*tiny_coco, input_size=None)
    assert len(plain[0]) == 2 and len(plain[0][1]) == 2  # crowd region never an ordinary target
    empty_image, empty_targets = plain[2]
    assert empty_targets.shape == (0, 5) and empty_image.shape == (3, 48, 64)


def test_input_size_fits_image_and_scales_boxes(tiny_coco):
    ds = COCODetectionDataset(*tiny_coco, input_size=(24, 32))
    image, targets = ds[0]
    assert image.shape == (3, 24, 32)
    torch.testing.assert_close(targets[0], torch.tensor([0, 7, 5.5, 10, 5]))


def test_processing_params_and_class_names(tiny_coco):
    ds = COCODetectionDataset(*tiny_coco, input_size=(48, 64))
    assert ds.class_names == ["cat", "dog", "bird"] and ds.num_classes == 3
    assert ds.processing_params == {"class_names": ["cat", "dog", "bird"], "category_ids": [3, 7, 12],
                                    "input_size": [48, 64]}


def test_ignore_empty_annotations(tiny_coco):
    ds = COCODetectionDataset(*tiny_coco, ignore_empty_annotations=True)
    assert len(ds) == 1


def test_missing_image_reported_with_its_path(tmp_path, make_tiny_coco):
    images_dir, annotations = make_tiny_coco(tmp_path, missing_image=True)
    with pytest.raises(FileNotFoundError, match="c.png"):
        COCODetectionDataset(images_dir, annotations)


def test_unreadable_image_reported_with_its_path(tiny_coco):
    ds = COCODetectionDataset(*tiny_coco)
    (tiny_coco[0] / "b.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="b.png"):
        ds[1]


def test_cache_images_gives_the_same_items_without_reading_files(tiny_coco):
    cached = COCODetectionDataset(*tiny_coco, input_size=(24, 32), cache_images=True)
    expected = [COCODetectionDataset(*tiny_coco, input_size=(24, 32))[i] for i in range(3)]
    for name in ("a.png", "b.png", "c.png"):
        (tiny_coco[0] / name).unlink()
    for i, (image, targets) in enumerate(expected):
        got_image, got_targets = cached[i]
        assert torch.equal(got_image, image) and torch.equal(got_targets, targets)


def test_unknown_category_is_an_error(tmp_path, make_tiny_coco):
    images_dir, annotations = make_tiny_coco(tmp_path)
    text = annotations.read_text().replace('"category_id": 12', '"category_id": 99')
    annotations.write_text(text)
    with pytest.raises(ValueError, match="99"):
        COCODetectionDataset(images_dir, annotations)


def test_real_coco_files_through_pycocotools_agree(tiny_coco):
    coco_mod = pytest.importorskip("pycocotools.coco")
    coco = coco_mod.COCO(str(tiny_coco[1]))
    records, ids, _ = parse_coco_annotations(tiny_coco[1], tiny_coco[0])
    for record in records:
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=record.image_id)) if a["bbox"][2] > 0 < a["bbox"][3]]
        assert len(anns) == len(record.boxes)
        assert sorted(ids.index(a["category_id"]) for a in anns) == sorted(record.labels.tolist())


def test_subset_keeps_classes_switch_and_cache(tiny_coco):
    from trainwright.data.transforms import Mosaic

    ds = COCODetectionDataset(*tiny_coco, input_size=(48, 64), transforms=[Mosaic((48, 64))], cache_images=True)
    sub = ds.subset([2, 0])
    assert len(sub) == 2 and len(ds) == 3
    assert sub.class_names == ds.class_names and sub.processing_params == ds.processing_params
    assert [r.image_id for r in sub.records] == [12, 10]
    sub.set_mosaic_enabled(False)
    image, targets = sub[1]
    assert image.shape == (3, 48, 64) and len(targets) == 2
    with pytest.raises(IndexError, match="5"):
        ds.subset([5])
