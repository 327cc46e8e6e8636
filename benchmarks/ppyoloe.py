"""PP-YOLOE-S training step on CPU: ours next to LibreYOLO's PP-YOLOE-S (a port of the reference) and our YOLOX-S.

For each input size, a batch of 8 random images with 8 random boxes each (80 classes) goes through a full
training step: train-mode forward, the loss with its label assignment, backward, optimizer step (AdamW for
PP-YOLOE as in the reference recipe, SGD for YOLOX). The PP-YOLOE step runs in the task-aligned stage (the
long one); the time spent in the assignment is reported as a share of the step. Both PP-YOLOE models start
from the same weights (LibreYOLO's layout is the reference's, as is ours), so both assign on the same
predictions; the assignments of both stages (ATSS and task-aligned) are then timed alone, in turns, and their
foreground masks compared. Times are the best of the repeats, steps taken in turns (the order reversed every
round). Each side's optimizer is built by its own trainer's builder (ours fused on CPU, LibreYOLO's torch's
default there); the process runs with trainwright's CPU settings (trainwright.training.cpu_speed), which both
sides share.

    python benchmarks/ppyoloe.py            # 320 and 640, batch 8 (several minutes on 2 cores)
    python benchmarks/ppyoloe.py --quick    # 320, batch 2, one repeat

The peer needs `pip install libreyolo` (MIT; `pip install --no-deps libreyolo` is enough: only its torch code
is used). Without it the peer rows are left out.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib
import importlib.util
import sys
import time
import types
from pathlib import Path

import torch
from timing import best_interleaved, cpu_description

from trainwright.models import get_model
from trainwright.models.detection.ppyoloe_loss import PPYoloELoss
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


def load_libreyolo():
    """LibreYOLO's PP-YOLOE network, loss and optimizer-builder modules, without its package __init__ (optional
    dependencies)."""
    spec = importlib.util.find_spec("libreyolo")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    for package in ("libreyolo", "libreyolo.models", "libreyolo.models.ppyoloe", "libreyolo.models.yolonas",
                    "libreyolo.training", "libreyolo.utils", "libreyolo.postprocess"):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(root.joinpath(*package.split(".")[1:]))]
            sys.modules[package] = module
    return (importlib.import_module("libreyolo.models.ppyoloe.nn"),
            importlib.import_module("libreyolo.models.yolonas.loss"),
            importlib.import_module("libreyolo.training.optim"))


class Timed:
    """Wraps a callable to add up the seconds spent in it and keep its last arguments."""

    def __init__(self, fn):
        self.fn, self.seconds, self.last_args = fn, 0.0, None

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        result = self.fn(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        self.last_args = (args, kwargs)
        return result


class Runner:
    """One model + loss + optimizer; `step()` runs a training step and returns (assign seconds, step seconds)."""

    def __init__(self, model, criterion, optimizer, images, targets, assign_timers):
        self.model, self.criterion, self.optimizer = model.train(), criterion, optimizer
        self.images, self.targets, self.timers = images, targets, assign_timers
        self.best = (float("inf"), 0.0)

    def step(self) -> None:
        for timer in self.timers:
            timer.seconds = 0.0
        start = time.perf_counter()
        loss, _ = self.criterion(self.model(self.images), self.targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        seconds = time.perf_counter() - start
        if seconds < self.best[0]:
            self.best = (seconds, sum(t.seconds for t in self.timers))


def build_runners(size: int, batch: int, libre) -> dict[str, Runner]:
    gen = torch.Generator().manual_seed(0)
    images, targets = synthetic_batch(batch, size, gen)
    torch.manual_seed(0)
    ours = get_model("ppyoloe_s", NUM_CLASSES)
    ours_loss = PPYoloELoss(NUM_CLASSES, use_static_assigner=False)
    ours_loss.assign = Timed(ours_loss.assign)
    adamw = build_optimizer("AdamW", ours, 1e-5, {}, zero_weight_decay_on_bias_and_bn=False)
    runners = {"ppyoloe_s (ours)": Runner(ours, ours_loss, adamw, images, targets, [ours_loss.assign])}
    nhwc = use_channels_last(copy.deepcopy(ours))  # the training parameter channels_last
    nhwc_loss = PPYoloELoss(NUM_CLASSES, use_static_assigner=False)
    nhwc_loss.assign = Timed(nhwc_loss.assign)
    runners["ppyoloe_s (ours, NHWC)"] = Runner(
        nhwc, nhwc_loss, build_optimizer("AdamW", nhwc, 1e-5, {}, zero_weight_decay_on_bias_and_bn=False), images,
        targets, [nhwc_loss.assign])
    if libre is not None:
        libre_nn, libre_loss_module, libre_optim = libre
        peer = libre_nn.LibrePPYOLOEModel("s", NUM_CLASSES)
        peer.load_state_dict(ours.state_dict())
        peer_loss = libre_loss_module.PPYoloELoss(NUM_CLASSES, use_static_assigner=False)
        peer_loss.assigner.forward = Timed(peer_loss.assigner.forward)
        peer_loss.static_assigner.forward = Timed(peer_loss.static_assigner.forward)
        runners["ppyoloe_s (LibreYOLO)"] = Runner(
            peer, peer_loss, libre_optim.build_optimizer(torch.optim.AdamW, peer.parameters(), lr=1e-5), images, targets,
            [peer_loss.assigner.forward, peer_loss.static_assigner.forward])
    yolox = get_model("yolox_s", NUM_CLASSES)
    yolox_loss = YoloXDetectionLoss(yolox.strides, NUM_CLASSES)
    runners["yolox_s (ours)"] = Runner(yolox, yolox_loss,
                                       build_optimizer("SGD", yolox, 1e-5, {"momentum": 0.9, "nesterov": True}, False),
                                       images, targets, [])
    return runners


def peer_assigner(peer_loss, static: bool, args) -> functools.partial:
    """LibreYOLO's assigner of the given stage, called on the arguments our loss passed to its assignment."""
    class_logits, pred_boxes, anchor_boxes, counts, points, gt_boxes, gt_classes, gt_valid = args
    common = {"num_anchors_list": counts, "gt_labels": gt_classes[..., None], "gt_bboxes": gt_boxes,
              "pad_gt_mask": gt_valid[..., None].float(), "bg_index": NUM_CLASSES, "pred_bboxes": pred_boxes}
    if static:
        return functools.partial(peer_loss.static_assigner.forward.fn, anchor_bboxes=anchor_boxes, **common)
    return functools.partial(peer_loss.assigner.forward.fn, pred_scores=class_logits.sigmoid(), anchor_points=points,
                             **common)


