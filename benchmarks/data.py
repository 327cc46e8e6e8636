"""Data loading speed: the training pipeline (mosaic + affine + mixup + HSV + flip + letterbox + collate) against
the YOLOX-N training step it feeds.

For each input size the shapes dataset (generated at that size into a temporary folder) goes through
trainwright's training transforms in a DataLoader with 2 worker processes (images/s over whole batches,
worker start-up excluded), and a YOLOX-N forward + loss + backward + SGD step runs on a batch of that
loader in this same process (images/s). "keeps up" is the ratio of the two: above 1 the loader outruns
the training step on this machine. The training step's column reads "n/a" when the model or the loss
is not importable.

    python benchmarks/data.py            # 320 and 640 (about two minutes on 2 cores)
    python benchmarks/data.py --quick    # tiny run
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from trainwright.data import ShapesDetectionDataset, build_detection_loader
from trainwright.data.transforms import detection_train_transforms

try:
    from trainwright.models import get_model
    from trainwright.models.detection.yolox_loss import YoloXDetectionLoss
except ImportError:  # the model zoo is optional for this benchmark
    get_model = YoloXDetectionLoss = None


def loader_images_per_s(size: int, root: str, batch_size: int, batches: int, workers: int) -> tuple[float, tuple]:
    """Images/s of the training loader at size x size, and one of its batches for the training step."""
    num_images = batch_size * (batches + 1)  # the warm-up batch and the timed ones, each image seen once
    dataset = ShapesDetectionDataset("train", root=root, image_size=size, num_train=num_images, num_val=1,
                                     min_object_size=size // 8, max_object_size=size * 2 // 5,
                                     transforms=detection_train_transforms((size, size), mixup_prob=0.5))
    loader = build_detection_loader(dataset, batch_size, shuffle=True, num_workers=workers, seed=0, drop_last=True)
    it = iter(loader)
    batch = next(it)  # workers started and warm
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start), batch


def train_step_images_per_s(batch: tuple, steps: int) -> float | None:
    """Images/s of YOLOX-N forward + loss + backward + SGD step on ``batch`` (best of ``steps``)."""
    if get_model is None:
        return None
    images, targets = batch
    model = get_model("yolox_n", num_classes=5).train()
    criterion = YoloXDetectionLoss(strides=tuple(model.strides), num_classes=5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    best = float("inf")
    for _ in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        loss, _ = criterion(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run: few batches, one training step")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    batch_size, batches, steps = (4, 3, 1) if args.quick else (16, 12, 2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch_size}, 2 loader workers")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for size in (320, 640):
            data_rate, batch = loader_images_per_s(size, root, batch_size, batches, workers=2)
            train_rate = train_step_images_per_s(batch, steps)
            rows.append((size, data_rate, train_rate))
    print(f"{'input':>7} | {'loader img/s':>12} | {'YOLOX-N train step img/s':>24} | {'keeps up (ratio)':>16}")
    print(f"{'-' * 7}-+-{'-' * 12}-+-{'-' * 24}-+-{'-' * 16}")
    for size, data_rate, train_rate in rows:
        train = "n/a" if train_rate is None else f"{train_rate:.1f}"
        ratio = "n/a" if train_rate is None else f"{data_rate / train_rate:.1f}x"
        print(f"{size:>7} | {data_rate:>12.1f} | {train:>24} | {ratio:>16}")


if __name__ == "__main__":
    main()
