"""mAP speed and agreement: trainwright (DetectionMetrics, coco_evaluate) vs pycocotools, faster-coco-eval and
torchmetrics' MeanAveragePrecision, on the same generated data in one process.

Data (seeded): 5,000 images of 640 x 480 (COCO val size), 80 classes, Poisson(7) objects per image (1% crowd),
box sides log-uniform in [6, 400] px; 90% of objects are found by 1-3 jittered detections, the rest of the
up to 100 detections per image are false positives. It is held as a training loop holds it: batches of 32 with
per-image predictions [n, 6] (x1, y1, x2, y2, score, class) and targets [N, 6] (index, class, cx, cy, w, h).

Each tool is timed from that data and includes the conversions it needs: the COCO-API tools (pycocotools,
faster-coco-eval, coco_evaluate) get the COCO ground-truth dict and result list (built once; the time to build
them is printed separately and is the same for all three); torchmetrics gets its per-image dicts (conversion
timed); DetectionMetrics gets the batches as they are. Each tool runs once (the full run takes a few minutes,
mostly pycocotools). Torch runs on one thread by default, like the peers (--threads to change it).

    python benchmarks/map.py            # 5,000 images
    python benchmarks/map.py --quick    # 300 images
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import time

import numpy as np
import torch

from trainwright.metrics import DetectionMetrics_050, DetectionMetrics_050_095, coco_evaluate

WIDTH, HEIGHT, NUM_CLASSES, BATCH = 640, 480, 80, 32


def generate(num_images: int, seed: int = 0):
    """Batches of (predictions per image, targets [N, 6], crowd targets [M, 6]), all in pixels."""
    rng = np.random.default_rng(seed)
    batches, current = [], ([], [], [])
    for image in range(num_images):
        n = rng.poisson(7)
        wh = np.exp(rng.uniform(np.log(6), np.log(400), (n, 2)))
        centre = rng.uniform(0, 1, (n, 2)) * [WIDTH, HEIGHT]
        cls = rng.integers(0, NUM_CLASSES, n)
        crowd = rng.random(n) < 0.01
        index = image % BATCH
        rows = np.column_stack([np.full(n, index), cls, centre, wh])
        found = (rng.random(n) < 0.9) & ~crowd
        copies = np.where(found, rng.integers(1, 4, n), 0)
        src = np.repeat(np.arange(n), copies)
        jitter = rng.normal(0, 0.08, (len(src), 4))
        c = centre[src] + jitter[:, :2] * wh[src]
        s = wh[src] * np.exp(jitter[:, 2:])
        det_cls = np.where(rng.random(len(src)) < 0.05, rng.integers(0, NUM_CLASSES, len(src)), cls[src])
        det_score = rng.uniform(0.3, 1.0, len(src))
        num_fp = max(0, min(100 - len(src), int(rng.integers(10, 90))))
        fp_wh = np.exp(rng.uniform(np.log(6), np.log(300), (num_fp, 2)))
        fp_xy = rng.uniform(0, 1, (num_fp, 2)) * [WIDTH, HEIGHT]
        boxes = np.concatenate([np.column_stack([c - s / 2, c + s / 2]), np.column_stack([fp_xy, fp_xy + fp_wh])])
        scores = np.concatenate([det_score, rng.uniform(0.001, 0.7, num_fp)]).round(4)
        classes = np.concatenate([det_cls, rng.integers(0, NUM_CLASSES, num_fp)])
        order = np.argsort(-scores, kind="stable")[:100]
        pred = np.column_stack([boxes, scores, classes])[order]
        current[0].append(torch.tensor(pred, dtype=torch.float32))
        current[1].append(torch.tensor(rows[~crowd], dtype=torch.float32))
        current[2].append(torch.tensor(rows[crowd], dtype=torch.float32))
        if index == BATCH - 1 or image == num_images - 1:
            batches.append((current[0], torch.cat(current[1]), torch.cat(current[2])))
            current = ([], [], [])
    return batches


def to_coco(batches):
    """COCO ground-truth dict and result list of the batches (image ids 1.., category ids 1..)."""
    images, annotations, results = [], [], []
    for preds, targets, crowds in batches:
        base = len(images)
        images.extend({"id": base + i + 1, "width": WIDTH, "height": HEIGHT} for i in range(len(preds)))
        for is_crowd, t in ((0, targets), (1, crowds)):
            for idx, c, cx, cy, w, h in t.double().tolist():
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": base + int(idx) + 1,
                        "category_id": int(c) + 1,
                        "bbox": [cx - w / 2, cy - h / 2, w, h],
                        "area": w * h,
                        "iscrowd": is_crowd,
                    }
                )
        for i, pred in enumerate(preds):
            for x1, y1, x2, y2, score, c in pred.double().tolist():
                results.append(
                    {
                        "image_id": base + i + 1,
                        "category_id": int(c) + 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": score,
                    }
                )
    categories = [{"id": c + 1, "name": str(c)} for c in range(NUM_CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _fresh(gt, results):
    """Per-tool copies (the COCO APIs add fields to the dicts they are given)."""
    return {**gt, "annotations": [dict(a) for a in gt["annotations"]]}, [dict(r) for r in results]


def run_pycocotools(gt, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[0], evaluator.stats[1]


def run_faster_coco_eval(gt, results):
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt)
        evaluator = COCOeval_faster(coco, coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[0], evaluator.stats[1]


def run_torchmetrics(batches):
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", backend="faster_coco_eval")
    for preds, targets, crowds in batches:
        p = [{"boxes": x[:, :4], "scores": x[:, 4], "labels": x[:, 5].long()} for x in preds]
        t = []
        for i in range(len(preds)):
            rows = torch.cat([targets[targets[:, 0] == i], crowds[crowds[:, 0] == i]])
            boxes = torch.cat([rows[:, 2:4] - rows[:, 4:6] / 2, rows[:, 2:4] + rows[:, 4:6] / 2], 1)
            crowd = torch.arange(len(rows)) >= int((targets[:, 0] == i).sum())
            t.append(
                {"boxes": boxes, "labels": rows[:, 1].long(), "iscrowd": crowd.long(), "area": rows[:, 4] * rows[:, 5]}
            )
        metric.update(p, t)
    with contextlib.redirect_stdout(io.StringIO()):
        result = metric.compute()
    return float(result["map"]), float(result["map_50"])


def run_detection_metrics(batches):
    full = DetectionMetrics_050_095(NUM_CLASSES, normalize_targets=True)
    half = DetectionMetrics_050(NUM_CLASSES, normalize_targets=True)
    for preds, targets, crowds in batches:
        full.update(preds, targets, crowd_targets=crowds)
        half.update(preds, targets, crowd_targets=crowds)
    return float(full.compute()["mAP@0.50:0.95"]), float(half.compute()["mAP@0.50"])


def run_coco_evaluate(gt, results):
    stats = coco_evaluate(gt, results)
    return stats["AP"], stats["AP50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 images instead of 5,000")
    parser.add_argument("--images", type=int, default=None, help="number of images (overrides --quick)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the peers run on one core)")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    num_images = args.images or (300 if args.quick else 5000)
    batches = generate(num_images)
    start = time.perf_counter()
    gt, results = to_coco(batches)
    build = time.perf_counter() - start
    num_gt = sum(len(t) + len(c) for _, t, c in batches)
    print(
        f"{num_images} images, {NUM_CLASSES} classes, {num_gt} ground truths, {len(results)} detections; "
        f"building the COCO dicts took {build:.2f} s (not counted below), torch threads {torch.get_num_threads()}"
    )
    tools = {
        "pycocotools": (run_pycocotools, lambda: _fresh(gt, results)),
        "faster-coco-eval": (run_faster_coco_eval, lambda: _fresh(gt, results)),
        "torchmetrics MeanAveragePrecision (faster_coco_eval backend)": (run_torchmetrics, lambda: (batches,)),
        "trainwright DetectionMetrics (0.5:0.95 and 0.5, batch by batch)": (run_detection_metrics, lambda: (batches,)),
        "trainwright coco_evaluate (all 12 stats)": (run_coco_evaluate, lambda: _fresh(gt, results)),
    }
    rows = {}
    for name, (fn, make_args) in tools.items():
        args_ = make_args()  # the per-tool copies are made before the clock starts
        gc.collect()
        start = time.perf_counter()
        ap, ap50 = fn(*args_)
        rows[name] = (ap, ap50, time.perf_counter() - start)
        del args_
    ref_ap, ref_ap50, ref_time = rows["pycocotools"]
    print("\n| tool | AP | AP50 | AP diff vs pycocotools | AP50 diff | time (s) | speed-up vs pycocotools |")
    print("|---|---|---|---|---|---|---|")
    for name, (ap, ap50, seconds) in rows.items():
        print(
            f"| {name} | {ap:.4f} | {ap50:.4f} | {ap - ref_ap:+.1e} | {ap50 - ref_ap50:+.1e} | {seconds:.2f} | "
            f"{ref_time / seconds:.1f}x |"
        )


if __name__ == "__main__":
    main()
