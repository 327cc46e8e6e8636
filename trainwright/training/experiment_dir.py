"""The experiment directory of a run, held by that run alone: a lock file inside it, locked while the run lasts.

The lock is an `flock` on `.trainwright.lock`, which holds the owner's PID, host and start time so that a
refused run can name it. The kernel drops the lock when the last process holding it ends in any way (SIGKILL
included), so a crashed run never blocks the next one (DataLoader workers forked while it ran share the lock
until they exit, seconds after their parent). Within one process a claim is re-entrant for the thread that
holds it (the command line claims the directory before `Trainer.train` does). On success the temporary files
of writes that a killed run left behind are removed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from trainwright.logging import remove_leftover_temp_files

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

__all__ = ["LOCK_FILE", "ExperimentInUseError", "claim_experiment_dir", "create_experiment_dir"]

logger = logging.getLogger("trainwright")

LOCK_FILE = ".trainwright.lock"


class ExperimentInUseError(RuntimeError):
    """Another run holds the experiment directory; the message names its PID."""


class _Claim:
    """One held lock: its file descriptor, the thread that holds it, and how many claims are open."""

    def __init__(self, fd: int | None, thread: int):
        self.fd, self.thread, self.depth = fd, thread, 1


_claims: dict[str, _Claim] = {}  # real path of the directory -> its claim in this process
_claims_guard = threading.Lock()


def _owner(lock_path: Path) -> str:
    """'PID 123 on host h since <time>' from the lock file (its holder may still be writing it)."""
    for _ in range(20):
        with contextlib.suppress(OSError):
            text = lock_path.read_text().split("\n")
            if text[0].strip().isdigit():
                pid, host, since = (text + ["", ""])[:3]
                alive = ""
                if host == socket.gethostname():
                    try:
                        os.kill(int(pid), 0)
                    except ProcessLookupError:
                        alive = ", which has ended: its child processes are still exiting, try again in a moment"
                    except OSError:
                        pass
                return f"PID {pid} on host {host or '?'} since {since or '?'}{alive}"
        time.sleep(0.025)
    return "PID unknown"


def _lock(directory: Path) -> int | None:
    """Lock `directory`'s lock file (without waiting) and write this process into it; returns its descriptor."""
    if fcntl is None:
        logger.warning("cannot lock %s on this platform: make sure no other run uses it", directory)
        return None
    lock_path = directory / LOCK_FILE
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ExperimentInUseError(
                f"experiment directory {directory} is in use by another run ({_owner(lock_path)}); wait for it "
                "to end, or choose another experiment_name") from None
        try:  # a holder that just ended may have removed the file we opened: then lock the new one
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n{socket.gethostname()}\n{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    return fd


def _unlock(directory: Path, fd: int | None) -> None:
    if fd is None:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(directory / LOCK_FILE)  # while still locked, so nobody locks the file being removed
    os.close(fd)


@contextlib.contextmanager
def claim_experiment_dir(path: str | os.PathLike, *, create: bool = True) -> Iterator[Path]:
    """Hold the experiment directory `path` (created when missing and `create`) for the block.

    Raises ExperimentInUseError naming the holder's PID when another run (or another thread of this process)
    holds it, FileNotFoundError when it is missing and not `create`. The lock is released when the block ends,
    also by an error or Ctrl-C.
    """
    directory = Path(path)
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    elif not directory.is_dir():
        raise FileNotFoundError(f"experiment directory {directory} does not exist")
    key, thread = os.path.realpath(directory), threading.get_ident()
    with _claims_guard:
        claim = _claims.get(key)
        if claim is not None and claim.thread != thread:
            raise ExperimentInUseError(f"experiment directory {directory} is in use by another run in this "
                                       f"process (PID {os.getpid()}, another thread)")  # fmt: skip
        if claim is not None:
            claim.depth += 1
        else:
            claim = _claims[key] = _Claim(_lock(directory), thread)
            removed = remove_leftover_temp_files(directory)
            if removed:
                logger.info("Removed %d temporary file(s) a killed run left in %s", len(removed), directory)
    try:
        yield directory
    finally:
        with _claims_guard:
            claim.depth -= 1
            if claim.depth == 0:
                del _claims[key]
                _unlock(directory, claim.fd)


def create_experiment_dir(root: str | os.PathLike, name: str) -> Path:
    """Create `root/name`, or the first of `name_2`, `name_3`, ... that does not exist yet, and return it.

    Each attempt is one `mkdir`, which fails when the directory exists: two runs started together never get
    the same directory.
    """
    os.makedirs(root, exist_ok=True)
    for n in itertools.count(1):
        candidate = Path(root, name if n == 1 else f"{name}_{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable")
