"""Fault injection: SIGKILL, SIGTERM and SIGINT at seeded random moments of training, validation and checkpoint
writing (half-way through torch.save), each followed by a resume.

SIGKILL and SIGTERM end the process, so those runs are real processes (`fault_worker.py`); Ctrl-C ends only the
run, so the SIGINT chain runs in this process, as a notebook would. After every fault: every checkpoint on disk
loads weights-only, the next run resumes at the epoch the fault allows (the last epoch whose end was written
completely) and removes the temporary file a killed write left. At the end of each chain the weights equal
those of an uninterrupted run, bit for bit (CPU).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import fault_worker
import pytest
import torch

from trainwright.checkpoints import read_ckpt_state_dict

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals")]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EPOCHS, BATCHES, VALID_BATCHES = 5, 4, 4  # the worker's run: 32 samples in batches of 8


def run_process(root, name, *args):
    """fault_worker.py in its own process: (returncode, report or None, stderr)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(HERE / "fault_worker.py"), str(root), name, *args],
                            capture_output=True, text=True, env=env, timeout=300)
    report = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else None
    return result.returncode, report, result.stderr


def expected_epoch_after(fault, start):
    """The epoch a resume continues from after `fault` (see fault_worker) in a run that started at `start`."""
    name, kind, where, index = fault.split(":")
    if kind == "batch":
        return int(where)
    if kind == "validation":  # Ctrl-C after the last validation batch: the epoch's end is written, then it stops
        return int(where) + (name == "SIGINT" and int(index) == VALID_BATCHES - 1)
    # the write of ckpt_latest at the end of epoch start + index: SIGKILL loses it (the previous one stays);
    # SIGINT / SIGTERM wait for the epoch's files to be complete
    return start + int(index) + (0 if name == "SIGKILL" else 1)


def random_fault(rng, signame, start, kind):
    """A fault of `kind` at a random moment after epoch `start` began, before the run's last epoch end."""
    if kind == "write":  # a write of ckpt_latest that is not the last one (else the run would be complete)
        return f"{signame}:write:ckpt_latest.pth:{rng.randrange(0, EPOCHS - 1 - start)}"
    epoch = rng.randrange(start, EPOCHS)
    batches = BATCHES if kind == "batch" else VALID_BATCHES
    if signame == "SIGINT" and kind == "validation" and epoch == EPOCHS - 1:
        batches -= 1  # after the last batch of the last epoch, nothing is left to interrupt
    return f"{signame}:{kind}:{epoch}:{rng.randrange(batches)}"


def assert_checkpoints_load(directory):
    for path in directory.glob("*.pth"):
        checkpoint = read_ckpt_state_dict(path)  # weights-only
        assert {"net", "epoch"} <= set(checkpoint), path


def latest_epoch(directory):
    latest = directory / "ckpt_latest.pth"
    return torch.load(latest, weights_only=True)["epoch"] if latest.exists() else 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's last checkpoint."""
    root = tmp_path_factory.mktemp("reference")
    assert fault_worker.run(root, "straight", EPOCHS)["epochs_done"] == EPOCHS
    return torch.load(root / "straight" / "ckpt_latest.pth", weights_only=True)


def finish_and_compare(tmp_path, reference, start, faults, monkeypatch):
    """Resume (a later process: its start time is now) to the end; compare with the uninterrupted run."""
    monkeypatch.setattr("trainwright.logging.files._STARTED", time.time())
    directory = tmp_path / "run"
    report = fault_worker.run(tmp_path, "run", EPOCHS, resume=start > 0)
    assert report["epochs_done"] == EPOCHS and report["resumed_epoch"] == (start or None), faults
    assert not [p.name for p in directory.iterdir() if p.name.endswith((".tmp", ".lock"))], faults
    assert_checkpoints_load(directory)
    final = torch.load(directory / "ckpt_latest.pth", weights_only=True)
    for key in ("net", "ema_net"):
        assert all(torch.equal(final[key][k], reference[key][k]) for k in reference[key]), (key, faults)
    assert final["epoch"] == reference["epoch"] == EPOCHS


@pytest.mark.parametrize("signame", ["SIGKILL", "SIGTERM"])
def test_killed_runs_resume_at_the_last_complete_epoch(tmp_path, reference, monkeypatch, signame):
    rng = random.Random(f"faults-{signame}")
    # SIGTERM kills a Python process (outside the command line) as SIGKILL does; the two differ during a write
    kinds = rng.sample([rng.choice(["batch", "validation"]), "write"], 2) if signame == "SIGKILL" else ["write"]
    directory, start, faults = tmp_path / "run", 0, []
    for kind in kinds:
        fault = random_fault(rng, signame, start, kind)
        faults.append(fault)
        code, _, err = run_process(tmp_path, "run", *(["--resume"] if start else []), "--fault", fault)
        assert code == -getattr(signal, signame), (fault, code, err)
        assert_checkpoints_load(directory)
        expected = expected_epoch_after(fault, start)
        assert latest_epoch(directory) == expected, fault
        if kind == "write" and signame == "SIGKILL":  # killed half-way through the write: its temporary file
            assert list(directory.glob(".ckpt_latest.pth.*.tmp")), fault
        start = expected
    finish_and_compare(tmp_path, reference, start, faults, monkeypatch)


def test_interrupted_runs_resume_at_the_last_complete_epoch(tmp_path, reference, monkeypatch):
    rng = random.Random("faults-SIGINT")
    directory, start, faults = tmp_path / "run", 0, []
    for kind in rng.sample(["batch", "validation", "write"], 3):
        fault = random_fault(rng, "SIGINT", start, kind)
        faults.append(fault)
        report = fault_worker.run(tmp_path, "run", EPOCHS, fault=fault, resume=start > 0)
        assert report["interrupted"], fault
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back
        assert_checkpoints_load(directory)
        expected = expected_epoch_after(fault, start)
        assert latest_epoch(directory) == expected, fault
        interrupted = torch.load(directory / "ckpt_interrupted.pth", weights_only=True)
        assert interrupted["interrupted_at"]["epoch"] >= expected and interrupted["epoch"] == expected, fault
        start = expected
    finish_and_compare(tmp_path, reference, start, faults, monkeypatch)
