"""The weights cache: each URL downloaded once into torch.hub's folder, its SHA-256 kept in a manifest.

Trust on first use: the first download of a URL records the file's SHA-256 (``trainwright-manifest.json``
in the cache folder); every later use checks the cached file against it, and a new download that
differs from it (the file on the server changed) is refused. A hash pinned by the caller takes the
place of the recorded one. ``torch.hub.set_dir`` or ``$TORCH_HOME`` moves the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import urllib.parse
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from trainwright.logging.files import atomic_write
from trainwright.nn.hub.download import DownloadLimits, download_to_file, sha256_of_file

try:
    import fcntl
except ImportError:  # Windows: the manifest is still replaced atomically, just not serialised across processes
    fcntl = None

__all__ = ["MANIFEST_NAME", "HashManifest", "cache_file_name", "fetch_url", "weights_cache_dir"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "trainwright-manifest.json"


def weights_cache_dir() -> Path:
    """The folder of downloaded weights: ``torch.hub.get_dir()/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_file_name(url: str) -> str:
    """The cached file name of ``url``: its base name behind a tag of the whole URL (two URLs never collide)."""
    name = Path(urllib.parse.urlparse(url).path).name or "weights.pth"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:8]}-{name}"


class HashManifest:
    """The SHA-256 recorded for each URL downloaded into ``folder``: url -> {sha256, size, file, recorded}."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_NAME

    def get(self, url: str) -> dict | None:
        """The record of ``url``, or None."""
        return self._read().get(url)

    def record(self, url: str, sha256: str, path: Path) -> None:
        """Record (or replace) the hash of ``url``, whose file is ``path``."""
        entry = {"sha256": sha256, "size": path.stat().st_size, "file": path.name,
                 "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with self._locked():
            entries = self._read()
            entries[url] = entry
            text = json.dumps(entries, indent=1, sort_keys=True) + "\n"
            atomic_write(self.path, lambda f: f.write(text.encode()))

    def _read(self) -> dict:
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            logger.warning("weights manifest %s is unreadable (%s); its records are ignored", self.path, error)
            return {}
        return entries if isinstance(entries, dict) else {}

    @contextlib.contextmanager
    def _locked(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            yield
            return
        with open(self.folder / f".{MANIFEST_NAME}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def fetch_url(url: str, *, sha256: str | None = None, verify: Callable[[Path], None] | None = None,
              limits: DownloadLimits | None = None) -> Path:
    """The cached copy of ``url``, downloaded and verified on first use, hash-checked on every use.

    ``sha256`` pins the expected hash; without it the hash recorded at the first download is the
    reference. ``verify(path)`` must raise for a file that is not usable (checked before anything is
    cached). A cached file that fails its check is downloaded again. Raises `DownloadError`.
    """
    folder = weights_cache_dir()
    target = folder / cache_file_name(url)
    manifest = HashManifest(folder)
    record = manifest.get(url)
    expected = sha256.lower() if sha256 else (record or {}).get("sha256")
    if target.is_file():
        actual = sha256_of_file(target)
        if expected is None:  # cached by an older version or copied in by hand: check it, then trust it
            if verify is not None:
                verify(target)
            manifest.record(url, actual, target)
            logger.info("recorded SHA-256 %s of cached %s (%s)", actual, target, url)
            return target
        if actual == expected:
            return target
        logger.warning("cached %s has SHA-256 %s, expected %s; downloading %s again", target, actual, expected, url)
        target.unlink(missing_ok=True)
    note = "" if sha256 or record is None else (
        f" (recorded at its first download on {record.get('recorded', '?')}: the file on the server changed; if you "
        f"trust the new file, delete the entry of this URL from {manifest.path} and retry)")
    digest = download_to_file(url, target, sha256=expected, verify=verify, limits=limits, hash_note=note)
    manifest.record(url, digest, target)
    if not sha256 and record is None:
        logger.info("downloaded %s; recorded its SHA-256 %s in %s", url, digest, manifest.path)
    return target

