"""Helpers of the command-line tests: tiny run settings and a real-format COCO dataset written on the fly."""

import json

import cv2
import numpy as np


def tiny_run_overrides(root, name: str = "run") -> list[str]:
    """Overrides that make any detection recipe train for one epoch of two 64x64 batches, in seconds."""
    return [
        f"ckpt_root_dir={root / 'checkpoints'}", f"experiment_name={name}", "dataset.input_size=[64,64]",
        "dataset.cache_images=false", "model.architecture=yolox_n", "model.pretrained_weights=null",
        "augmentation.mosaic_prob=0.5", "augmentation.mosaic_off_epoch=null",
        "train_dataloader.batch_size=4", "train_dataloader.num_workers=0",
        "valid_dataloader.batch_size=4", "valid_dataloader.num_workers=0",
        "visualization.freq=1", "visualization.num_images=2",
        "training_params.max_epochs=1", "training_params.max_train_batches=2", "training_params.lr_warmup_epochs=0",
        "training_params.lr_cooldown_epochs=0",
        "training_params.ema_params.decay=0.9",
    ]


def tiny_shapes_overrides(root, name: str = "run") -> list[str]:
    """The default recipe shrunk: 12 training and 6 validation images of the shapes dataset, generated under root."""
    return tiny_run_overrides(root, name) + [
        f"dataset.root={root / 'shapes'}",
        "dataset.generation={image_size: 64, num_train: 12, num_val: 6, min_object_size: 10, max_object_size: 30}",
    ]


# Not contiguous and not in order, as in real COCO files.
CATEGORIES = [{"id": 9, "name": "disc", "supercategory": "thing"}, {"id": 2, "name": "block", "supercategory": "thing"}]


def write_coco_split(folder, split: str, count: int, seed: int) -> tuple:
    """`count` 80x96 JPEGs with a disc and a block each, plus a crowd region on the first image and one image
    without annotations; COCO-format instances file with every field real COCO files have."""
    rng = np.random.default_rng(seed)
    images_dir = folder / "images" / split
    images_dir.mkdir(parents=True)
    images, annotations = [], []
    for i in range(count + 1):
        image = np.full((80, 96, 3), rng.integers(60, 200), np.uint8)
        name = f"{split}_{i:03d}.jpg"
        image_id = 1000 + i
        if i < count:  # the last image has no annotation at all
            x, y = (int(v) for v in rng.integers(5, 40, 2))
            cv2.circle(image, (x + 12, y + 12), 12, (0, 0, 255), -1)
            cv2.rectangle(image, (x + 40, y + 20), (x + 55, y + 35), (0, 255, 0), -1)
            boxes = [(9, [x, y, 25, 25]), (2, [x + 40, y + 20, 16, 16])]
            if i == 0:
                boxes.append((2, [0, 60, 40, 18]))
            for k, (category, bbox) in enumerate(boxes):
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                    "bbox": [float(v) for v in bbox], "area": float(bbox[2] * bbox[3]),
                                    "iscrowd": int(k == 2), "segmentation": []})
        cv2.imwrite(str(images_dir / name), image)
        images.append({"id": image_id, "file_name": name, "width": 96, "height": 80, "license": 1})
    annotations_file = folder / "annotations" / f"instances_{split}.json"
    annotations_file.parent.mkdir(exist_ok=True)
    annotations_file.write_text(json.dumps({"info": {"description": "test"}, "licenses": [], "images": images,
                                            "annotations": annotations, "categories": CATEGORIES}))
    return images_dir, annotations_file
