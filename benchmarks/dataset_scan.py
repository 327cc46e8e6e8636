"""Speed of the up-front dataset check: building a COCODetectionDataset over N generated 640x480 JPEGs.

Rows: our header scan of every image (threads, and one thread), the whole construction of the dataset
(JSON checks + scan + box checks), and for scale what a check by decoding costs: Pillow's ``verify()`` of every
file (what Ultralytics' dataset scan runs) and a full OpenCV decode of every file. Files sit in the page cache
(written just before), so the numbers are CPU cost, not disk reads.

    python benchmarks/dataset_scan.py            # 2000 images
    python benchmarks/dataset_scan.py --quick    # 100 images
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from trainwright.data import COCODetectionDataset
from trainwright.data.image_scan import scan_image_files


def write_dataset(root: Path, count: int) -> tuple[Path, Path]:
    """``count`` 640x480 JPEGs (smooth gradient + noise, about the size of a photo at quality 90) and their JSON."""
    images_dir = root / "images"
    images_dir.mkdir()
    rng = np.random.default_rng(0)
    base = np.add.outer(np.arange(480), np.arange(640)).astype(np.float32) / 1120 * 255
    images, annotations = [], []
    for i in range(count):
        image = (base[:, :, None] + rng.normal(0, 12, (480, 640, 3))).clip(0, 255).astype(np.uint8)
        cv2.imwrite(str(images_dir / f"{i:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append({"id": i, "file_name": f"{i:06d}.jpg", "width": 640, "height": 480})
        annotations += [{"id": 3 * i + k, "image_id": i, "category_id": 1 + k, "bbox": [10 + 50 * k, 20, 80, 60],
                         "area": 4800, "iscrowd": 0} for k in range(3)]
    annotations_file = root / "instances.json"
    annotations_file.write_text(json.dumps({"images": images, "annotations": annotations,
                                            "categories": [{"id": k, "name": f"c{k}"} for k in (1, 2, 3)]}))
    return images_dir, annotations_file


def best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def pil_verify_all(paths: list[str]) -> None:
    for path in paths:
        with Image.open(path) as image:
            image.verify()


def decode_all(paths: list[str]) -> None:
    for path in paths:
        cv2.imread(path, cv2.IMREAD_COLOR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 images instead of 2000")
    parser.add_argument("--images", type=int, default=None, help="number of images (default 2000)")
    args = parser.parse_args()
    count = args.images or (100 if args.quick else 2000)
    repeats = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        images_dir, annotations_file = write_dataset(Path(tmp), count)
        paths = sorted(str(p) for p in images_dir.iterdir())
        rows = [
            ("header scan (threads)", best_of(repeats, lambda: scan_image_files(paths))),
            ("header scan (1 thread)", best_of(repeats, lambda: scan_image_files(paths, workers=1))),
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the generated data must need no repair
            rows.append(("COCODetectionDataset(...) in all",
                         best_of(repeats, lambda: COCODetectionDataset(images_dir, annotations_file))))
        rows.append(("Pillow verify() of every file", best_of(1, lambda: pil_verify_all(paths))))
        rows.append(("OpenCV decode of every file", best_of(1, lambda: decode_all(paths))))
    print(f"{count} JPEGs 640x480, best of {repeats} (decodes: one run)")
    print(f"{'check':<36}{'seconds':>10}{'ms / 1000 images':>20}")
    for name, seconds in rows:
        print(f"{name:<36}{seconds:>10.3f}{seconds / count * 1e6:>20.1f}")


if __name__ == "__main__":
    main()
