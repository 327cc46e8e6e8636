"""A detection dataset in COCO format: an images folder plus an instances_*.json annotation file."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trainwright.data.detection_dataset import DetectionDataset
from trainwright.data.sample import DetectionSample
from trainwright.data.transforms.base import DetectionTransform


@dataclass(frozen=True)
class CocoImageRecord:
    """One image of the annotation file: its path and annotations (boxes xyxy in pixels, class indices)."""

    image_id: int
    path: str
    width: int
    height: int
    boxes: np.ndarray  # float32 [n, 4]
    labels: np.ndarray  # int64 [n]
    is_crowd: np.ndarray  # bool [n]


def _category_table(categories: list[dict], annotations_file) -> tuple[list[int], list[str]]:
    """Category ids sorted ascending (class index = position) and their names."""
    if not categories:
        raise ValueError(f"{annotations_file}: 'categories' is empty; a detection dataset needs at least one class")
    ordered = sorted(categories, key=lambda c: int(c["id"]))
    ids = [int(c["id"]) for c in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{annotations_file}: duplicate category ids in {ids}")
    return ids, [str(c.get("name", c["id"])) for c in ordered]


def parse_coco_annotations(annotations_file, images_dir) -> tuple[list[CocoImageRecord], list[int], list[str]]:
    """Read a COCO instances file -> (one record per image, category ids, class names).

    Class index i stands for the i-th smallest category id. Boxes are COCO (x, y, w, h) turned into
    (x1, y1, x2, y2); boxes with w <= 0 or h <= 0 are skipped as degenerate. ``iscrowd`` annotations are
    kept as crowd regions. Images without annotations are kept (with no boxes).
    """
    with open(annotations_file, encoding="utf-8") as f:
        data = json.load(f)
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"{annotations_file} is not a COCO instances file: no '{key}' key")
    cat_ids, names = _category_table(data["categories"], annotations_file)
    anns = data["annotations"]
    image_ids = np.array([int(a["image_id"]) for a in anns], dtype=np.int64)
    ann_cats = np.array([int(a["category_id"]) for a in anns], dtype=np.int64)
    xywh = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
    crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)
    unknown = np.setdiff1d(ann_cats, cat_ids)
    if unknown.size:
        raise ValueError(f"{annotations_file}: annotations use category ids {unknown.tolist()} not in 'categories'")
    valid = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
    image_ids, ann_cats, xywh, crowd = image_ids[valid], ann_cats[valid], xywh[valid], crowd[valid]
    labels = np.searchsorted(np.array(cat_ids), ann_cats).astype(np.int64)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    order = np.argsort(image_ids, kind="stable")
    image_ids, labels, boxes, crowd = image_ids[order], labels[order], boxes[order], crowd[order]
    records = []
    for img in data["images"]:
        image_id = int(img["id"])
        lo, hi = np.searchsorted(image_ids, [image_id, image_id + 1])
        records.append(CocoImageRecord(image_id, os.path.join(images_dir, img["file_name"]), int(img["width"]),
                                       int(img["height"]), boxes[lo:hi], labels[lo:hi], crowd[lo:hi]))
    return records, cat_ids, names


def read_rgb_image(path: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB image at ``path``; FileNotFoundError / ValueError naming the path otherwise."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image (corrupt or unsupported format): {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class COCODetectionDataset(DetectionDataset):
    """Detection dataset over ``images_dir`` and a COCO ``annotations_file`` (e.g. instances_val2017.json).

    Category ids map to contiguous class indices in ascending id order; ``class_names`` and
    ``category_ids`` keep the mapping and ``processing_params`` is the dict to save with checkpoints.
    Crowd annotations (iscrowd=1) are never ordinary targets: with with_crowd=True they come back as
    crowd targets, else they are dropped. Images without annotations are kept unless
    ignore_empty_annotations=True. Degenerate boxes (w or h <= 0) are skipped. Every image file is
    checked at construction (FileNotFoundError lists the missing paths); an unreadable file raises
    with its path when loaded. cache_images=True keeps the decoded, resized images in memory (loaded
    at construction, so DataLoader workers share them).

    Items: see DetectionDataset.
    """

    def __init__(self, images_dir, annotations_file, input_size=(640, 640),
                 transforms: list[DetectionTransform] | None = None, with_crowd: bool = False,
                 ignore_empty_annotations: bool = False, cache_images: bool = False, seed: int = 0):
        super().__init__(transforms, input_size=input_size, with_crowd=with_crowd, seed=seed)
        self.images_dir, self.annotations_file = str(images_dir), str(annotations_file)
        if not Path(self.images_dir).is_dir():
            raise FileNotFoundError(f"images_dir is not a directory: {self.images_dir}")
        records, self.category_ids, self.class_names = parse_coco_annotations(self.annotations_file, self.images_dir)
        if ignore_empty_annotations:
            records = [r for r in records if (~r.is_crowd).any()]
        missing = [r.path for r in records if not os.path.isfile(r.path)]
        if missing:
            raise FileNotFoundError(f"{len(missing)} image file(s) of {self.annotations_file} not found, "
                                    f"e.g. {missing[:5]}")
        self.records = records
        self._cache = None
        if cache_images:
            self._cache = [super(COCODetectionDataset, self).load_sample(i) for i in range(len(records))]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def processing_params(self) -> dict:
        """Plain-container description to save with a checkpoint: class names, category ids, input size."""
        return {"class_names": list(self.class_names), "category_ids": list(self.category_ids),
                "input_size": None if self.input_size is None else list(self.input_size)}

    def subset(self, indices) -> COCODetectionDataset:
        """A dataset of the images at ``indices`` only (same classes, transforms and switches; mosaic and
        mixup partners come from the subset too). Unlike torch's Subset it keeps set_mosaic_enabled,
        class_names and processing_params.
        """
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not 0 <= i < len(self.records)]
        if bad:
            raise IndexError(f"subset indices {bad[:5]} out of range for a dataset of {len(self.records)} images")
        view = copy.copy(self)
        view.records = [self.records[i] for i in indices]
        view._cache = None if self._cache is None else [self._cache[i] for i in indices]
        view._rng, view._rng_key = None, None
        return view

    def load_raw(self, index: int) -> DetectionSample:
        record = self.records[index]
        return DetectionSample(read_rgb_image(record.path), record.boxes, record.labels, record.is_crowd)

    def load_sample(self, index: int) -> DetectionSample:
        return super().load_sample(index) if self._cache is None else self._cache[index]
