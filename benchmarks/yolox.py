"""YOLOX speed on CPU: inference forward and training step of YOLOX-N and -S, and the loss/assignment share.

For each model and input size a batch of 8 random images with 8 random boxes each goes through
  * an eval-mode forward (no grad),
  * a full training step: train-mode forward, YoloXDetectionLoss (SimOTA), backward, SGD step,
and the time spent in the loss and in the assignment inside it is reported as a share of the step.
The peer is a per-image SimOTA (a Python loop over images and over boxes, the layout of the original
YOLOX code), run on the very same predictions: its time is compared with the batched assignment and
its foreground masks are checked against ours. Times are the best of the repeats; the two assignments
are timed alone, in turns, on the predictions of the last training step.

    python benchmarks/yolox.py            # YOLOX-N and -S at 320 and 640 (a few minutes on 2 cores)
    python benchmarks/yolox.py --quick    # YOLOX-N at 320, batch 2, one repeat

When LibreYOLO is installed (`pip install --no-deps libreyolo`: only its torch code is used), a second table
puts our training step next to LibreYOLO's YOLOX of the same size (its network and its loss, train mode,
official BatchNorm settings) on the same batch, timed in turns in one process. Each side's SGD (momentum 0.9,
Nesterov) is built by its own trainer's optimizer builder: ours is fused on CPU, LibreYOLO's is torch's default
there. The process runs with trainwright's CPU settings (denormals flushed, freed memory kept for reuse: see
trainwright.training.cpu_speed), which both sides share. Ours is timed twice: in the default layout and with
training_params.channels_last (trainwright.training.memory_layout).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from timing import best_interleaved, best_of, cpu_description

import trainwright.models.detection.yolox_loss as yolox_loss_module
from trainwright.models import get_model
from trainwright.models.detection.simota import DYNAMIC_K_CANDIDATES, OUTSIDE_PRIOR_COST, center_prior
from trainwright.models.detection.yolox_loss import YoloXDetectionLoss
from trainwright.training.cpu_speed import apply_cpu_speed_settings
from trainwright.training.memory_layout import use_channels_last
from trainwright.training.optim import build_optimizer

NUM_CLASSES, BOXES_PER_IMAGE = 80, 8


def synthetic_batch(batch: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [B, 3, size, size] in [0, 255] and targets [B * BOXES_PER_IMAGE, 6] inside the image."""
    images = torch.rand(batch, 3, size, size, generator=gen) * 255
    n = batch * BOXES_PER_IMAGE
    wh = torch.rand(n, 2, generator=gen) * (size / 2 - 8) + 8
    cxcy = wh / 2 + torch.rand(n, 2, generator=gen) * (size - wh)
    image_idx = torch.arange(batch).repeat_interleave(BOXES_PER_IMAGE)[:, None].float()
    classes = torch.randint(0, NUM_CLASSES, (n, 1), generator=gen).float()
    return images, torch.cat([image_idx, classes, cxcy, wh], 1)


def per_image_simota(boxes, scores, centers, strides, gt_boxes, gt_classes, gt_valid, radius=2.5):
    """Peer: SimOTA one image at a time, dynamic-k top-k one box at a time -> fg mask [B, A]."""
    fg = torch.zeros(boxes.shape[:2], dtype=torch.bool)
    for b in range(boxes.shape[0]):
        gt, cls = gt_boxes[b, gt_valid[b]], gt_classes[b, gt_valid[b]]
        if gt.shape[0] == 0:
            continue
        in_box, in_center = (m[0] for m in center_prior(centers, strides, gt[None], radius))
        cand = (in_box | in_center).any(0)
        cand_boxes, cand_scores = boxes[b, cand], scores[b, cand]
        xyxy = torchvision.ops.box_convert
        ious = torchvision.ops.box_iou(xyxy(gt, "cxcywh", "xyxy"), xyxy(cand_boxes, "cxcywh", "xyxy"))
        n, m = ious.shape
        one_hot = F.one_hot(cls, NUM_CLASSES).float()
        cls_cost = F.binary_cross_entropy(
            cand_scores[None].expand(n, -1, -1).clamp(1e-7, 1 - 1e-7), one_hot[:, None].expand(-1, m, -1),
            reduction="none",
        ).sum(-1)
        cost = cls_cost + 3 * -torch.log(ious + 1e-8) + OUTSIDE_PRIOR_COST * ~(in_box & in_center)[:, cand]
        dynamic_k = ious.topk(min(DYNAMIC_K_CANDIDATES, m), dim=1).values.sum(1).int().clamp(min=1)
        matching = torch.zeros(n, m, dtype=torch.bool)
        for g in range(n):
            matching[g, cost[g].topk(int(dynamic_k[g]), largest=False).indices] = True
        shared = matching.sum(0) > 1
        if shared.any():
            matching[:, shared] = False
            matching[cost[:, shared].argmin(0), shared.nonzero().flatten()] = True
        fg[b, cand] = matching.any(0)
    return fg


