"""A detection dataset in COCO format: an images folder plus an instances_*.json annotation file.

Everything is checked when the dataset is built, before any training starts (see ``parse_coco_annotations``):
a problem that would give wrong labels is a DatasetError naming the file and the id; a repair (a box clipped
or dropped, an image size taken from the file instead of the JSON) is one DatasetWarning that counts it.
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainwright.data.box_checks import check_boxes
from trainwright.data.coco_json import CocoTables, read_coco_tables
from trainwright.data.detection_dataset import DetectionDataset
from trainwright.data.errors import DatasetError, DatasetWarning, MissingImagesError, examples
from trainwright.data.image_io import read_rgb_image
from trainwright.data.image_scan import NOT_FOUND, ImageScan, scan_image_files
from trainwright.data.sample import DetectionSample
from trainwright.data.transforms.base import DetectionTransform

__all__ = ["COCODetectionDataset", "CocoImageRecord", "parse_coco_annotations", "read_rgb_image"]


@dataclass(frozen=True)
class CocoImageRecord:
    """One image of the annotation file: its path, size and annotations (boxes xyxy in pixels, class indices).

    width and height are the image's as displayed (read from the file, EXIF orientation applied), whatever the
    JSON says; orientation is the file's EXIF orientation (1..8), applied when the image is decoded.
    """

    image_id: int
    path: str
    width: int
    height: int
    boxes: np.ndarray  # float32 [n, 4]
    labels: np.ndarray  # int64 [n]
    is_crowd: np.ndarray  # bool [n]
    orientation: int = 1


def parse_coco_annotations(annotations_file, images_dir) -> tuple[list[CocoImageRecord], list[int], list[str]]:
    """Read and check a COCO instances file and its images -> (one record per image, category ids, class names).

    Class index i stands for the i-th smallest category id. Boxes are COCO (x, y, w, h) turned into
    (x1, y1, x2, y2). ``iscrowd`` annotations are kept as crowd regions; images without annotations are kept.

    Errors (DatasetError naming the file and id): invalid JSON, a missing key, an empty split, duplicate image,
    annotation or category ids, an annotation whose image or category does not exist, a file_name outside
    ``images_dir`` or listed twice, image files that are missing (MissingImagesError), unreadable or truncated.
    Repairs (one DatasetWarning each, with counts): boxes with zero or negative size or lying outside their
    image are dropped, boxes overhanging it are clipped; a JSON width/height that differs from the file's.
    """
    tables = read_coco_tables(annotations_file)
    paths = _image_paths(str(images_dir), tables.file_names, tables.image_ids, annotations_file)
    scan = scan_image_files(paths)
    _raise_on_unusable_images(scan, tables.file_names, images_dir, annotations_file)
    _warn_on_size_mismatch(tables, scan, annotations_file)

    order = np.argsort(tables.image_ids, kind="stable")
    image_pos = order[np.searchsorted(tables.image_ids, tables.annotation_image_ids, sorter=order)]  # [A]
    check = check_boxes(tables.boxes_xywh, scan.widths[image_pos], scan.heights[image_pos])
    summary = check.summary(tables.annotation_ids)
    if summary:
        warnings.warn(f"{annotations_file}: {summary}", DatasetWarning, stacklevel=3)
    labels = np.searchsorted(np.asarray(tables.category_ids), tables.annotation_category_ids).astype(np.int64)
    keep = np.flatnonzero(check.keep)
    keep = keep[np.argsort(image_pos[keep], kind="stable")]
    bounds = np.searchsorted(image_pos[keep], np.arange(len(paths) + 1))
    boxes, labels, crowd = check.boxes[keep], labels[keep], tables.is_crowd[keep]
    records = [CocoImageRecord(int(tables.image_ids[i]), paths[i], int(scan.widths[i]), int(scan.heights[i]),
                               boxes[lo:hi], labels[lo:hi], crowd[lo:hi], int(scan.orientations[i]))
               for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))]
    return records, tables.category_ids, tables.class_names


def _image_paths(images_dir: str, file_names: list[str], image_ids: np.ndarray, annotations_file) -> list[str]:
    """The path of every image under images_dir; DatasetError for a file_name leading outside it or listed twice."""
    root = os.path.normpath(images_dir)
    prefix = root.rstrip(os.sep) + os.sep
    paths = [os.path.normpath(os.path.join(root, name)) for name in file_names]
    outside = [name for name, path in zip(file_names, paths) if not path.startswith(prefix)]
    if outside:
        raise DatasetError(annotations_file, f"file_name {outside[0]!r} leads outside images_dir {images_dir} "
                                             f"({len(outside)} such images); file names are relative to it")
    _reject_repeated_files(paths, file_names, image_ids, annotations_file)
    return paths


def _reject_repeated_files(paths: list[str], file_names: list[str], image_ids: np.ndarray, annotations_file) -> None:
    """DatasetError when two image entries are one file: each would train with only its own share of the boxes."""
    unique, first, counts = np.unique(np.asarray(paths), return_index=True, return_counts=True)
    if (counts == 1).all():
        return
    repeated = int(first[np.argmax(counts > 1)])
    others = [i for i, path in enumerate(paths) if path == paths[repeated] and i != repeated]
    raise DatasetError(annotations_file, f"image ids {int(image_ids[repeated])} and {int(image_ids[others[0]])} are "
                                         f"the same file {file_names[repeated]!r} ({int((counts > 1).sum())} files "
                                         f"are listed more than once); each entry would train with only its own "
                                         f"boxes and the others as background: merge them into one image entry")


def _raise_on_unusable_images(scan: ImageScan, file_names: list[str], images_dir, annotations_file) -> None:
    """MissingImagesError when files are missing (only), DatasetError naming each unusable file otherwise."""
    if not scan.problems:
        return
    listed = "; ".join(f"{file_names[i]}: {why}" for i, why in list(scan.problems.items())[:5])
    more = "; ..." if len(scan.problems) > 5 else ""
    message = (f"{len(scan.problems)} of the {len(file_names)} images it lists in {images_dir} cannot be used "
               f"({listed}{more}); restore these files or remove their entries and annotations")
    if all(why == NOT_FOUND for why in scan.problems.values()):
        raise MissingImagesError(annotations_file, message)
    raise DatasetError(annotations_file, message)


def _warn_on_size_mismatch(tables: CocoTables, scan: ImageScan, annotations_file) -> None:
    """One DatasetWarning counting the images whose JSON width/height differ from the file (the file wins)."""
    differs = (tables.widths != scan.widths) | (tables.heights != scan.heights)
    if not differs.any():
        return
    i = int(np.argmax(differs))
    message = (f"{annotations_file}: {int(differs.sum())} of {len(differs)} images have a width/height that differs "
               f"from the image file, e.g. image id {int(tables.image_ids[i])} ({tables.file_names[i]}): "
               f"{int(tables.widths[i])}x{int(tables.heights[i])} in the JSON, {int(scan.widths[i])}x"
               f"{int(scan.heights[i])} in the file; the file's size is used")
    stored = differs & (scan.orientations >= 5) & (tables.widths == scan.heights) & (tables.heights == scan.widths)
    if stored.any():
        message += (f". {int(stored.sum())} of them (image ids {examples(tables.image_ids[stored].tolist())}) carry "
                    f"an EXIF orientation that turns them by 90 degrees and the JSON gives their stored size: boxes "
                    f"are read on the image as displayed (upright, as annotation tools show it); if yours showed "
                    f"the stored pixels instead, remove the orientation tag from those files")
    warnings.warn(message, DatasetWarning, stacklevel=4)


class COCODetectionDataset(DetectionDataset):
    """Detection dataset over ``images_dir`` and a COCO ``annotations_file`` (e.g. instances_val2017.json).

    Category ids map to contiguous class indices in ascending id order; ``class_names`` and
    ``category_ids`` keep the mapping and ``processing_params`` is the dict to save with checkpoints.
    Crowd annotations (iscrowd=1) are never ordinary targets: with with_crowd=True they come back as
    crowd targets, else they are dropped. Images without annotations are kept unless
    ignore_empty_annotations=True. The annotation file and every image file are checked at construction
    (see parse_coco_annotations): a problem raises DatasetError, a repair warns once with a count. Images are
    decoded as displayed (EXIF orientation applied) to 8-bit RGB, whatever their pixel type.
    cache_images=True keeps the decoded, resized images in memory (loaded at construction, so DataLoader
    workers share them).

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
            if not records:
                raise DatasetError(self.annotations_file, "no image has a (non-crowd) box, and "
                                                          "ignore_empty_annotations=True leaves no image")
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
        image = read_rgb_image(record.path, record.orientation)
        if image.shape[:2] != (record.height, record.width):
            raise DatasetError(record.path, f"decodes to {image.shape[1]}x{image.shape[0]} pixels, but was "
                                            f"{record.width}x{record.height} when the dataset was built; "
                                            f"the file changed since")
        return DetectionSample(image, record.boxes, record.labels, record.is_crowd)

    def load_sample(self, index: int) -> DetectionSample:
        return super().load_sample(index) if self._cache is None else self._cache[index]
