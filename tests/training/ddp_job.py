"""Training runs of the distributed tests, as a user writes them: `python ddp_job.py PHASE OUT` on one process,
`torchrun --nproc_per_node 2 ddp_job.py PHASE OUT` on two. Each process saves what it ended with to
OUT/<phase>_rank<R>.pt for the test to compare (a test harness file: the runs themselves write only on rank 0).

Phases:
  single   one process, batch 8: the reference runs (3 epochs; 1 epoch to resume from; accumulation)
  ddp      two processes, batch 4: the same runs, resume of the one-process checkpoint, a NaN on rank 1 only,
           a stop asked by rank 1 only, bfloat16 autocast
  back     one process, batch 8: resume of the two-process checkpoint up to epoch 3
  kill     two processes: rank 1 kills itself (SIGKILL) in the middle of epoch 2
  hang     two processes: rank 1 stops answering in the middle of epoch 2
"""

import os
import signal
import sys
import time

import torch
import torch.distributed as dist
import torchmetrics
from torch.utils.data import DataLoader, TensorDataset

from trainwright import Trainer
from trainwright.callbacks.base import Callback
from trainwright.distributed import get_rank, unwrap_model

N_TRAIN, N_VALID, GLOBAL_BATCH = 32, 30, 8
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", 1))  # torchrun's; the Trainer joins the process group itself


class SmallNet(torch.nn.Module):
    """4 -> 16 -> 3 with BatchNorm (no dropout: every process computes the same function of its batch)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = torch.nn.Linear(4, 16)
        self.bn = torch.nn.BatchNorm1d(16)
        self.fc2 = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def loaders(batch_size: int, n_train: int = N_TRAIN):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n_train + N_VALID, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    train = TensorDataset(x[:n_train], y[:n_train])
    valid = TensorDataset(x[n_train:], y[n_train:])
    return DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True), DataLoader(valid, batch_size=4)


def params(**overrides):
    out = {"max_epochs": 3, "initial_lr": 0.1, "loss": "cross_entropy", "optimizer": "SGD",
           "optimizer_params": {"momentum": 0.9}, "silent_mode": True, "seed": 7, "sync_bn": True,
           "ema": True, "ema_params": {"decay": 0.9, "decay_type": "constant"},
           "valid_metrics_list": [torchmetrics.classification.MulticlassAccuracy(num_classes=3, average="micro")],
           "metric_to_watch": "MulticlassAccuracy"}  # fmt: skip
    out.update(overrides)
    return out


def outcome(trainer: Trainer, results: dict) -> dict:
    state = trainer.state
    return {"net": {k: v.clone() for k, v in unwrap_model(state.net).state_dict().items()},
            "ema": {k: v.clone() for k, v in state.ema.state_dict().items()} if state.ema is not None else None,
            "results": dict(results), "epochs_done": state.epochs_done, "best_metric": state.best_metric}


class GradSyncRecorder(Callback):
    """Records, per training batch, whether DDP all-reduces the gradients of its backward pass."""

    def __init__(self):
        self.flags = []

    def on_train_batch_loss_end(self, context):
        self.flags.append(bool(getattr(context.net, "require_backward_grad_sync", True)))


class NaNOnRank1(torch.nn.Module):
    """Cross entropy that is NaN on rank 1 from its third batch on."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, preds, target):
        self.calls += 1
        loss = torch.nn.functional.cross_entropy(preds, target)
        return loss * float("nan") if get_rank() == 1 and self.calls >= 3 else loss


class StopOnRank1(Callback):
    def on_epoch_end(self, context):
        if get_rank() == 1:
            context.stop_training = True


class Fault(Callback):
    """On rank 1, in the middle of the second epoch: SIGKILL itself, or stop answering."""

    def __init__(self, kind: str):
        self.kind = kind

    def on_train_batch_start(self, context):
        if get_rank() == 1 and context.epoch == 1 and context.batch_idx == 2:
            if self.kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)


def run(name: str, root: str, batch: int, **overrides):
    trainer = Trainer(name, "cpu", ckpt_root_dir=root)
    train, valid = loaders(batch, overrides.pop("n_train", N_TRAIN))
    results = trainer.train(SmallNet(), params(**overrides), train, valid)
    return trainer, results


def tested(root: str) -> dict:
    """Trainer.test of the one-process run's final weights (the same model on one process or two)."""
    model = SmallNet()
    model.load_state_dict(torch.load(os.path.join(root, "one_straight", "ckpt_latest.pth"), weights_only=True)["net"])
    _, valid = loaders(GLOBAL_BATCH)
    metric = torchmetrics.classification.MulticlassAccuracy(num_classes=3, average="micro")
    return Trainer("test", "cpu", ckpt_root_dir=root).test(model, valid, [metric], loss="cross_entropy", silent_mode=True)


def single(root: str) -> dict:
    out = {"straight": outcome(*run("one_straight", root, GLOBAL_BATCH))}
    out["tested"] = tested(root)
    run("one_epoch", root, GLOBAL_BATCH, max_epochs=1)
    out["accumulate"] = outcome(*run("one_accumulate", root, GLOBAL_BATCH // 2, batch_accumulate=2, max_epochs=2))
    return out


def ddp(root: str) -> dict:
    batch = GLOBAL_BATCH // WORLD_SIZE
    out = {"straight": outcome(*run("ddp_straight", root, batch)), "tested": tested(root)}
    recorder = GradSyncRecorder()
    out["accumulate"] = outcome(*run("ddp_accumulate", root, batch // 2, batch_accumulate=2, max_epochs=2,
                                     phase_callbacks=[recorder]))  # fmt: skip
    out["accumulate"]["grad_sync"] = recorder.flags
    resume = os.path.join(root, "one_epoch", "ckpt_latest.pth")
    out["resumed"] = outcome(*run("ddp_resumed", root, batch, max_epochs=2, resume_path=resume))
    try:
        run("ddp_nan", root, batch, loss=NaNOnRank1())
        out["nan"] = "no error"
    except FloatingPointError as err:
        out["nan"] = str(err)
    dist.barrier()  # both processes stopped at the same batch: the group still works
    trainer, results = run("ddp_stop", root, batch, phase_callbacks=[StopOnRank1()])
    out["stop"] = trainer.state.epochs_done
    out["amp"] = outcome(*run("ddp_amp", root, batch, mixed_precision=True, max_epochs=1))
    return out


def back(root: str) -> dict:
    resume = os.path.join(root, "ddp_resumed", "ckpt_latest.pth")
    return {"resumed": outcome(*run("back_resumed", root, GLOBAL_BATCH, resume_path=resume))}


def fault(root: str, kind: str) -> dict:
    run(f"fault_{kind}", root, GLOBAL_BATCH // WORLD_SIZE, n_train=96, phase_callbacks=[Fault(kind)])
    return {}


def main() -> None:
    phase, out_dir = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    root = os.path.join(out_dir, "checkpoints")
    jobs = {"single": single, "ddp": ddp, "back": back, "kill": lambda r: fault(r, "kill"),
            "hang": lambda r: fault(r, "hang")}  # fmt: skip
    result = jobs[phase](root)
    torch.save(result, os.path.join(out_dir, f"{phase}_rank{get_rank()}.pt"))


if __name__ == "__main__":
    main()
