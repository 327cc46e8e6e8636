"""Detection data: COCO-format and synthetic datasets, transforms, collate functions, loaders."""

from trainwright.data.coco import COCODetectionDataset, parse_coco_annotations
from trainwright.data.collate import (
    CrowdDetectionCollateFN,
    CrowdDetectionPPYoloECollateFN,
    DetectionCollateFN,
    PPYoloECollateFN,
)
from trainwright.data.detection_dataset import DetectionDataset
from trainwright.data.errors import DatasetError, DatasetWarning, MissingImagesError
from trainwright.data.loaders import build_detection_loader, seed_worker
from trainwright.data.sample import DetectionSample
from trainwright.data.shapes import SHAPE_CLASSES, ShapesConfig, ShapesDetectionDataset, generate_shapes_dataset

__all__ = [
    "COCODetectionDataset",
    "CrowdDetectionCollateFN",
    "CrowdDetectionPPYoloECollateFN",
    "DatasetError",
    "DatasetWarning",
    "DetectionCollateFN",
    "DetectionDataset",
    "DetectionSample",
    "MissingImagesError",
    "PPYoloECollateFN",
    "SHAPE_CLASSES",
    "ShapesConfig",
    "ShapesDetectionDataset",
    "build_detection_loader",
    "generate_shapes_dataset",
    "parse_coco_annotations",
    "seed_worker",
]
