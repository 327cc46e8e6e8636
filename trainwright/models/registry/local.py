"""A model registry in a folder: ``<root>/<model name>/<version>/`` holds the files and their ``model.json``.

A version is written into a hidden staging folder beside it and renamed into place in one step, so readers see
a complete version or none, and a version that exists is never written again: two writers racing for the same
number both try the rename, one wins and the other takes the next number (or fails, for a version it named).
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trainwright.models.registry.names import check_name, inside, sha256_of

__all__ = ["ModelVersion", "LocalModelRegistry", "CARD_NAME", "default_registry_root", "verify_files"]

CARD_NAME = "model.json"
_CLAIM_ATTEMPTS = 100


@dataclass
class ModelVersion:
    """One stored version: its name, version, where it lives, and its model card (model.json)."""

    name: str
    version: str
    location: str
    card: dict


def default_registry_root() -> Path:
    """$TRAINWRIGHT_REGISTRY, else ./registry."""
    return Path(os.environ.get("TRAINWRIGHT_REGISTRY") or "registry")


def _version_key(version: str):
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def verify_files(folder: Path, card: Mapping, label: str) -> None:
    """Raise a ValueError naming the file when a file of the card is missing or its SHA-256 differs."""
    for file_name, facts in card.get("files", {}).items():
        path = folder / check_name("file name", file_name)
        if not path.is_file():
            raise ValueError(f"{label}: {file_name} is missing")
        if sha256_of(path) != facts["sha256"]:
            raise ValueError(f"{label}: {file_name} does not match its SHA-256 in {CARD_NAME} (corrupted or changed)")


class LocalModelRegistry:
    """Model versions stored under `root` (default: $TRAINWRIGHT_REGISTRY or ./registry)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_registry_root()
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"registry {self.root} is a file, not a directory")

    def __repr__(self) -> str:
        return f"LocalModelRegistry({str(self.root)!r})"

    def push(self, name: str, files: Mapping[str, str | os.PathLike] | list, card: Mapping,
             version: str | None = None) -> ModelVersion:
        """Store copies of `files` ({stored name: path}, or paths) with `card` as a new version; returns it.

        The card gets name, version, created (UTC) and files ({name: {sha256, bytes}}). `version` None takes
        the next integer; a version that exists raises FileExistsError (versions are never overwritten).
        """
        check_name("model name", name)
        if version is not None:
            check_name("version", version)
        files = files if isinstance(files, Mapping) else {Path(p).name: p for p in files}
        for stored, source in files.items():
            check_name("file name", stored)
            if stored == CARD_NAME:
                raise ValueError(f"file name {CARD_NAME} is reserved for the model card")
            if not Path(source).is_file():
                raise FileNotFoundError(f"file to store not found: {source}")
        model_dir = inside(self.root, name)
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
        try:
            facts = {}
            for stored, source in files.items():
                shutil.copyfile(source, staging / stored)
                facts[stored] = {"sha256": sha256_of(staging / stored), "bytes": (staging / stored).stat().st_size}
            full_card = {**dict(card), "name": name, "files": facts,
                         "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
            return self._claim(staging, model_dir, name, version, full_card)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _claim(self, staging: Path, model_dir: Path, name: str, version: str | None, card: dict) -> ModelVersion:
        """Rename `staging` to the version folder; a taken number moves on to the next one."""
        for _ in range(_CLAIM_ATTEMPTS):
            number = version if version is not None else str(self._next_number(name))
            card["version"] = number
            (staging / CARD_NAME).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
            os.chmod(staging, 0o755)
            target = model_dir / number
            try:
                _rename_no_replace(staging, target)
            except FileExistsError:
                if version is not None:
                    raise FileExistsError(f"model {name!r} version {version!r} already exists in {self.root}; versions "
                                          f"are never overwritten") from None
                continue
            return ModelVersion(name, number, str(target), card)
        raise RuntimeError(f"could not claim a version of {name!r} in {self.root} after {_CLAIM_ATTEMPTS} attempts")

    def _next_number(self, name: str) -> int:
        numbers = [int(v.version) for v in self.list(name) if v.version.isdigit()]
        taken = [int(p.name) for p in (self.root / name).iterdir() if p.name.isdigit()]
        return max(numbers + taken, default=0) + 1

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """Every stored version (of `name`), sorted by name then version."""
        if name is not None:
            check_name("model name", name)
        if not self.root.is_dir():
            return []
        names = [name] if name is not None else sorted(p.name for p in self.root.iterdir() if p.is_dir())
        found = []
        for model in names:
            model_dir = self.root / model
            if not model_dir.is_dir() or model.startswith("."):
                continue
            for folder in sorted(model_dir.iterdir(), key=lambda p: _version_key(p.name)):
                if not folder.name.startswith(".") and (folder / CARD_NAME).is_file():
                    found.append(ModelVersion(model, folder.name, str(folder), self._read_card(folder)))
        return found

    def _read_card(self, folder: Path) -> dict:
        try:
            return json.loads((folder / CARD_NAME).read_text())
        except ValueError as err:
            raise ValueError(f"{folder / CARD_NAME} is not valid JSON: {err}") from None

    def show(self, name: str, version: str | None = None) -> ModelVersion:
        """One version (the latest when `version` is None); FileNotFoundError naming what is missing."""
        versions = self.list(name)
        if version is not None:
            check_name("version", version)
            versions = [v for v in versions if v.version == version]
        if not versions:
            what = f"model {name!r}" + (f" version {version!r}" if version is not None else "")
            raise FileNotFoundError(f"{what} is not in the registry {self.root}")
        return versions[-1]

    def pull(self, name: str, version: str | None, destination: str | os.PathLike, overwrite: bool = False) -> Path:
        """Copy a version's files (and model.json) into `destination`, checking every SHA-256 first."""
        stored = self.show(name, version)
        source = Path(stored.location)
        verify_files(source, stored.card, f"{name} version {stored.version}")
        return copy_version_files(source, stored.card, Path(destination), overwrite)


def copy_version_files(source: Path, card: Mapping, destination: Path, overwrite: bool) -> Path:
    """Copy the card's files and model.json from `source` to `destination`; existing files need `overwrite`."""
    if destination.exists() and not destination.is_dir():
        raise NotADirectoryError(f"destination {destination} is a file, not a directory")
    names = [*card.get("files", {}), CARD_NAME]
    clashes = [n for n in names if (destination / n).exists()]
    if clashes and not overwrite:
        raise FileExistsError(f"{destination} already has {', '.join(clashes)}; choose an empty folder")
    destination.mkdir(parents=True, exist_ok=True)
    for file_name in names:
        fd, tmp = tempfile.mkstemp(prefix=f".{file_name}.", dir=destination)
        os.close(fd)
        try:
            shutil.copyfile(source / file_name, tmp)
            os.replace(tmp, destination / file_name)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return destination


def _rename_no_replace(source: Path, target: Path) -> None:
    """Rename a folder to `target`, raising FileExistsError when `target` exists (even as an empty folder)."""
    if target.exists():
        raise FileExistsError(target)
    try:
        os.rename(source, target)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(target) from None
        raise
