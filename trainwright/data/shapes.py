"""`shapes`: a synthetic detection dataset of coloured geometric shapes, generated in COCO format on first use.

Each image has a textured background and 1..max_objects shapes of several classes, each class with
its own (jittered) colour; later shapes may partly cover earlier ones. Generation is deterministic
given the configuration (seed included), takes a few seconds, and writes into
``<cache>/shapes/<config hash>/`` atomically (a temp folder renamed into place), so an interrupted
run never leaves a half-written dataset; a new configuration gets its own folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trainwright.data.coco import COCODetectionDataset
from trainwright.data.transforms.base import DetectionTransform

GENERATOR_VERSION = 1
SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star")
# OpenCV hue (0..179) of each class: red, green, blue, yellow, magenta.
CLASS_HUES = (0, 60, 120, 30, 150)


def default_cache_dir() -> Path:
    """$TRAINWRIGHT_CACHE_DIR, else $XDG_CACHE_HOME/trainwright, else ~/.cache/trainwright."""
    if os.environ.get("TRAINWRIGHT_CACHE_DIR"):
        return Path(os.environ["TRAINWRIGHT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trainwright"


@dataclass(frozen=True)
class ShapesConfig:
    """What the generated dataset looks like. Any change gives a new cache folder."""

    image_size: int = 160
    num_train: int = 1200
    num_val: int = 200
    min_objects: int = 1
    max_objects: int = 6
    min_object_size: int = 20
    max_object_size: int = 64
    max_occlusion: float = 0.4  # the largest fraction of the smaller box of two shapes that the other may cover
    color_noise: float = 0.1  # probability that a shape takes a random colour instead of its class colour
    generation_seed: int = 0

    def __post_init__(self):
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {self.image_size}")
        if min(self.num_train, self.num_val) < 1:
            raise ValueError(f"num_train and num_val must be >= 1, got {self.num_train} and {self.num_val}")
        if not 0 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 0 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if not 4 <= self.min_object_size <= self.max_object_size <= self.image_size:
            raise ValueError(f"need 4 <= min_object_size <= max_object_size <= image_size, got "
                             f"{self.min_object_size}, {self.max_object_size}, {self.image_size}")

    @property
    def key(self) -> str:
        """Short hash naming the cache folder of this configuration."""
        text = json.dumps({"version": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """uint8 [size, size, 3] RGB: a muted base colour, smooth colour blotches, stripes and pixel noise."""
    base = rng.uniform(50, 200) + rng.uniform(-25, 25, 3)
    blotches = cv2.resize(rng.normal(0, 22, (4, 4, 3)).astype(np.float32), (size, size),
                          interpolation=cv2.INTER_CUBIC)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
    axis = np.arange(size, dtype=np.float32) * np.float32(2 * np.pi / period)
    phase = axis[None, :] * np.float32(np.cos(angle)) + axis[:, None] * np.float32(np.sin(angle))
    stripes = np.float32(rng.uniform(0, 12)) * np.sin(phase)
    noise = rng.standard_normal((size, size, 3), dtype=np.float32) * np.float32(5)
    return np.clip(base.astype(np.float32) + blotches + stripes[..., None] + noise, 0, 255).astype(np.uint8)


def shape_color(rng: np.random.Generator, class_index: int, color_noise: float) -> tuple[int, int, int]:
    """A saturated RGB colour near the class hue (or any hue with probability color_noise)."""
    hue = rng.integers(0, 180) if rng.random() < color_noise else (CLASS_HUES[class_index] + rng.integers(-6, 7)) % 180
    hsv = np.array([[[hue, rng.integers(170, 256), rng.integers(170, 256)]]], dtype=np.uint8)
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def shape_polygon(name: str, x1: int, y1: int, x2: int, y2: int) -> list[np.ndarray]:
    """Integer polygons [k, 2] whose union is shape ``name`` filling the box (x1, y1)-(x2, y2) inclusive."""
    w, h = x2 - x1, y2 - y1
    if name == "square":
        return [np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])]
    if name == "triangle":
        return [np.array([[x1 + w // 2, y1], [x2, y2], [x1, y2]])]
    if name == "cross":
        tw, th = max(w // 3, 1), max(h // 3, 1)
        cx, cy = x1 + (w - tw) // 2, y1 + (h - th) // 2
        return [np.array([[cx, y1], [cx + tw, y1], [cx + tw, y2], [cx, y2]]),
                np.array([[x1, cy], [x2, cy], [x2, cy + th], [x1, cy + th]])]
    if name == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([np.cos(angles) * radius, np.sin(angles) * radius], 1)
        pts = (pts - pts.min(0)) / (pts.max(0) - pts.min(0))  # the star's own bounding box -> [0, 1]^2
        return [np.round(pts * [w, h] + [x1, y1]).astype(np.int64)]
    raise ValueError(f"unknown shape {name!r}; choose from {SHAPE_CLASSES}")


def draw_shape(image: np.ndarray, name: str, box, color) -> np.ndarray:
    """Fill shape ``name`` into ``image`` (in place) within box (x1, y1, x2, y2), inclusive; returns its extent [4]."""
    x1, y1, x2, y2 = (int(v) for v in box)
    if name == "circle":
        (cx, cy), (ax, ay) = ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2, (y2 - y1) // 2)
        cv2.ellipse(image, (cx, cy), (ax, ay), 0, 0, 360, color, thickness=-1)
        return np.array([cx - ax, cy - ay, cx + ax, cy + ay])
    for poly in shape_polygon(name, x1, y1, x2, y2):
        cv2.fillPoly(image, [poly.astype(np.int32)], color)
    return np.array([x1, y1, x2, y2])


def _largest_overlap(boxes: np.ndarray, box: np.ndarray) -> float:
    """The largest fraction of either box of a pair (``box`` [4] with one of ``boxes`` [n, 4]) that the other covers.

    Boxes are inclusive pixel boxes (x1, y1, x2, y2).
    """
    iw = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]) + 1, 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]) + 1, 0, None)
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    return float((iw * ih / np.minimum(areas, area)).max())


def render_image(rng: np.random.Generator, config: ShapesConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image: (uint8 [S, S, 3] RGB, inclusive pixel boxes int [n, 4] as the drawn extents, classes [n])."""
    size = config.image_size
    image = textured_background(rng, size)
    boxes, classes = np.zeros((0, 4), np.int64), []
    for _ in range(rng.integers(config.min_objects, config.max_objects + 1)):
        for _attempt in range(20):
            w = int(rng.integers(config.min_object_size, config.max_object_size + 1))
            h = int(np.clip(round(w * rng.uniform(0.8, 1.25)), config.min_object_size, config.max_object_size))
            x1, y1 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            box = np.array([x1, y1, x1 + w - 1, y1 + h - 1])
            if not len(boxes) or _largest_overlap(boxes, box) <= config.max_occlusion:
                break
        else:
            continue
        cls = int(rng.integers(0, len(SHAPE_CLASSES)))
        box = draw_shape(image, SHAPE_CLASSES[cls], box, shape_color(rng, cls, config.color_noise))
        boxes, classes = np.concatenate([boxes, box[None]]), [*classes, cls]
    return image, boxes, np.array(classes, dtype=np.int64)


