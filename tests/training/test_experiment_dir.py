"""The experiment directory belongs to one run at a time: a lock held for the run, naming the holder's PID."""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import fault_worker
import pytest
import torch

from trainwright import Trainer
from trainwright.training.experiment_dir import (
    LOCK_FILE,
    ExperimentInUseError,
    claim_experiment_dir,
    create_experiment_dir,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
fork = multiprocessing.get_context("fork")


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _hold(directory, ready, release):
    with claim_experiment_dir(directory):
        ready.set()
        release.wait(60)


@pytest.fixture
def holder(tmp_path):
    """Another process holding tmp_path/exp: (process, release event)."""
    ready, release = fork.Event(), fork.Event()
    process = fork.Process(target=_hold, args=(tmp_path / "exp", ready, release))
    process.start()
    assert ready.wait(60)
    yield process, release
    if process.is_alive():  # a holder killed inside release.wait() may hold the event's lock forever
        release.set()
    process.join(60)


def test_a_held_directory_is_refused_naming_the_holder(tmp_path, holder):
    process, release = holder
    assert (tmp_path / "exp" / LOCK_FILE).read_text().split("\n")[0] == str(process.pid)
    with pytest.raises(ExperimentInUseError, match=f"in use by another run \\(PID {process.pid} on host "):
        with claim_experiment_dir(tmp_path / "exp"):
            pass
    release.set()
    process.join(60)
    with claim_experiment_dir(tmp_path / "exp", create=False):  # free once the holder ended
        assert (tmp_path / "exp" / LOCK_FILE).read_text().split("\n")[0] == str(os.getpid())
    assert not (tmp_path / "exp" / LOCK_FILE).exists()  # removed on release


def test_a_killed_holder_does_not_block_the_next_run(tmp_path, holder):
    process, _ = holder
    os.kill(process.pid, signal.SIGKILL)
    process.join(60)
    assert (tmp_path / "exp" / LOCK_FILE).exists()  # left behind, but nobody holds it
    with claim_experiment_dir(tmp_path / "exp"):
        pass


def test_a_claim_is_reentrant_for_its_thread_only_and_released_by_an_error(tmp_path):
    errors = []

    def other_thread():
        try:
            with claim_experiment_dir(tmp_path / "exp"):
                pass
        except ExperimentInUseError as error:
            errors.append(str(error))

    with pytest.raises(RuntimeError, match="boom"):
        with claim_experiment_dir(tmp_path / "exp"):
            with claim_experiment_dir(tmp_path / "exp"):  # the command line, then Trainer.train
                thread = threading.Thread(target=other_thread)
                thread.start()
                thread.join()
            assert (tmp_path / "exp" / LOCK_FILE).exists()  # still held by the outer claim
            raise RuntimeError("boom")
    assert len(errors) == 1 and "another thread" in errors[0] and f"PID {os.getpid()}" in errors[0]
    assert not (tmp_path / "exp" / LOCK_FILE).exists()
    with claim_experiment_dir(tmp_path / "exp"):
        pass


def test_resume_needs_an_existing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with claim_experiment_dir(tmp_path / "missing", create=False):
            pass
    assert not (tmp_path / "missing").exists()


def _create(root, name, queue):
    queue.put(create_experiment_dir(root, name).name)


def test_new_directories_are_made_without_a_race(tmp_path):
    assert create_experiment_dir(tmp_path, "run").name == "run"
    (tmp_path / "run_2").mkdir()
    assert create_experiment_dir(tmp_path, "run").name == "run_3"
    queue = fork.Queue()
    processes = [fork.Process(target=_create, args=(tmp_path / "many", "run", queue)) for _ in range(6)]
    for process in processes:
        process.start()
    names = sorted(queue.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(60)
    assert names == sorted(["run"] + [f"run_{n}" for n in range(2, 7)])


def start_worker(root, name, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(HERE / "fault_worker.py"), str(root), name, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_first(processes, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                return process
        time.sleep(0.1)
    raise TimeoutError


@pytest.mark.slow
def test_two_runs_started_together_one_trains_the_other_is_refused(tmp_path):
    hold = tmp_path / "go"
    runs = [start_worker(tmp_path, "same", "--epochs", "2", "--hold", str(hold)) for _ in range(2)]
    try:
        loser = wait_first(runs)  # the winner waits at on_training_start, holding the directory
        winner = runs[1 - runs.index(loser)]
        _, err = loser.communicate(timeout=60)
        assert loser.returncode == 3 and f"in use by another run (PID {winner.pid} on host" in err, err
        hold.touch()
        out, err = winner.communicate(timeout=300)
        assert winner.returncode == 0, err
    finally:
        for process in runs:
            process.kill()
    directory = tmp_path / "same"
    assert len(list(directory.glob("events.out.tfevents.*"))) == 1  # one run's files only
    rows = (directory / "results.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["1", "2"]  # 1-based epochs
    assert torch.load(directory / "ckpt_latest.pth", weights_only=True)["epoch"] == 2


@pytest.mark.slow
def test_a_resume_of_a_running_experiment_is_refused_and_changes_nothing(tmp_path, one_thread):
    fault_worker.train(Trainer("exp", ckpt_root_dir=tmp_path, device="cpu"), epochs=2)
    hold = tmp_path / "go"
    events = lambda: sum(p.name.startswith("events.out") for p in (tmp_path / "exp").iterdir())  # noqa: E731
    first_run_events = events()
    running = start_worker(tmp_path, "exp", "--resume", "--epochs", "3", "--hold", str(hold))
    try:
        lock = tmp_path / "exp" / LOCK_FILE
        while not (lock.exists() and lock.read_text().startswith(f"{running.pid}\n")):
            assert running.poll() is None, running.communicate()
            time.sleep(0.1)
        while events() == first_run_events:  # the running resume opens its TensorBoard file first
            assert running.poll() is None, running.communicate()
            time.sleep(0.1)
        before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "exp").iterdir()}
        with pytest.raises(ExperimentInUseError, match=f"PID {running.pid} "):
            fault_worker.train(Trainer("exp", ckpt_root_dir=tmp_path, device="cpu"), epochs=3, resume=True)
        assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "exp").iterdir()} == before
        hold.touch()
        _, err = running.communicate(timeout=300)
        assert running.returncode == 0, err
    finally:
        running.kill()
    assert torch.load(tmp_path / "exp" / "ckpt_latest.pth", weights_only=True)["epoch"] == 3
