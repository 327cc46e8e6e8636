"""`trainwright demo`: post-process a synthetic batch of YOLOX-style output and compare with torchvision."""

from __future__ import annotations

import time

import torch
import torchvision
from torch import Tensor

from trainwright.models.detection.nms_threads import nms_threads
from trainwright.ops.nms import non_max_suppression


def anchor_grid(image_size: int = 640, strides: tuple[int, ...] = (8, 16, 32)) -> Tensor:
    """Anchor centres and strides of a YOLOX head: [N, 3] = (x, y, stride), N = 8400 at 640 px."""
    rows = []
    for stride in strides:
        cells = torch.arange(image_size // stride, dtype=torch.float32)
        ys, xs = torch.meshgrid(cells, cells, indexing="ij")
        centres = torch.stack([xs.flatten(), ys.flatten()], dim=1) * stride + stride / 2
        rows.append(torch.cat([centres, torch.full((centres.shape[0], 1), float(stride))], dim=1))
    return torch.cat(rows)


def synthetic_yolox_output(
    batch_size: int = 8,
    num_classes: int = 80,
    objects_per_image: int = 30,
    image_size: int = 640,
    seed: int = 0,
) -> Tensor:
    """Decoded YOLOX-like output [B, N, 5 + C] (cx, cy, w, h, sigmoid(obj), sigmoid(cls)...) for random scenes.

    Each image has ``objects_per_image`` objects. Anchors whose centre lies inside an object predict a
    jittered copy of its box, with an objectness that falls from the object's centre outwards, a high score
    for its class and low scores for the others; the remaining anchors predict small background boxes with
    low objectness. This mimics the score distribution of a trained detector.
    """
    gen = torch.Generator().manual_seed(seed)
    anchors = anchor_grid(image_size)
    n = anchors.shape[0]

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    sizes = torch.exp(torch.empty(batch_size, objects_per_image, 2).uniform_(2.8, 5.6, generator=gen))
    centres = sizes / 2 + rand(batch_size, objects_per_image, 2) * (image_size - sizes)
    objects = torch.cat([centres, sizes], dim=2)  # cxcywh
    labels = torch.randint(num_classes, (batch_size, objects_per_image), generator=gen)

    # An anchor sees an object when its centre is inside the box and within 2.5 strides of the box centre;
    # its owner is the smallest such object.
    delta = (anchors[None, :, None, :2] - centres[:, None, :, :]).abs()  # [B, N, K, 2]
    stride = anchors[:, 2]
    near = delta / (2.5 * stride[None, :, None, None])
    sees = ((delta < sizes[:, None, :, :] / 2) & (near < 1)).all(dim=3)
    area = (sizes[..., 0] * sizes[..., 1])[:, None, :].expand(-1, n, -1)
    owner = torch.where(sees, area, torch.full_like(area, float("inf"))).argmin(dim=2)
    positive = sees.any(dim=2)
    owner_box = objects.gather(1, owner[..., None].expand(-1, -1, 4))
    distance = near.gather(2, owner[..., None, None].expand(-1, -1, 1, 2)).squeeze(2).norm(dim=2)

    positive_box = owner_box * (1 + 0.08 * randn(batch_size, n, 4))
    background_box = torch.cat(
        [anchors[None, :, :2] + stride[None, :, None] * randn(batch_size, n, 2) * 0.5,
         stride[None, :, None] * torch.exp(1 + 0.5 * randn(batch_size, n, 2))], dim=2)
    boxes = torch.where(positive[..., None], positive_box, background_box)

    obj_logit = torch.where(positive, 3 - 3 * distance + randn(batch_size, n), -9 + 2 * randn(batch_size, n))
    cls_logit = torch.where(positive[..., None], -8 + 1.5 * randn(batch_size, n, num_classes),
                            -6 + 1.5 * randn(batch_size, n, num_classes))
    true_class = labels.gather(1, owner)
    true_logit = torch.where(positive, 1.5 + randn(batch_size, n), cls_logit.gather(2, true_class[..., None])[..., 0])
    cls_logit.scatter_(2, true_class[..., None], true_logit[..., None])
    return torch.cat([boxes, obj_logit.sigmoid()[..., None], cls_logit.sigmoid()], dim=2)


def torchvision_pipeline(raw: Tensor, conf_thres: float, iou_thres: float) -> list[Tensor | None]:
    """The plain reference pipeline: decode, confidence filter, per-image torchvision batched_nms."""
    results: list[Tensor | None] = []
    for image in raw:
        rows = image[image[:, 4] > conf_thres]
        scores = rows[:, 5:] * rows[:, 4:5]
        box_idx, classes = (scores > conf_thres).nonzero(as_tuple=True)
        boxes = torchvision.ops.box_convert(rows[box_idx, :4], "cxcywh", "xyxy")
        kept_scores = scores[box_idx, classes]
        keep = torchvision.ops.batched_nms(boxes, kept_scores, classes, iou_thres)
        out = torch.cat([boxes[keep], kept_scores[keep, None], classes[keep, None].float()], dim=1)
        results.append(out if out.shape[0] else None)
    return results


def same_detections(ours: list[Tensor | None], theirs: list[Tensor | None]) -> bool:
    """True when both lists keep the same rows per image (order-insensitive, None == empty)."""
    if len(ours) != len(theirs):
        return False
    for a, b in zip(ours, theirs):
        a = torch.zeros(0, 6) if a is None else a
        b = torch.zeros(0, 6) if b is None else b
        if a.shape != b.shape:
            return False
        if a.shape[0] and not torch.equal(_sorted_rows(a), _sorted_rows(b)):
            return False
    return True


def _sorted_rows(rows: Tensor) -> Tensor:
    for column in reversed(range(rows.shape[1])):
        rows = rows[rows[:, column].argsort(stable=True)]
    return rows


def _best_time(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_demo() -> int:
    """Print a few kept boxes of a synthetic batch and the time of our NMS next to torchvision's pipeline."""
    torch.set_flush_denormal(True)
    conf, iou = 0.01, 0.6
    raw = synthetic_yolox_output(batch_size=8)
    print(f"synthetic YOLOX output: {tuple(raw.shape)} (batch, anchors, 5 + classes), 30 objects per image")
    ours = non_max_suppression(raw, conf_thres=conf, iou_thres=iou, with_confidence=True, executor=nms_threads())
    theirs = torchvision_pipeline(raw, conf, iou)
    first = ours[0]
    print(f"image 0: {0 if first is None else first.shape[0]} boxes kept; the 5 best (x1, y1, x2, y2, score, class):")
    for row in [] if first is None else first[:5].tolist():
        print("  " + "  ".join(f"{v:8.2f}" for v in row[:4]) + f"  {row[4]:.3f}  {int(row[5])}")
    identical = same_detections(ours, theirs)
    print(f"kept boxes identical to torchvision batched_nms: {identical}")
    t_ours = _best_time(lambda: non_max_suppression(raw, conf_thres=conf, iou_thres=iou, with_confidence=True,
                                                    executor=nms_threads()))
    t_theirs = _best_time(lambda: torchvision_pipeline(raw, conf, iou))
    print(f"conf {conf}: trainwright {t_ours * 1e3:.1f} ms, torchvision pipeline {t_theirs * 1e3:.1f} ms, "
          f"ratio {t_ours / t_theirs:.2f}")
    return 0 if identical else 1