class AssignmentTimer:
    """Wraps the loss module's simota_assign to time it and keep its last inputs and output."""

    def __init__(self):
        self.original = yolox_loss_module.simota_assign
        self.seconds = 0.0
        self.last = None

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        result = self.original(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        self.last = (args, result)
        return result


def measure(name: str, size: int, batch: int, repeats: int, timer: AssignmentTimer) -> dict:
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = get_model(name, num_classes=NUM_CLASSES)
    images, targets = synthetic_batch(batch, size, gen)
    criterion = YoloXDetectionLoss(model.strides, NUM_CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, nesterov=True)

    model.eval()
    with torch.no_grad():
        forward = best_of(lambda: model(images), repeats)

    model.train()
    best = {"step": float("inf")}
    for _ in range(repeats + 1):  # the first step warms up allocations and the grid cache
        timer.seconds = 0.0
        t0 = time.perf_counter()
        preds = model(images)
        t1 = time.perf_counter()
        loss, _ = criterion(preds, targets)
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        t3 = time.perf_counter()
        if t3 - t0 < best["step"]:
            best = {"step": t3 - t0, "forward": t1 - t0, "loss": t2 - t1, "assign": timer.seconds}

    args, ours = timer.last
    alone = {"ours": lambda: timer.original(*args), "peer": lambda: per_image_simota(*args)}
    standalone = best_interleaved(alone, repeats + 1)
    same = torch.equal(per_image_simota(*args), ours.fg_mask)
    return {"forward": forward, **best, "ours_alone": standalone["ours"], "peer_alone": standalone["peer"], "same": same}


def load_libre_yolox():
    """LibreYOLO's YOLOX network module without its package __init__ (optional dependencies), or None.
    Its optimizer builder is imported too, as `libre_optim`."""
    spec = importlib.util.find_spec("libreyolo")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    for package in ("libreyolo", "libreyolo.models", "libreyolo.models.yolox", "libreyolo.training"):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(root.joinpath(*package.split(".")[1:]))]
            sys.modules[package] = module
    global libre_optim
    libre_optim = importlib.import_module("libreyolo.training.optim")
    return importlib.import_module("libreyolo.models.yolox.nn")


libre_optim = None


