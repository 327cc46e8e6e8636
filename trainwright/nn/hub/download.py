"""Download a URL to a file: atomically, within a size cap and an overall deadline, verified before it is kept.

The bytes go to a ``.part`` file beside the destination whose name carries the downloading process's id;
the file is moved into place only when the transfer is complete (the size the server announced, when it
announced one), under the caps, matches the expected SHA-256 (when one is given) and passes the caller's
check. Anything else removes the ``.part`` file and raises `DownloadError` naming the URL. ``.part`` files
left behind by a process that was killed are removed by `remove_stale_parts` on the next download.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainwright._version import __version__

__all__ = ["DownloadError", "DownloadLimits", "download_to_file", "remove_stale_parts", "sha256_of_file"]

PART_SUFFIX = ".part"
_CHUNK = 1 << 16
_STALE_PART_AGE_S = 24 * 3600  # a .part file untouched this long is dead even if its process id is in use again
_PART_PID = re.compile(r"\.(\d+)\.[^.]+" + re.escape(PART_SUFFIX) + "$")

MAX_BYTES_ENV = "TRAINWRIGHT_DOWNLOAD_MAX_BYTES"
DEADLINE_ENV = "TRAINWRIGHT_DOWNLOAD_DEADLINE_S"
STALL_TIMEOUT_ENV = "TRAINWRIGHT_DOWNLOAD_STALL_TIMEOUT_S"


class DownloadError(OSError):
    """A download failed (HTTP error, unreachable host, cap or deadline exceeded, truncated, wrong hash)."""


@dataclass(frozen=True)
class DownloadLimits:
    """Caps of one download: total bytes, overall seconds, and seconds without receiving anything."""

    max_bytes: int = 4 << 30
    deadline_s: float = 3600.0
    stall_timeout_s: float = 60.0

    def __post_init__(self):
        for name in ("max_bytes", "deadline_s", "stall_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"download limit {name} must be a positive number, got {value!r}")

    @classmethod
    def from_env(cls) -> DownloadLimits:
        """The defaults, overridden by $TRAINWRIGHT_DOWNLOAD_MAX_BYTES / _DEADLINE_S / _STALL_TIMEOUT_S."""
        values = {}
        for field_name, env, kind in (("max_bytes", MAX_BYTES_ENV, int), ("deadline_s", DEADLINE_ENV, float),
                                      ("stall_timeout_s", STALL_TIMEOUT_ENV, float)):
            raw = os.environ.get(env)
            if raw:
                try:
                    values[field_name] = kind(raw)
                except ValueError:
                    raise ValueError(f"${env} must be a positive {kind.__name__}, got {raw!r}") from None
        return cls(**values)


def sha256_of_file(path) -> str:
    """Hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def remove_stale_parts(folder) -> list[Path]:
    """Delete the ``.part`` files in ``folder`` whose downloading process is gone; return what was removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for part in folder.glob(f".*{PART_SUFFIX}"):
        if _is_stale(part):
            part.unlink(missing_ok=True)
            removed.append(part)
    return removed


def _is_stale(part: Path) -> bool:
    try:
        age = time.time() - part.stat().st_mtime
    except FileNotFoundError:
        return False
    match = _PART_PID.search(part.name)
    if match is None or age > _STALE_PART_AGE_S:
        return True
    return not _process_alive(int(match.group(1)))


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else (or cannot be asked): leave its file alone
    return True


def download_to_file(url: str, destination, *, sha256: str | None = None, limits: DownloadLimits | None = None,
                     verify: Callable[[Path], None] | None = None, hash_note: str = "") -> str:
    """Download ``url`` (http, https or file) to ``destination``; return the file's hex SHA-256.

    ``sha256``: the expected hash (hex, any case). ``verify(path)``: raises when the downloaded file is
    not usable (e.g. not a loadable checkpoint). ``limits``: defaults to `DownloadLimits.from_env()`.
    ``hash_note`` is appended to the hash-mismatch error (where the expected hash comes from, what to do).
    Nothing is written at ``destination`` unless every check passes; raises `DownloadError`.
    """
    limits = limits or DownloadLimits.from_env()
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(destination.parent)
    fd, part_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.{os.getpid()}.",
                                     suffix=PART_SUFFIX)
    part = Path(part_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _transfer(url, out, limits)
        if sha256 is not None and digest != sha256.lower():
            raise DownloadError(f"download of {url} failed its hash check: SHA-256 {digest}, expected "
                                f"{sha256.lower()}{hash_note}")
        if verify is not None:
            try:
                verify(part)
            except Exception as error:
                raise DownloadError(f"download of {url} is not usable: {error}") from error
        os.replace(part, destination)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return digest


def _transfer(url: str, out, limits: DownloadLimits) -> str:
    """Copy the body of ``url`` into the open file ``out`` under ``limits``; return its hex SHA-256."""
    deadline = time.monotonic() + limits.deadline_s
    response = _open(url, limits)
    digest = hashlib.sha256()
    received = 0
    with response:
        announced = _announced_size(response)
        if announced is not None and announced > limits.max_bytes:
            raise DownloadError(f"download of {url} refused: the server announces {announced} bytes, over the cap of "
                                f"{limits.max_bytes} bytes (${MAX_BYTES_ENV})")
        read = getattr(response, "read1", response.read)  # read1 returns after one receive: the deadline is checked
        while True:
            try:
                chunk = read(_CHUNK)
            except TimeoutError:
                raise DownloadError(f"download of {url} stalled: nothing received for {limits.stall_timeout_s:g} s "
                                    f"after {received} bytes (${STALL_TIMEOUT_ENV})") from None
            except (OSError, http.client.HTTPException) as error:
                raise DownloadError(f"download of {url} broke off after {received} bytes: {error!r}") from None
            if not chunk:
                break
            received += len(chunk)
            if received > limits.max_bytes:
                raise DownloadError(f"download of {url} exceeded the cap of {limits.max_bytes} bytes (${MAX_BYTES_ENV})")
            if time.monotonic() > deadline:
                raise DownloadError(f"download of {url} did not finish within {limits.deadline_s:g} s "
                                    f"({received} bytes received; ${DEADLINE_ENV})")
            out.write(chunk)
            digest.update(chunk)
    if announced is not None and received != announced:
        raise DownloadError(f"download of {url} is truncated: {received} of {announced} bytes")
    return digest.hexdigest()


def _open(url: str, limits: DownloadLimits):
    request = urllib.request.Request(url, headers={"User-Agent": f"trainwright/{__version__}"})
    try:
        return urllib.request.urlopen(request, timeout=limits.stall_timeout_s)
    except urllib.error.HTTPError as error:
        raise DownloadError(f"download of {url} failed: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise DownloadError(f"cannot reach {url}: {error.reason}") from None
    except TimeoutError:
        raise DownloadError(f"cannot reach {url}: no answer within {limits.stall_timeout_s:g} s") from None


def _announced_size(response) -> int | None:
    value = response.headers.get("Content-Length") if response.headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
