"""Trainer overhead: a bare PyTorch loop vs trainwright's Trainer vs Lightning's Trainer on identical work.

Work: a small CNN on random 3x64x64 images (10 classes), batch 64, SGD, N epochs on CPU; each epoch trains on
the training set and validates (loss + accuracy) on a validation set. Each runner starts from the same weights.
Imports and one warm-up epoch happen before timing. Run: `python benchmarks/trainer_overhead.py [--quick]`.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import logging
import statistics
import tempfile
import time
import warnings

import torch
import torchmetrics
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.set_flush_denormal(True)


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip


def make_loaders(n_train: int, n_valid: int, batch_size: int):
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(n_train + n_valid, 3, 64, 64, generator=g),
        torch.randint(0, 10, (n_train + n_valid,), generator=g),
    )
    train = TensorDataset(x[:n_train], y[:n_train])
    valid = TensorDataset(x[n_train:], y[n_train:])
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(valid, batch_size=batch_size)


def accuracy() -> torchmetrics.Metric:
    return torchmetrics.classification.MulticlassAccuracy(num_classes=10)


def run_bare(model, train, valid, epochs, lr, workdir) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn, metric = nn.CrossEntropyLoss(), accuracy()
    for _ in range(epochs):
        model.train()
        for x, y in train:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        metric.reset()
        with torch.no_grad():
            for x, y in valid:
                preds = model(x)
                loss_fn(preds, y)
                metric.update(preds, y)
        metric.compute()


def run_trainwright(model, train, valid, epochs, lr, workdir) -> None:
    from trainwright import Trainer

    params = {"max_epochs": epochs, "initial_lr": lr, "loss": "cross_entropy", "valid_metrics_list": [accuracy()]}
    Trainer("overhead", ckpt_root_dir=workdir, device="cpu").train(model, params, train, valid)


def run_lightning(model, train, valid, epochs, lr, workdir) -> None:
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model, self.loss_fn, self.metric = model, nn.CrossEntropyLoss(), accuracy()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = self.loss_fn(self.model(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            preds = self.model(x)
            self.log("valid_loss", self.loss_fn(preds, y))
            self.metric.update(preds, y)
            self.log("valid_acc", self.metric)

        def configure_optimizers(self):
            return torch.optim.SGD(self.model.parameters(), lr=lr)

    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, default_root_dir=workdir,
                        num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(Module(), train, valid)


RUNNERS = {"bare PyTorch loop": run_bare, "trainwright Trainer": run_trainwright, "Lightning Trainer": run_lightning}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="256 images, 1 epoch, 1 repeat")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_train, n_valid, epochs, repeats = (256, 64, 1, 1) if args.quick else (2048, 256, 3, args.repeats)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    initial = make_model()
    train, valid = make_loaders(n_train, n_valid, 64)
    available = dict(RUNNERS)
    importlib.import_module("torch.utils.tensorboard")  # both sides log to TensorBoard: import before timing
    try:
        importlib.import_module("lightning")
    except ImportError:
        available.pop("Lightning Trainer")
        print("lightning not installed (pip install trainwright[bench]); skipping it")
    with tempfile.TemporaryDirectory() as workdir:
        for runner in available.values():  # warm-up: kernels, lazy imports
            runner(copy.deepcopy(initial), *make_loaders(128, 64, 64), 1, 0.01, workdir)
        times: dict[str, list[float]] = {name: [] for name in available}
        for _ in range(repeats):  # interleaved, so background load hits every runner alike
            for name, runner in available.items():
                start = time.perf_counter()
                runner(copy.deepcopy(initial), train, valid, epochs, 0.01, workdir)
                times[name].append(time.perf_counter() - start)
    bare = min(times["bare PyTorch loop"])
    print(f"\n{n_train} train + {n_valid} valid images 3x64x64, batch 64, {epochs} epoch(s), CPU, "
          f"{repeats} run(s) each, {torch.get_num_threads()} thread(s); ratio and overhead from the best run")  # fmt: skip
    print(f"{'runner':<22}{'best s':>9}{'median s':>10}{'ratio':>8}{'overhead':>10}")
    for name, values in times.items():
        t = min(values)
        print(f"{name:<22}{t:>9.2f}{statistics.median(values):>10.2f}{t / bare:>8.3f}{100 * (t / bare - 1):>9.1f}%")


if __name__ == "__main__":
    main()