def assignment_alone(runners: dict[str, Runner], libre, repeats: int) -> list[tuple[str, float, float, float]]:
    """(stage, ours ms, peer ms, foreground agreement) of both assigners on the ours model's last predictions."""
    ours = runners["ppyoloe_s (ours)"].criterion
    args, _ = ours.assign.last_args
    rows = []
    for stage, static in (("ATSS", True), ("task-aligned", False)):
        ours.use_static_assigner = static
        fns = {"ours": functools.partial(ours.assign.fn, *args)}
        if libre is not None:
            fns["peer"] = peer_assigner(runners["ppyoloe_s (LibreYOLO)"].criterion, static, args)
        best = best_interleaved(fns, repeats + 1)
        agree = float("nan")
        if libre is not None:
            fg_peer = fns["peer"]()[0] != NUM_CLASSES
            agree = (fg_peer == fns["ours"]().fg_mask).float().mean().item()
        rows.append((stage, best["ours"] * 1e3, best.get("peer", float("nan")) * 1e3, agree))
    ours.use_static_assigner = False
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="320 only, batch 2, one repeat")
    args = parser.parse_args(argv)
    apply_cpu_speed_settings(flush_denormal=True, reuse_memory=True)
    sizes, batch, repeats = ((320,), 2, 1) if args.quick else ((320, 640), 8, 4)
    libre = load_libreyolo()
    print(f"batch {batch}, {BOXES_PER_IMAGE} boxes/image, {NUM_CLASSES} classes, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, best of {repeats}, {cpu_description()}"
          + ("" if libre else "; LibreYOLO not installed: no peer rows"))
    header = f"{'runner':<22} {'size':>4} {'step s':>7} {'train img/s':>11} {'assign %':>8} {'vs peer':>7}"
    print(header)
    print("-" * len(header))
    alone = {}
    for size in sizes:
        runners = build_runners(size, batch, libre)
        for runner in runners.values():  # warm-up: allocations, caches, first-call costs
            runner.step()
            runner.best = (float("inf"), 0.0)
        for repeat in range(repeats):  # in turns, the order reversed every round so no runner always goes first
            for runner in list(runners.values())[:: 1 if repeat % 2 == 0 else -1]:
                runner.step()
        peer = runners.get("ppyoloe_s (LibreYOLO)")
        for name, runner in runners.items():
            seconds, assign = runner.best
            ratio = f"{peer.best[0] / seconds:>6.2f}x" if peer is not None and name.startswith("ppyoloe") else ""
            share = f"{100 * assign / seconds:>8.1f}" if name.startswith("ppyoloe") else f"{'':>8}"
            print(f"{name:<22} {size:>4} {seconds:>7.2f} {batch / seconds:>11.2f} {share} {ratio:>7}")
        alone[size] = assignment_alone(runners, libre, repeats)
    print("step = forward + loss (with assignment) + backward + optimizer step; assign % = share of the step spent "
          "in the task-aligned assignment; vs peer = LibreYOLO step time / this step time (higher is faster); NHWC = "
          "training_params.channels_last=true.")
    print()
    header = f"{'assigner':<13} {'size':>4} {'ours ms':>8} {'peer ms':>8} {'peer/ours':>9} {'fg agree':>8}"
    print(header)
    print("-" * len(header))
    for size, rows in alone.items():
        for stage, ours_ms, peer_ms, agree in rows:
            print(f"{stage:<13} {size:>4} {ours_ms:>8.1f} {peer_ms:>8.1f} {peer_ms / ours_ms:>9.2f} {agree:>8.4f}")
    print("the assignments alone, on the same predictions (interleaved, best of repeats); fg agree = share of "
          "anchors both call foreground or both background (an anchor claimed by several boxes may differ).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
