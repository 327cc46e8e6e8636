"""A tiny training run with a fault, in its own process (or in-process: `run`), for the tests that kill, interrupt
or race training runs.

    python fault_worker.py ROOT NAME [--resume] [--epochs N] [--fault SIGNAL:KIND:A:B] [--hold FILE]

Faults (the process signals itself):
    SIGNAL:batch:E:B        after training batch B of epoch E (0-based)
    SIGNAL:validation:E:B   after validation batch B of epoch E
    SIGNAL:write:NAME:K     during the K-th write (0-based, of this process) of checkpoint NAME, half-way through
--hold FILE: at on_training_start, wait until FILE exists (so that another process can try the same directory).
Prints one JSON line: {"resumed_epoch", "epochs_done", "interrupted"}; exit 3 with the message on stderr when
the experiment directory is in use.
"""

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import time

import torch
from trainer_helpers import base_params, make_loaders, tiny_model

from trainwright import Trainer
from trainwright.callbacks.base import Callback
from trainwright.training.experiment_dir import ExperimentInUseError


def parse_fault(text):
    if not text:
        return None
    sig, kind, a, b = text.split(":")
    return getattr(signal, sig), kind, a, int(b)


class SignalAt(Callback):
    """Sends `signum` to this process after the chosen batch."""

    def __init__(self, signum, kind, epoch, batch):
        self.signum, self.kind, self.epoch, self.batch = signum, kind, epoch, batch

    def _maybe(self, ctx, kind):
        if kind == self.kind and ctx.epoch == self.epoch and ctx.batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)
            time.sleep(0.2)  # SIGKILL / SIGTERM end the process here

    def on_train_batch_end(self, ctx):
        self._maybe(ctx, "batch")

    def on_validation_batch_end(self, ctx):
        self._maybe(ctx, "validation")


class HalfWaySignal:
    """A file proxy that signals this process once half of `total` bytes went through it."""

    def __init__(self, file, signum, total):
        self.file, self.signum, self.left = file, signum, total // 2

    def write(self, data):
        written = self.file.write(data)
        self.left -= len(data)
        if self.left <= 0 and self.signum is not None:
            signum, self.signum = self.signum, None
            os.kill(os.getpid(), signum)
            time.sleep(0.2)  # SIGKILL ends the process here, in the middle of the write
        return written

    def __getattr__(self, name):
        return getattr(self.file, name)


@contextlib.contextmanager
def signal_during_write(signum, name, occurrence):
    """torch.save patched so that the `occurrence`-th write of the checkpoint `name` is signalled half-way."""
    real_save, seen = torch.save, []

    def save(obj, f, *args, **kwargs):
        target = os.path.basename(os.readlink(f"/proc/self/fd/{f.fileno()}"))  # the temporary file's name
        if target.startswith(f".{name}."):
            seen.append(target)
            if len(seen) - 1 == occurrence:
                size = len(_serialised(real_save, obj))
                return real_save(obj, HalfWaySignal(f, signum, size), *args, **kwargs)
        return real_save(obj, f, *args, **kwargs)

    torch.save = save
    try:
        yield
    finally:
        torch.save = real_save


def _serialised(real_save, obj) -> bytes:
    buffer = io.BytesIO()
    real_save(obj, buffer)
    return buffer.getvalue()


def train(trainer, epochs=5, callbacks=(), resume=False):
    """The run every fault test makes (a resume starts from other initial weights: they must not matter)."""
    params = base_params(max_epochs=epochs, lr_mode="cosine", lr_warmup_epochs=1, ema=True,
                         ema_params={"decay": 0.9, "decay_type": "threshold"}, save_ckpt_epoch_list=[2],
                         phase_callbacks=list(callbacks), resume=resume)
    trainer.train(tiny_model(seed=5 if resume else 1), params, *make_loaders())


class Hold(Callback):
    """Waits at on_training_start until the file `path` exists."""

    def __init__(self, path):
        self.path = path

    def on_training_start(self, ctx):
        while not os.path.exists(self.path):
            time.sleep(0.05)


def run(root, name, epochs=5, fault=None, resume=False, hold=None) -> dict:
    """One run with an optional fault (see the module docstring), on one thread; returns what it reports."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    trainer = Trainer(name, ckpt_root_dir=root, device="cpu")
    start = {}

    class StartEpoch(Callback):
        def on_training_start(self, ctx):
            start["epoch"] = trainer.state.epochs_done

    callbacks, patch = [StartEpoch()], contextlib.nullcontext()
    fault = parse_fault(fault)
    if fault is not None and fault[1] == "write":
        patch = signal_during_write(fault[0], fault[2], fault[3])
    elif fault is not None:
        callbacks.append(SignalAt(fault[0], fault[1], int(fault[2]), fault[3]))
    if hold:
        callbacks.append(Hold(hold))
    try:
        with patch:
            train(trainer, epochs, callbacks, resume)
    finally:
        torch.set_num_threads(threads)
    return {"resumed_epoch": start["epoch"] if trainer.state.resumed_from is not None else None,
            "epochs_done": trainer.state.epochs_done, "interrupted": trainer.interrupted}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("name")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--fault")
    parser.add_argument("--hold")
    args = parser.parse_args()
    try:
        report = run(args.root, args.name, args.epochs, args.fault, args.resume, args.hold)
    except ExperimentInUseError as error:
        print(error, file=sys.stderr)
        sys.exit(3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
