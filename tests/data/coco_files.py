"""Helpers of the data-integrity tests: small image files of every kind and COCO JSON written by hand."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

CATEGORIES = [{"id": 1, "name": "box"}, {"id": 4, "name": "disc"}]


def write_image(path, width: int = 64, height: int = 48, orientation: int | None = None, value: int = 120,
                fmt: str | None = None) -> np.ndarray:
    """Write a width x height RGB image (a flat colour with a brighter top-left block) and return its pixels [H, W, 3].

    ``orientation``: an EXIF orientation tag to store with it (the pixels are written as given, i.e. stored).
    """
    pixels = np.full((height, width, 3), value, np.uint8)
    pixels[: height // 3, : width // 3] = (250, 30, 30)
    kwargs = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    if (fmt or str(path).rsplit(".", 1)[-1].upper()) in ("JPG", "JPEG"):
        kwargs["quality"] = 95
    Image.fromarray(pixels).save(path, format=fmt, **kwargs)
    return pixels


def image_entry(image_id: int, file_name: str, width: int = 64, height: int = 48, **extra) -> dict:
    return {"id": image_id, "file_name": file_name, "width": width, "height": height, **extra}


def annotation_entry(ann_id: int, image_id: int, bbox, category_id: int = 1, iscrowd: int = 0, **extra) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": list(bbox),
            "area": float(bbox[2] * bbox[3]) if len(bbox) == 4 else 0.0, "iscrowd": iscrowd, **extra}


def write_coco(root, images: list[dict], annotations: list[dict], categories: list[dict] | None = None,
               name: str = "instances.json"):
    """Write the instances file (images written separately into root / 'images') -> (images_dir, json path)."""
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": CATEGORIES if categories is None else categories}, indent=1))
    return images_dir, path


def two_image_dataset(root):
    """A valid dataset: a.jpg (64x48) with two boxes, b.png (32x40) with one -> (images_dir, json path)."""
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    write_image(images_dir / "a.jpg", 64, 48)
    write_image(images_dir / "b.png", 32, 40)
    images = [image_entry(1, "a.jpg", 64, 48), image_entry(2, "b.png", 32, 40)]
    annotations = [annotation_entry(10, 1, [2, 3, 20, 10]), annotation_entry(11, 1, [30, 20, 10, 12], 4),
                   annotation_entry(12, 2, [4, 4, 8, 8], 4)]
    return write_coco(root, images, annotations)
