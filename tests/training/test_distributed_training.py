"""Training on two processes (torchrun, gloo on CPU) against one process, through the public Trainer API.

One job per phase (ddp_job.py): the one-process reference runs, then the same runs on two processes with half
the batch each, then a one-process resume of a two-process checkpoint. Each process saves what it ended with.
"""

import pytest
import torch
from ddp_launch import JOB, report, run_python, torchrun

TOLERANCE = 1e-5


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _load(folder, phase: str, rank: int = 0) -> dict:
    return torch.load(folder / f"{phase}_rank{rank}.pt", weights_only=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """single -> ddp (2 processes) -> back: what every process ended with, and the folder of the runs."""
    out = tmp_path_factory.mktemp("ddp")
    single = run_python(JOB, "single", out)
    assert single.returncode == 0, report(single)
    ddp = torchrun("--standalone", "--nproc_per_node", "2", JOB, "ddp", out)
    assert ddp.returncode == 0, report(ddp)
    back = run_python(JOB, "back", out)
    assert back.returncode == 0, report(back)
    return {"single": _load(out, "single"), "ddp": [_load(out, "ddp", r) for r in (0, 1)], "back": _load(out, "back"),
            "folder": out}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("run", ["straight", "accumulate"])
def test_two_processes_with_half_the_batch_reach_the_weights_of_one(runs, run):
    """SyncBatchNorm, SGD with momentum, EMA: 2 x batch 4 ends where 1 x batch 8 does (and with accumulation,
    2 x batch 2 x 2 steps where 1 x batch 4 x 2 steps does)."""
    one, two = runs["single"][run], runs["ddp"][0][run]
    assert _max_difference(one["net"], two["net"]) < TOLERANCE
    assert _max_difference(one["ema"], two["ema"]) < TOLERANCE
    assert two["results"] == pytest.approx(one["results"], rel=1e-5)


@pytest.mark.slow
def test_the_same_model_validates_to_the_same_numbers_on_one_and_two_processes(runs):
    one, two = runs["single"]["tested"], [runs["ddp"][r]["tested"] for r in (0, 1)]
    assert set(one) == {"CrossEntropyLoss", "MulticlassAccuracy"}
    assert two[0] == two[1]  # every process reports rank 0's numbers
    assert two[0]["MulticlassAccuracy"] == one["MulticlassAccuracy"]  # 30 images shared 15 / 15, each counted once
    assert two[0]["CrossEntropyLoss"] == pytest.approx(one["CrossEntropyLoss"], rel=1e-6, abs=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("run", ["straight", "accumulate", "amp"])
def test_every_process_holds_the_same_weights_ema_and_results(runs, run):
    rank0, rank1 = runs["ddp"][0][run], runs["ddp"][1][run]
    for part in ("net", "ema"):
        assert all(torch.equal(rank0[part][k], rank1[part][k]) for k in rank0[part]), part
    assert rank0["results"] == rank1["results"] and rank0["best_metric"] == rank1["best_metric"]
    assert all(torch.isfinite(v).all() for v in rank0["net"].values() if v.is_floating_point())


@pytest.mark.slow
def test_accumulating_batches_skip_the_gradient_all_reduce(runs):
    for rank in (0, 1):
        flags = runs["ddp"][rank]["accumulate"]["grad_sync"]
        assert flags == [False, True] * (len(flags) // 2) and flags  # no_sync() on every batch without a step


@pytest.mark.slow
def test_resume_from_one_process_on_two_and_back_matches_the_straight_run(runs):
    """Epoch 1 on one process, epoch 2 on two (from its checkpoint), epoch 3 on one again (from theirs)."""
    middle = runs["ddp"][0]["resumed"]
    assert middle["epochs_done"] == 2
    straight, back = runs["single"]["straight"], runs["back"]["resumed"]
    assert back["epochs_done"] == 3
    assert _max_difference(straight["net"], back["net"]) < TOLERANCE
    assert _max_difference(straight["ema"], back["ema"]) < TOLERANCE
    checkpoint = torch.load(runs["folder"] / "checkpoints" / "ddp_resumed" / "ckpt_latest.pth", weights_only=True)
    assert not any(key.startswith("module.") for key in checkpoint["net"])


@pytest.mark.slow
def test_a_nan_loss_on_one_process_stops_both_at_the_same_batch(runs):
    for rank in (0, 1):
        message = runs["ddp"][rank]["nan"]
        assert "non-finite on rank(s) [1] at epoch 0, batch 2" in message, message


@pytest.mark.slow
def test_a_stop_asked_by_one_process_stops_both(runs):
    assert [runs["ddp"][rank]["stop"] for rank in (0, 1)] == [1, 1]


@pytest.mark.slow
def test_rank_0_alone_writes_the_files_of_a_run(runs):
    """The two-process run's folder holds what the one-process run's holds: one log, one results.csv of 3 rows,
    one TensorBoard file, the checkpoints; nothing written by the other process."""
    root = runs["folder"] / "checkpoints"

    def listing(name):
        return sorted("events" if f.name.startswith("events.out.tfevents") else f.name for f in (root / name).iterdir())

    assert listing("ddp_straight") == listing("one_straight")
    assert listing("ddp_straight").count("events") == 1
    rows = (root / "ddp_straight" / "results.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]
