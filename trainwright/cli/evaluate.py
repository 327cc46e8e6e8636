"""`trainwright evaluate CHECKPOINT [--images DIR --annotations FILE] [--json]`: COCO summary of a checkpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import torch
from torch.utils.data import Subset

from trainwright.cli.evaluation_outputs import (
    check_not_inputs,
    check_output_paths,
    detections_json,
    evaluation_files,
    per_class_table,
    plot_paths,
    write_files,
)
from trainwright.cli.inference import CheckpointModel, checkpoint_postprocess, load_checkpoint_model, to_original_pixels
from trainwright.data import COCODetectionDataset, CrowdDetectionCollateFN, build_detection_loader
from trainwright.data.transforms import detection_val_transforms
from trainwright.metrics.coco import COCO_STAT_NAMES, coco_evaluation
from trainwright.metrics.per_class import per_class_metrics

__all__ = ["run_evaluate", "predict_coco_detections", "format_summary"]

_STAT_LINES = (
    ("Average Precision", "AP", "0.50:0.95", "all", 100), ("Average Precision", "AP", "0.50", "all", 100),
    ("Average Precision", "AP", "0.75", "all", 100), ("Average Precision", "AP", "0.50:0.95", "small", 100),
    ("Average Precision", "AP", "0.50:0.95", "medium", 100), ("Average Precision", "AP", "0.50:0.95", "large", 100),
    ("Average Recall", "AR", "0.50:0.95", "all", 1), ("Average Recall", "AR", "0.50:0.95", "all", 10),
    ("Average Recall", "AR", "0.50:0.95", "all", 100), ("Average Recall", "AR", "0.50:0.95", "small", 100),
    ("Average Recall", "AR", "0.50:0.95", "medium", 100), ("Average Recall", "AR", "0.50:0.95", "large", 100),
)


def _dataset_paths(cm: CheckpointModel, images: str | None, annotations: str | None) -> tuple[str, str]:
    if (images is None) != (annotations is None):
        raise ValueError("--images and --annotations go together: give both, or neither to use the validation "
                         "split the checkpoint was trained on")
    if images is None:
        if not cm.valid_data:
            raise ValueError("the checkpoint does not record its validation data; pass --images DIR "
                             "--annotations FILE")
        images, annotations = cm.valid_data["images_dir"], cm.valid_data["annotations_file"]
    if not os.path.isdir(images):
        raise FileNotFoundError(f"images folder not found: {images}")
    if not os.path.isfile(annotations):
        raise FileNotFoundError(f"annotations file not found: {annotations}")
    return images, annotations


@torch.no_grad()
def predict_coco_detections(cm: CheckpointModel, dataset: COCODetectionDataset, batch_size: int = 16,
                            indices: Sequence[int] | None = None) -> list[dict]:
    """COCO result dicts (image_id, category_id, bbox xywh in original pixels, score) for every dataset image
    (those at `indices` when given), after the checkpoint's NMS (the one behind its validation mAP)."""
    post = checkpoint_postprocess(cm)
    order = list(range(len(dataset))) if indices is None else list(indices)
    collate = CrowdDetectionCollateFN() if getattr(dataset, "with_crowd", False) else None  # a validation split's
    loader = build_detection_loader(Subset(dataset, order), batch_size, num_workers=0, device=cm.device,
                                    collate_fn=collate)
    category_ids = torch.tensor(cm.category_ids)
    detections, index = [], 0
    for batch in loader:
        for rows in post(cm.model(batch[0].to(cm.device)), device="cpu"):
            record = dataset.records[order[index]]
            index += 1
            if rows is None:
                continue
            boxes = to_original_pixels(rows[:, :4], record.height, record.width, cm.input_size)
            xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1)
            categories = category_ids[rows[:, 5].long()]
            detections += [{"image_id": record.image_id, "category_id": c, "bbox": b, "score": s}
                           for b, s, c in zip(xywh.tolist(), rows[:, 4].tolist(), categories.tolist())]
    return detections


def format_summary(stats: dict[str, float]) -> str:
    """The twelve numbers laid out like pycocotools' COCOeval.summarize()."""
    lines = []
    for (title, short, iou, area, max_dets), name in zip(_STAT_LINES, COCO_STAT_NAMES):
        lines.append(f" {title:<18} ({short}) @[ IoU={iou:<9} | area={area:>6} | maxDets={max_dets:>3} ] = "
                     f"{stats[name]:.3f}")
    return "\n".join(lines)


def run_evaluate(checkpoint: str, images: str | None = None, annotations: str | None = None, as_json: bool = False,
                 batch_size: int = 16, device=None, save_json: str | None = None, output: str | None = None,
                 plots: bool = True) -> int:
    """Print the COCO summary and per-class table of `checkpoint` on a COCO-format dataset (default: its
    validation split); write the plots to `output` (default: beside the checkpoint) and the detections to
    `save_json`."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    check_output_paths(output, save_json)
    cm = load_checkpoint_model(checkpoint, device)
    images, annotations = _dataset_paths(cm, images, annotations)
    check_not_inputs([("--save-json", save_json)], [checkpoint, annotations])
    dataset = COCODetectionDataset(images, annotations, input_size=cm.input_size,
                                   transforms=detection_val_transforms(cm.input_size))
    if list(dataset.category_ids) != list(cm.category_ids):
        raise ValueError(f"{annotations} has category ids {dataset.category_ids}, but the checkpoint was trained on "
                         f"{cm.category_ids} ({cm.class_names})")
    detections = predict_coco_detections(cm, dataset, batch_size)
    evaluation = coco_evaluation(annotations, detections)
    stats, per_class = evaluation.summary(), per_class_metrics(evaluation)
    files = {save_json: detections_json(detections)} if save_json is not None else {}
    paths = plot_paths(output if output is not None else os.path.dirname(os.path.abspath(checkpoint)), checkpoint)
    if plots:
        files.update(evaluation_files(evaluation, per_class, paths))
    write_files(files)
    if as_json:
        print(json.dumps({**stats, "checkpoint": checkpoint, "images": images, "annotations": annotations,
                          "num_images": len(dataset), "best_confidence": per_class.best_confidence,
                          "per_class": per_class.rows(), "files": list(files)}, indent=2))
    else:
        print(f"COCO bbox evaluation of {checkpoint} on {len(dataset)} images ({annotations})")
        print(format_summary(stats))
        print()
        print(per_class_table(per_class))
        for path in files:
            print(f"wrote {path}")
    return 0
