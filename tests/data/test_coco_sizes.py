"""Image sizes come from the files (EXIF orientation applied), not the JSON: a perfect model scores a perfect AP."""

import pytest
import torch
from coco_files import annotation_entry, image_entry, write_coco, write_image
from torch import nn

from trainwright.cli.evaluate import predict_coco_detections
from trainwright.cli.inference import CheckpointModel
from trainwright.data import COCODetectionDataset, DatasetWarning
from trainwright.data.transforms import detection_val_transforms
from trainwright.metrics.coco import coco_evaluate

INPUT_SIZE = (64, 64)


class PerfectModel(nn.Module):
    """Returns the dataset's own targets, batch after batch, as decoded YOLOX output [B, N, 5 + C]."""

    def __init__(self, dataset, num_classes: int):
        super().__init__()
        self.targets = [dataset[i][1] for i in range(len(dataset))]
        self.num_classes, self.seen = num_classes, 0

    def forward(self, images):
        batch = self.targets[self.seen:self.seen + len(images)]
        self.seen += len(images)
        out = torch.zeros(len(images), max(len(t) for t in batch) or 1, 5 + self.num_classes)
        for b, targets in enumerate(batch):
            n = len(targets)
            out[b, :n, :4] = targets[:, 1:]
            out[b, :n, 4] = 1.0
            out[b, torch.arange(n), 5 + targets[:, 0].long()] = 1.0
        return out


def write_mismatched_dataset(root):
    """Three images whose JSON sizes disagree with the files in the ways seen in real exports.

    - p.jpg: a portrait photo stored 90x60 with EXIF orientation 6 (displayed 60x90); the JSON gives the stored
      size, boxes are drawn on the displayed image (as Label Studio exports such photos);
    - h.png: the JSON says 200x160 for a 100x80 file;
    - ok.png: right.
    """
    images_dir = root / "images"
    images_dir.mkdir()
    write_image(images_dir / "p.jpg", 90, 60, orientation=6)
    write_image(images_dir / "h.png", 100, 80)
    write_image(images_dir / "ok.png", 48, 40)
    images = [image_entry(1, "p.jpg", 90, 60), image_entry(2, "h.png", 200, 160), image_entry(3, "ok.png", 48, 40)]
    annotations = [annotation_entry(1, 1, [10, 50, 30, 25]), annotation_entry(2, 1, [35, 5, 20, 20], 4),
                   annotation_entry(3, 2, [60, 40, 30, 30]), annotation_entry(4, 2, [5, 5, 20, 10], 4),
                   annotation_entry(5, 3, [10, 10, 20, 20])]
    return write_coco(root, images, annotations)


def test_sizes_come_from_the_files_with_one_warning(tmp_path):
    images_dir, path = write_mismatched_dataset(tmp_path)
    with pytest.warns(DatasetWarning) as record:
        ds = COCODetectionDataset(images_dir, path, input_size=None)
    messages = [str(w.message) for w in record if issubclass(w.category, DatasetWarning)]
    assert len(messages) == 1
    assert messages[0].startswith(f"{path}: 2 of 3 images have a width/height that differs from the image file, "
                                  f"e.g. image id 1 (p.jpg): 90x60 in the JSON, 60x90 in the file")
    assert "1 of them (image ids 1) carry an EXIF orientation" in messages[0]
    assert [(r.width, r.height) for r in ds.records] == [(60, 90), (100, 80), (48, 40)]
    assert [tuple(ds[i][0].shape) for i in range(3)] == [(3, 90, 60), (3, 80, 100), (3, 40, 48)]


def test_a_perfect_model_scores_ap_1_through_the_evaluate_path(tmp_path):
    """What `trainwright evaluate` runs: predictions mapped back with the record sizes, then coco_evaluate."""
    images_dir, path = write_mismatched_dataset(tmp_path)
    with pytest.warns(DatasetWarning):
        dataset = COCODetectionDataset(images_dir, path, input_size=INPUT_SIZE,
                                       transforms=detection_val_transforms(INPUT_SIZE))
    cm = CheckpointModel(PerfectModel(dataset, 2), ["box", "disc"], [1, 4], INPUT_SIZE, None, {"conf": 0.001}, 0.3,
                         torch.device("cpu"))
    detections = predict_coco_detections(cm, dataset, batch_size=2)
    assert len(detections) == 5
    stats = coco_evaluate(path, detections)
    assert stats["AP50"] == pytest.approx(1.0)
    assert stats["AP"] > 0.95  # boxes pass through a 64x64 resize and back
