"""Generated detection data and the pycocotools oracle for the metrics tests."""

import contextlib
import io

import numpy as np
import pytest
import torch


def _coco_stats(ground_truth: dict, detections: list) -> np.ndarray:
    """pycocotools COCOeval bbox stats (12 numbers)."""
    coco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco.COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        dt = gt.loadRes(detections)
        evaluator = cocoeval.COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def _coco_dataset(
    seed: int,
    num_images=40,
    num_categories=5,
    objects=6.0,
    crowd=0.05,
    false_positives=10,
    miss=0.2,
    score_decimals=6,
    clustered=False,
    area_field=True,
):
    """A COCO ground truth and detections: jittered copies of objects (duplicates, wrong classes), missed
    objects, random false positives, crowd regions, images without objects, a category without objects."""
    rng = np.random.default_rng(seed)
    images = [{"id": 3 * i + 7, "width": 640, "height": 480} for i in range(num_images)]
    categories = [{"id": 2 * c + 1, "name": f"c{c}"} for c in range(num_categories)]
    cat_ids = [c["id"] for c in categories[:-1]]  # the last category never has an object
    annotations, detections = [], []
    for img in images:
        count = rng.poisson(objects) if rng.random() > 0.15 else 0
        centre = rng.uniform(60, 400, 2)
        for _ in range(count):
            w, h = np.exp(rng.uniform(np.log(3), np.log(250), 2))
            x, y = (centre + rng.normal(0, 30, 2)) if clustered else rng.uniform(-20, 600, 2)
            cat = int(rng.choice(cat_ids))
            is_crowd = int(rng.random() < crowd)
            ann = {
                "id": len(annotations) + 1,
                "image_id": img["id"],
                "category_id": cat,
                "bbox": [x, y, w, h],
                "iscrowd": is_crowd,
            }
            if area_field:
                ann["area"] = float(w * h * rng.uniform(0.5, 1.0))  # like a mask area: not the box area
            annotations.append(ann)
            if rng.random() < miss:
                continue
            for _ in range(rng.integers(1, 5)):
                j = rng.normal(0, 0.12, 4)
                det_cat = cat if rng.random() > 0.1 else int(rng.choice(cat_ids))
                box = [x + j[0] * w, y + j[1] * h, w * np.exp(j[2]), h * np.exp(j[3])]
                detections.append(
                    {
                        "image_id": img["id"],
                        "category_id": det_cat,
                        "bbox": box,
                        "score": float(np.round(rng.random(), score_decimals)),
                    }
                )
        for _ in range(rng.integers(0, false_positives + 1)):
            w, h = np.exp(rng.uniform(np.log(3), np.log(250), 2))
            x, y = (centre + rng.normal(0, 40, 2)) if clustered else rng.uniform(0, 600, 2)
            detections.append(
                {
                    "image_id": img["id"],
                    "category_id": categories[rng.integers(num_categories)]["id"],
                    "bbox": [x, y, w, h],
                    "score": float(np.round(rng.random(), score_decimals)),
                }
            )
    order = rng.permutation(len(detections))
    detections = [detections[i] for i in order]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def _batch(seed: int, batch_size=6, num_cls=4, size=320, ties=False, none_for_empty=True):
    """One batch: per-image predictions [n, 6] (x1, y1, x2, y2, score, class) or None, pixel targets [N, 6]
    (index, class, cx, cy, w, h) and crowd targets [M, 6]; class num_cls - 1 never has a target."""
    g = torch.Generator().manual_seed(seed)
    preds, targets, crowds = [], [], []
    for b in range(batch_size):
        n = 0 if b == 1 else int(torch.randint(0, 9, (1,), generator=g))
        centre = torch.rand(n, 2, generator=g) * size
        wh = torch.rand(n, 2, generator=g) * 90 + 4
        cls = torch.randint(0, num_cls - 1, (n, 1), generator=g).float()
        targets.append(torch.cat([torch.full((n, 1), float(b)), cls, centre, wh], 1))
        m = int(torch.randint(0, 2, (1,), generator=g))
        crowd_box = torch.cat([torch.rand(m, 2, generator=g) * size, torch.rand(m, 2, generator=g) * 150 + 20], 1)
        crowd_cls = torch.randint(0, num_cls, (m, 1), generator=g).float()
        crowds.append(torch.cat([torch.full((m, 1), float(b)), crowd_cls, crowd_box], 1))
        source = torch.repeat_interleave(torch.arange(n), torch.randint(0, 4, (n,), generator=g))
        jitter = torch.randn(len(source), 4, generator=g) * 0.1
        c = centre[source] + jitter[:, :2] * wh[source]
        s = wh[source] * torch.exp(jitter[:, 2:])
        pred_cls = cls[source, 0].clone()
        wrong = torch.rand(len(source), generator=g) < 0.1
        pred_cls[wrong] = torch.randint(0, num_cls, (int(wrong.sum()),), generator=g).float()
        k = int(torch.randint(0, 25, (1,), generator=g))
        fp_xy = torch.rand(k, 2, generator=g) * size
        fp_wh = torch.rand(k, 2, generator=g) * 100 + 2
        boxes = torch.cat([torch.cat([c - s / 2, c + s / 2], 1), torch.cat([fp_xy, fp_xy + fp_wh], 1)])
        pred_cls = torch.cat([pred_cls, torch.randint(0, num_cls, (k,), generator=g).float()])
        scores = torch.rand(len(boxes), generator=g)
        if ties:
            scores = (scores * 4).round() / 4
        p = torch.cat([boxes, scores[:, None], pred_cls[:, None]], 1)
        preds.append(None if (none_for_empty and len(p) == 0) else p)
    return preds, torch.cat(targets), torch.cat(crowds)


def _batches_to_coco(batches, num_cls: int):
    """The same data as a COCO ground truth (crowd targets as iscrowd) and COCO detections, images in order."""
    images, annotations, detections = [], [], []
    for preds, targets, crowds in batches:
        for b, p in enumerate(preds):
            image_id = len(images) + 1
            images.append({"id": image_id})
            for is_crowd, t in ((0, targets), (1, crowds)):
                for _, c, cx, cy, w, h in t[t[:, 0] == b].double().tolist():
                    annotations.append(
                        {
                            "id": len(annotations) + 1,
                            "image_id": image_id,
                            "category_id": int(c) + 1,
                            "bbox": [cx - w / 2, cy - h / 2, w, h],
                            "area": w * h,
                            "iscrowd": is_crowd,
                        }
                    )
            for x1, y1, x2, y2, score, c in [] if p is None else p.double().tolist():
                detections.append(
                    {
                        "image_id": image_id,
                        "category_id": int(c) + 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": score,
                    }
                )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c + 1} for c in range(num_cls)],
    }, detections


@pytest.fixture
def coco_stats():
    return _coco_stats


@pytest.fixture
def coco_dataset():
    return _coco_dataset


@pytest.fixture
def make_batch():
    return _batch


@pytest.fixture
def batches_to_coco():
    return _batches_to_coco