def _write_split(folder: Path, split: str, count: int, config: ShapesConfig, split_id: int) -> None:
    """Render ``count`` images into folder/images/<split>/ and folder/annotations/instances_<split>.json."""
    image_dir = folder / "images" / split
    image_dir.mkdir(parents=True)
    images, annotations = [], []
    for i in range(count):
        rng = np.random.default_rng([config.generation_seed, split_id, i])
        image, boxes, classes = render_image(rng, config)
        name = f"{i:06d}.png"
        if not cv2.imwrite(str(image_dir / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {image_dir / name}")
        images.append({"id": i + 1, "file_name": name, "width": config.image_size, "height": config.image_size})
        wh = boxes[:, 2:] - boxes[:, :2] + 1
        for (x1, y1, _, _), (w, h), cls in zip(boxes.tolist(), wh.tolist(), classes.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cls + 1,
                                "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0})
    categories = [{"id": k + 1, "name": n, "supercategory": "shape"} for k, n in enumerate(SHAPE_CLASSES)]
    with open(folder / "annotations" / f"instances_{split}.json", "w", encoding="utf-8") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)


def generate_shapes_dataset(config: ShapesConfig | None = None, root=None) -> Path:
    """The folder of the dataset for ``config`` under root (default: default_cache_dir()/shapes), made if missing.

    Layout: images/{train,val}/*.png, annotations/instances_{train,val}.json, manifest.json.
    """
    config = config or ShapesConfig()
    parent = Path(root) if root is not None else default_cache_dir() / "shapes"
    folder = parent / f"{config.key}"
    if (folder / "manifest.json").is_file():
        return folder
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{config.key}-", dir=parent))
    try:
        (tmp / "annotations").mkdir()
        _write_split(tmp, "train", config.num_train, config, split_id=0)
        _write_split(tmp, "val", config.num_val, config, split_id=1)
        manifest = {"generator_version": GENERATOR_VERSION, "classes": list(SHAPE_CLASSES),
                    "config": dataclasses.asdict(config)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        tmp.chmod(0o777 & ~_current_umask())  # mkdtemp makes an owner-only folder; give what mkdir would
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "manifest.json").is_file():  # not a concurrent writer that finished first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


class ShapesDetectionDataset(COCODetectionDataset):
    """The ``shapes`` dataset (split "train" or "val"), generated into the cache on first use.

    root: folder holding the generated datasets (default: default_cache_dir()/shapes).
    input_size: (H, W) the images are fitted to; default (image_size, image_size).
    generation: ShapesConfig fields (image_size=160, num_train=1200, num_val=200, min_objects=1,
    max_objects=6, min_object_size=20, max_object_size=64, max_occlusion=0.4, color_noise=0.1,
    generation_seed=0). Other arguments as COCODetectionDataset, except that cache_images defaults to
    True: the images are small (about 90 MB for the default train split) and decoding PNGs would
    otherwise dominate the cost of a mosaic sample (five images each).
    """

    def __init__(self, split: str = "train", root=None, input_size=None,
                 transforms: list[DetectionTransform] | None = None, with_crowd: bool = False,
                 cache_images: bool = True, seed: int = 0, **generation):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        known = {f.name for f in dataclasses.fields(ShapesConfig)}
        unknown = sorted(set(generation) - known)
        if unknown:
            raise TypeError(f"unknown shapes dataset parameters {unknown}; known: {sorted(known)}")
        self.config = ShapesConfig(**generation)
        self.split = split
        folder = generate_shapes_dataset(self.config, root)
        size = input_size if input_size is not None else (self.config.image_size, self.config.image_size)
        super().__init__(folder / "images" / split, folder / "annotations" / f"instances_{split}.json",
                         input_size=size, transforms=transforms, with_crowd=with_crowd, cache_images=cache_images,
                         seed=seed)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
