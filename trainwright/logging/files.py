"""Small file writers of the experiment directory: atomic saves, the per-epoch results CSV, the text log."""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["RESULTS_CSV", "TEXT_LOG", "atomic_write", "atomic_torch_save", "ResultsCSV", "attach_text_log"]

RESULTS_CSV = "results.csv"  # per-epoch results in the experiment directory
TEXT_LOG = "train_log.txt"  # the run's text log in the experiment directory

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> None:
    """Run `write(file)` on a temporary file beside `path`, fsync it, then rename it over `path`.

    Readers see either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
