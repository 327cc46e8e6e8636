"""Small file writers of the experiment directory: atomic saves, the per-epoch results CSV, the text log."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

__all__ = ["RESULTS_CSV", "TEXT_LOG", "atomic_write", "atomic_torch_save", "interrupts_deferred",
           "remove_leftover_temp_files", "ResultsCSV", "attach_text_log"]

RESULTS_CSV = "results.csv"  # per-epoch results in the experiment directory
TEXT_LOG = "train_log.txt"  # the run's text log in the experiment directory

_UMASK = os.umask(0)
os.umask(_UMASK)
_STARTED = time.time()  # a temporary file older than this cannot be one this process is still writing
# atomic_write's temporary files: "." + the target's name + "." + mkstemp's 8 random characters + ".tmp"
_TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs, then deliver them (Ctrl-C raises after the block).

    So an interrupt never leaves a write half-done. Only the main thread receives signals; elsewhere (and
    for a signal whose handler Python did not install) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {s: signal.getsignal(s) for s in _DEFERRED_SIGNALS}
    previous = {s: handler for s, handler in previous.items() if handler is not None}
    for signum in previous:
        signal.signal(signum, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)  # to the restored handler: KeyboardInterrupt, an outer deferral, exit


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> None:
    """Run `write(file)` on a temporary file beside `path`, fsync it, then rename it over `path`.

    Readers see either the old file or the complete new one, never a partial write. Ctrl-C (and SIGTERM)
    during the write takes effect once it is done (`interrupts_deferred`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with interrupts_deferred():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; give the permissions open() would
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)` made atomic."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def remove_leftover_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files `atomic_write` left in `folder` and its subfolders when a process was killed
    mid-write (only those last modified before this process started); returns what was removed.

    Call it only while no other process writes there (the experiment directory's lock is held).
    """
    removed = []
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            with contextlib.suppress(OSError):
                if _TEMP_FILE.match(name) and path.is_file() and path.stat().st_mtime < _STARTED:
                    path.unlink()
                    removed.append(path)
    return removed


class ResultsCSV:
    """`results.csv`: one row per epoch; new column names are appended to the header as they appear.

    On resume, rows of epochs at or after the resumed epoch are dropped (they are about to be recomputed).
    """

    def __init__(self, path: str | os.PathLike, resume_from_epoch: int | None = None):
        self.path = Path(path)
        self.rows: list[dict[str, object]] = []
        self.columns: list[str] = ["epoch"]
        if resume_from_epoch is not None and self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or ["epoch"])
                self.rows = [r for r in reader if int(r["epoch"]) < resume_from_epoch]

    def add_row(self, epoch: int, values: Mapping[str, object]) -> None:
        """Append the row of `epoch` and rewrite the file atomically."""
        row = {"epoch": epoch, **values}
        self.columns += [k for k in row if k not in self.columns]
        self.rows.append(row)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.path, lambda f: f.write(buffer.getvalue().encode()))


def attach_text_log(logger: logging.Logger, path: str | os.PathLike) -> logging.Handler:
    """Copy `logger`'s records (INFO and up) into the text file `path`; returns the handler to remove later."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler
