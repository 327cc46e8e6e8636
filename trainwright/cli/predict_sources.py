"""What `trainwright predict` runs on: image and video files named directly, in folders, or by glob patterns.

Every input gets a unique output stem (its file stem with characters outside letters, digits, `.`, `_`, `-`
and space replaced by `_`; `_2`, `_3`, ... on a clash, compared case-insensitively), so that no output
overwrites another and every output name stays inside the output folder.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "Source", "collect_sources", "unique_stems"]

IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".avi", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".webm", ".wmv")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Source:
    """One input file: its path, "image" or "video", and the unique stem of its outputs."""

    path: str
    kind: str
    stem: str


def _kind(path: str) -> str | None:
    suffix = Path(path).suffix.lower()
    return "image" if suffix in IMAGE_EXTENSIONS else "video" if suffix in VIDEO_EXTENSIONS else None


def _expand(argument: str) -> list[str] | None:
    """Files an argument names: itself, a folder's files (sorted, not recursive), or a glob's matches (sorted)."""
    if os.path.isdir(argument):
        return sorted(str(p) for p in Path(argument).iterdir() if p.is_file())
    if os.path.isfile(argument):
        return [argument]
    if _GLOB_CHARS.search(argument):
        matches = sorted(p for p in glob.glob(argument, recursive=True) if os.path.isfile(p))
        return matches or None
    return None


def collect_sources(arguments: list[str]) -> tuple[list[Source], list[str]]:
    """The image and video files the arguments name (each once, in order) and the other files skipped.

    Raises FileNotFoundError naming every argument that is neither a file, a folder nor a glob with a match.
    """
    files, missing = [], []
    for argument in arguments:
        expanded = _expand(argument)
        if expanded is None:
            missing.append(argument)
        else:
            files += expanded
    if missing:
        raise FileNotFoundError(f"no such image, video, folder or matching glob: {', '.join(missing)}")
    seen, media, skipped = set(), [], []
    for path in files:
        key = os.path.realpath(path)
        if key in seen:
            continue
        seen.add(key)
        (media if _kind(path) else skipped).append(path)
    stems = unique_stems(media)
    return [Source(path, _kind(path), stem) for path, stem in zip(media, stems)], skipped


def _safe_stem(path: str) -> str:
    stem = re.sub(r"[^\w.\- ]", "_", Path(path).stem)
    return stem if stem.strip(".") else f"_{stem}"  # never "", "." or ".."


def unique_stems(paths: list[str]) -> list[str]:
    """A safe stem per path; a stem seen before (ignoring case) gets `_2`, `_3`, ..."""
    stems: list[str] = []
    taken: set[str] = set()
    for path in paths:
        base = _safe_stem(path)
        stem, n = base, 1
        while stem.lower() in taken:
            n += 1
            stem = f"{base}_{n}"
        taken.add(stem.lower())
        stems.append(stem)
    return stems
