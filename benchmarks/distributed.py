"""Distributed training on CPU: images/s of the YOLOX-N training step on 1 process x 2 threads and on 2 processes
x 1 thread (torchrun, gloo, DistributedDataParallel), and the share of the step spent in the gradient all-reduce.

Both setups train on the same global batch (1 x 2B images, or 2 x B), synthetic images with 8 boxes each:
forward, YoloXDetectionLoss, backward, SGD step. For the 2-process run the all-reduce is measured two ways:
  * busy: the time each gradient bucket's all-reduce takes, from DDP's communication hook to its completion
    (it overlaps the rest of the backward pass);
  * exposed: the step time minus the step time of the same processes with the all-reduce skipped (`no_sync`),
    i.e. what the all-reduce costs the step.
Times are the best of the repeats of `--steps` steps each, after one warm-up step; OpenMP waits passively
(OMP_WAIT_POLICY=PASSIVE unless set): the 1-process and 2-process runs are compared on the same cores, and a
process whose threads spin while it waits for the all-reduce would take a core from its peer.

    python benchmarks/distributed.py            # input 320, global batch 8, 4 steps x 3 repeats
    python benchmarks/distributed.py --quick    # input 160, global batch 4, 2 steps x 1 repeat
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from yolox import NUM_CLASSES, synthetic_batch

from trainwright.distributed import get_rank, get_world_size, init_distributed
from trainwright.models import get_model
from trainwright.models.detection.yolox_loss import YoloXDetectionLoss
from trainwright.training.distributed_run import wrap_model

HERE = Path(__file__).resolve()


def _timed_allreduce_hook(durations: list[float]):
    """A DDP communication hook: the default all-reduce, its duration appended to `durations`."""

    def hook(process_group, bucket):
        start = time.perf_counter()
        future = default_hooks.allreduce_hook(process_group, bucket)

        def finished(fut):
            durations.append(time.perf_counter() - start)
            return fut.value()

        return future.then(finished)

    return hook


def worker(size: int, global_batch: int, steps: int, repeats: int, out: str) -> None:
    """One process of a setup: best time of `steps` training steps, with and (DDP) without the all-reduce."""
    init_distributed("cpu")
    world, rank = get_world_size(), get_rank()
    torch.manual_seed(0)
    model = get_model("yolox_n", num_classes=NUM_CLASSES)
    net = wrap_model(model, torch.device("cpu"))
    loss_fn = YoloXDetectionLoss(strides=list(model.strides), num_classes=NUM_CLASSES)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    batch = synthetic_batch(global_batch // world, size, torch.Generator().manual_seed(rank))
    durations: list[float] = []
    distributed = isinstance(net, torch.nn.parallel.DistributedDataParallel)
    if distributed:
        net.register_comm_hook(None, _timed_allreduce_hook(durations))

    def step(sync: bool) -> None:
        with contextlib.nullcontext() if sync or not distributed else net.no_sync():
            loss = loss_fn(net(batch[0]), batch[1])[0]
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def timed(sync: bool) -> float:
        best = float("inf")
        for _ in range(repeats):
            if distributed:
                dist.barrier()
            start = time.perf_counter()
            for _ in range(steps):
                step(sync)
            best = min(best, (time.perf_counter() - start) / steps)
        return best

    net.train()
    step(True)  # warm-up
    durations.clear()
    result = {"world": world, "threads": torch.get_num_threads(), "step_s": timed(True)}
    if distributed:
        result["busy_s"] = sum(durations) / (steps * repeats)
        result["no_sync_step_s"] = timed(False)
        dist.barrier()
    if rank == 0:
        Path(out).write_text(json.dumps(result))
    if distributed:
        dist.destroy_process_group()


def _launch(processes: int, threads: int, args, out: Path) -> dict:
    # Passive OpenMP waits: threads spinning in one process would stall the other process's all-reduce.
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "OMP_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), str(HERE.parent), env.get("PYTHONPATH", "")])
    work = ["--worker", "--size", str(args.size), "--batch", str(args.batch), "--steps", str(args.steps),
            "--repeats", str(args.repeats), "--out", str(out)]  # fmt: skip
    if processes == 1:
        command = [sys.executable, str(HERE), *work]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   str(HERE), *work]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="input 160, global batch 4, 2 steps, 1 repeat")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8, help="global batch (split between the processes)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batch, args.steps, args.repeats = 160, 4, 2, 1
    if args.worker:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
        worker(args.size, args.batch, args.steps, args.repeats, args.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        one = _launch(1, 2, args, Path(tmp) / "one.json")
        two = _launch(2, 1, args, Path(tmp) / "two.json")
    print(f"YOLOX-N training step, input {args.size}, global batch {args.batch}, best of {args.repeats} x "
          f"{args.steps} steps, CPU ({os.cpu_count()} cores)\n")
    print("| setup | step s | images/s |\n|---|---|---|")
    for name, result in (("1 process x 2 threads", one), ("2 processes x 1 thread (DDP, gloo)", two)):
        print(f"| {name} | {result['step_s']:.3f} | {args.batch / result['step_s']:.1f} |")
    exposed = two["step_s"] - two["no_sync_step_s"]
    print(f"\nall-reduce of the gradients (2 processes): busy {two['busy_s'] * 1e3:.1f} ms per step "
          f"({two['busy_s'] / two['step_s']:.1%} of the step, overlapping the backward pass); exposed "
          f"{exposed * 1e3:.1f} ms ({exposed / two['step_s']:.1%} of the step: step {two['step_s'] * 1e3:.0f} ms "
          f"with it, {two['no_sync_step_s'] * 1e3:.0f} ms without)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
