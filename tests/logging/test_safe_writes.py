"""Names that stay in their folder, interrupts held back during a write, leftovers of killed writes removed."""

import os
import signal
import threading
import time

import pytest
import torch

from trainwright.logging import (
    NullSGLogger,
    atomic_torch_save,
    atomic_write,
    build_sg_logger,
    check_file_name,
    interrupts_deferred,
    remove_leftover_temp_files,
)


@pytest.mark.parametrize("name", ["ckpt_best.pth", "my run", "run-2.v1", "é.pth"])
def test_plain_names_are_accepted(name):
    assert check_file_name("x", name) == name


@pytest.mark.parametrize(("name", "why"), [
    ("", "empty"), ("  ", "empty"), (".", "names a folder"), ("..", "names a folder"),
    ("../x", "is a path"), ("/abs/ckpt.pth", "is a path"), ("a/b", "is a path"), ("a\\b", "is a path"),
    ("a\nb", "control character"), ("a\x00b", "control character"), ("x" * 256, "longer than 255 bytes"),
])
def test_names_that_leave_their_folder_are_refused(name, why):
    with pytest.raises(ValueError, match=why) as info:
        check_file_name("training_params.ckpt_best_name", name)
    message = str(info.value)
    assert message.startswith(f"training_params.ckpt_best_name={name!r}") and "\n" not in message


def test_a_name_that_is_not_a_string_is_refused():
    with pytest.raises(ValueError, match="experiment_name must be a file name"):
        check_file_name("experiment_name", 3)


def test_the_tensorboard_logger_writes_checkpoints_only_inside_its_folder(tmp_path):
    sg_logger = build_sg_logger("base_sg_logger", str(tmp_path / "exp"))
    with pytest.raises(ValueError, match="checkpoint name='../outside.pth'"):
        sg_logger.add_checkpoint("../outside.pth", {"x": torch.ones(1)})
    sg_logger.close()
    assert not (tmp_path / "outside.pth").exists()
    NullSGLogger().add_checkpoint("../anything", {})  # writes nothing, so nothing to check


def test_ctrl_c_during_a_write_takes_effect_once_the_file_is_complete(tmp_path):
    path = tmp_path / "f.bin"

    def write(f):
        f.write(b"first half ")
        os.kill(os.getpid(), signal.SIGINT)  # arrives mid-write
        time.sleep(0.05)
        f.write(b"second half")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write)
    assert path.read_bytes() == b"first half second half"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_ctrl_c_during_torch_save_gives_a_loadable_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pth"
    real_save = torch.save

    def save_interrupted(obj, f, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"w": torch.arange(1000)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(1000))


def test_deferred_signals_reach_the_handlers_installed_before(tmp_path):
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert received == []  # held back
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_nothing_is_deferred():
    errors = []

    def run():
        try:
            with interrupts_deferred():
                pass
        except Exception as error:  # signal.signal would raise ValueError outside the main thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == []


def test_leftovers_of_killed_writes_are_removed_and_nothing_else(tmp_path, monkeypatch):
    old = [tmp_path / ".ckpt_latest.pth.a1b2c3d4.tmp", tmp_path / "visualizations" / ".x.jpg.zz_9yy8x.tmp"]
    kept = [tmp_path / "notes.tmp", tmp_path / ".hidden", tmp_path / "ckpt_latest.pth", tmp_path / ".a.pth.TOOLONG99.tmp"]
    for path in old + kept:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    fresh = tmp_path / ".results.csv.q1w2e3r4.tmp"  # newer than this process: may be a write in progress
    fresh.write_bytes(b"x")
    monkeypatch.setattr("trainwright.logging.files._STARTED", time.time() - 60)
    removed = remove_leftover_temp_files(tmp_path)
    assert sorted(removed) == sorted(old)
    assert all(p.exists() for p in kept + [fresh]) and not any(p.exists() for p in old)