def step_against_peer(libre_nn, name: str, size: int, batch: int, repeats: int) -> dict[str, float]:
    """Best training-step seconds (forward, loss, backward, SGD) of ours (default and channels-last layout) and of
    LibreYOLO's YOLOX, in turns."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    images, targets = synthetic_batch(batch, size, gen)
    peer_labels = targets[:, 1:].reshape(batch, BOXES_PER_IMAGE, 5)  # [B, boxes, (class, cx, cy, w, h)]
    ours = get_model(name, num_classes=NUM_CLASSES).train()
    ours_nhwc = use_channels_last(copy.deepcopy(ours))  # the training parameter channels_last
    criterion = YoloXDetectionLoss(ours.strides, NUM_CLASSES)
    peer = libre_nn.LibreYOLOXModel(name.split("_")[1], NUM_CLASSES).train()
    sgd = {"momentum": 0.9, "nesterov": True, "weight_decay": 0.0}
    optimizers = {"ours": build_optimizer("SGD", ours, 1e-4, sgd, zero_weight_decay_on_bias_and_bn=False),
                  "ours_nhwc": build_optimizer("SGD", ours_nhwc, 1e-4, sgd, zero_weight_decay_on_bias_and_bn=False),
                  "peer": libre_optim.build_optimizer(torch.optim.SGD, peer.parameters(), lr=1e-4, **sgd)}

    def step(key: str, loss_fn) -> None:
        optimizers[key].zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizers[key].step()

    steps = {"ours": lambda: step("ours", lambda: criterion(ours(images), targets)[0]),
             "ours_nhwc": lambda: step("ours_nhwc", lambda: criterion(ours_nhwc(images), targets)[0]),
             "peer": lambda: step("peer", lambda: peer(images, peer_labels)["total_loss"])}
    return best_interleaved(steps, repeats + 1)  # the first round warms up


def print_peer_table(libre_nn, runs, batch: int, repeats: int) -> None:
    print(f"\ntraining step against LibreYOLO's YOLOX (batch {batch}, best of {repeats + 1} rounds in turns)")
    header = (f"{'model':<8} {'size':>4} {'ours img/s':>10} {'LibreYOLO img/s':>15} {'ours / LibreYOLO':>16} "
              f"{'ours NHWC img/s':>15} {'NHWC / LibreYOLO':>16}")
    print(header)
    print("-" * len(header))
    for name, size in runs:
        best = step_against_peer(libre_nn, name, size, batch, repeats)
        print(f"{name:<8} {size:>4} {batch / best['ours']:>10.1f} {batch / best['peer']:>15.1f} "
              f"{best['peer'] / best['ours']:>15.2f}x {batch / best['ours_nhwc']:>15.1f} "
              f"{best['peer'] / best['ours_nhwc']:>15.2f}x")
    print("NHWC: ours with training_params.channels_last=true (weights and activations channels-last)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="YOLOX-N at 320, batch 2, one repeat")
    args = parser.parse_args(argv)
    apply_cpu_speed_settings(flush_denormal=True, reuse_memory=True)
    if args.quick:
        runs, batch, repeats = [("yolox_n", 320)], 2, 1
    else:
        runs, batch, repeats = [(m, s) for m in ("yolox_n", "yolox_s") for s in (320, 640)], 8, 2
    timer = AssignmentTimer()
    yolox_loss_module.simota_assign = timer
    print(f"batch {batch}, {BOXES_PER_IMAGE} boxes/image, {NUM_CLASSES} classes, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, best of {repeats}, {cpu_description()}")
    header = (f"{'model':<8} {'size':>4} {'fwd img/s':>9} {'step s':>7} {'train img/s':>11} {'loss %':>6} "
              f"{'assign %':>8} {'peer assign ms':>14} {'ours ms':>8} {'ratio':>6} same")
    print(header)
    print("-" * len(header))
    all_same = True
    try:
        for name, size in runs:
            r = measure(name, size, batch, repeats, timer)
            all_same &= r["same"]
            print(f"{name:<8} {size:>4} {batch / r['forward']:>9.1f} {r['step']:>7.2f} {batch / r['step']:>11.1f} "
                  f"{100 * r['loss'] / r['step']:>6.1f} {100 * r['assign'] / r['step']:>8.1f} "
                  f"{r['peer_alone'] * 1e3:>14.1f} {r['ours_alone'] * 1e3:>8.1f} {r['ours_alone'] / r['peer_alone']:>6.2f} "
                  f"{'yes' if r['same'] else 'NO'}")
    finally:
        yolox_loss_module.simota_assign = timer.original
    print("loss % and assign % are shares of the training step (forward + loss + backward + SGD step); "
          "peer/ours ms = the assignment alone on the step's predictions (interleaved, best of repeats); "
          "ratio = ours / peer; same = identical foreground masks.")
    libre_nn = load_libre_yolox()
    if libre_nn is None:
        print("LibreYOLO is not installed: no comparison with its YOLOX (pip install --no-deps libreyolo)")
    else:
        print_peer_table(libre_nn, runs, batch, repeats)
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
