"""NMS speed: trainwright's non_max_suppression / matrix_non_max_suppression vs a torchvision batched_nms pipeline.

Input: decoded YOLOX-style output of a batch of 8 images at 640x640 (8400 anchors, 80 classes, ~30 objects
per image, see trainwright.cli.demo.synthetic_yolox_output). For each confidence threshold the same tensor
goes through every pipeline in this one process; the kept boxes of our greedy NMS are checked against the
torchvision pipeline (they must be identical). Ours runs the images of a batch on the shared NMS thread pool
(`nms_threads()`, as YoloXPostPredictionCallback does). Times are the best of interleaved repeats.

    python benchmarks/nms.py            # full run (about a minute)
    python benchmarks/nms.py --quick    # tiny run (2 images, 2 repeats)
    python benchmarks/nms.py --threads 1  # single-core work of each side
"""

from __future__ import annotations

import argparse
import sys

import torch
import torchvision
from timing import best_interleaved

from trainwright.cli.demo import same_detections, synthetic_yolox_output, torchvision_pipeline
from trainwright.models.detection.nms_threads import nms_threads
from trainwright.ops.nms import matrix_non_max_suppression, non_max_suppression

IOU = 0.6


def torchvision_multi_label(raw: torch.Tensor, conf: float) -> list[torch.Tensor | None]:
    """Decode, confidence filter (every class above conf), per-image torchvision batched_nms."""
    return torchvision_pipeline(raw, conf, IOU)


def torchvision_single_label(raw: torch.Tensor, conf: float) -> list[torch.Tensor | None]:
    """Decode, best class per box above conf, per-image torchvision batched_nms."""
    results: list[torch.Tensor | None] = []
    for image in raw:
        rows = image[image[:, 4] > conf]
        scores, classes = (rows[:, 5:] * rows[:, 4:5]).max(dim=1)
        good = scores > conf
        boxes = torchvision.ops.box_convert(rows[good, :4], "cxcywh", "xyxy")
        scores, classes = scores[good], classes[good]
        keep = torchvision.ops.batched_nms(boxes, scores, classes, IOU)
        out = torch.cat([boxes[keep], scores[keep, None], classes[keep, None].float()], dim=1)
        results.append(out if out.shape[0] else None)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 images, 2 repeats")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both sides (1 also runs our images one after the other)")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    batch, repeats = (2, 2) if args.quick else (8, 7)
    raw = synthetic_yolox_output(batch_size=batch, num_classes=80, objects_per_image=30, image_size=640)
    print(f"input {tuple(raw.shape)}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{torch.get_num_threads()} threads, best of {repeats}")
    header = f"{'conf':>6} {'candidates/img':>14} {'variant':<13} {'torchvision ms':>14} {'ours ms':>9} {'ratio':>6} same"
    print(header)
    print("-" * len(header))
    all_same = True
    pool = nms_threads()  # what YoloXPostPredictionCallback uses: one thread per torch thread (None for one)
    for conf in (0.001, 0.01, 0.1):
        scores = raw[..., 5:] * raw[..., 4:5]
        candidates = ((scores > conf) & (raw[..., 4:5] > conf)).sum().item() / batch
        fns = {
            "tv_multi": lambda conf=conf: torchvision_multi_label(raw, conf),
            "ours_multi": lambda conf=conf: non_max_suppression(raw, conf, IOU, True, True, executor=pool),
            "tv_single": lambda conf=conf: torchvision_single_label(raw, conf),
            "ours_single": lambda conf=conf: non_max_suppression(raw, conf, IOU, False, True, executor=pool),
            "ours_matrix": lambda conf=conf: matrix_non_max_suppression(raw, conf),
        }
        times = best_interleaved(fns, repeats)
        same_multi = same_detections(fns["ours_multi"](), fns["tv_multi"]())
        same_single = same_detections(fns["ours_single"](), fns["tv_single"]())
        all_same &= same_multi and same_single
        rows = [
            ("multi-label", times["tv_multi"], times["ours_multi"], same_multi),
            ("single-label", times["tv_single"], times["ours_single"], same_single),
            ("matrix", times["tv_multi"], times["ours_matrix"], None),
        ]
        for variant, t_tv, t_ours, same in rows:
            flag = "n/a" if same is None else ("yes" if same else "NO")
            print(f"{conf:>6} {candidates:>14.0f} {variant:<13} {t_tv * 1e3:>14.1f} {t_ours * 1e3:>9.1f} "
                  f"{t_ours / t_tv:>6.2f} {flag}")
    print("matrix NMS is a different algorithm (soft decay, top-500 per image); it is timed against the "
          "multi-label pipeline and its boxes are not expected to match.")
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
