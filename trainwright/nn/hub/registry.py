"""Registry of published pretrained weights, (architecture, dataset) -> where to download them, and of the
adapters that bring an architecture's published state-dict layout to trainwright's."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from trainwright.nn.hub.cache import fetch_url
from trainwright.nn.hub.download import DownloadError

__all__ = [
    "MissingPretrainedWeightsException",
    "PRETRAINED_NUM_CLASSES",
    "PRETRAINED_WEIGHTS",
    "PretrainedWeights",
    "fetch_pretrained_weights",
    "pretrained_weights_entry",
    "register_pretrained_weights",
    "register_state_dict_adapter",
    "state_dict_adapter",
]

# Classes predicted by weights pretrained on each dataset (the model is built with this many, then its head replaced).
PRETRAINED_NUM_CLASSES = {"imagenet": 1000, "imagenet21k": 21843, "coco_segmentation_subclass": 21,
                          "cityscapes": 19, "coco": 80, "coco_pose": 17, "cifar10": 10}

LOCAL_FILE_HINT = ("to use a copy you have, pass checkpoint_path=FILE to trainwright.models.get "
                   "(recipe key model.checkpoint_path=FILE)")

_SHA256 = re.compile(r"[0-9a-f]{64}")


class MissingPretrainedWeightsException(ValueError):
    """No pretrained weights are registered for the requested architecture and dataset (a ValueError: bad input)."""

    def __init__(self, desc: str):
        self.desc = desc
        super().__init__(f"Missing pretrained weights: {desc}")


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a set of pretrained weights is downloaded from, its SHA-256 when known, and its class count."""

    url: str
    sha256: str | None = None
    num_classes: int | None = None


# (architecture, dataset) -> PretrainedWeights; add entries with register_pretrained_weights().
PRETRAINED_WEIGHTS: dict[tuple[str, str], PretrainedWeights] = {}

# architecture -> function(state_dict) -> state_dict in trainwright's layout (published files of another layout).
STATE_DICT_ADAPTERS: dict[str, Callable[[Mapping], dict]] = {}


def register_pretrained_weights(architecture: str, dataset: str, url: str, sha256: str | None = None, *,
                                num_classes: int | None = None, overwrite: bool = False) -> PretrainedWeights:
    """Register the weights of ``architecture`` pretrained on ``dataset``: an http(s) or file URL.

    ``sha256`` (64 hex digits) pins the file's hash; without it the hash is recorded at the first download
    and checked on every later use (trust on first use). ``num_classes`` defaults to the dataset's
    (`PRETRAINED_NUM_CLASSES`).
    """
    if urllib.parse.urlparse(url).scheme not in ("http", "https", "file"):
        raise ValueError(f"pretrained weights URL must be http(s):// or file://, got {url!r}")
    if sha256 is not None:
        sha256 = sha256.lower()
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    num_classes = num_classes if num_classes is not None else PRETRAINED_NUM_CLASSES.get(dataset)
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    entry = PretrainedWeights(url, sha256, num_classes)
    key = (architecture, dataset)
    if key in PRETRAINED_WEIGHTS and not overwrite and PRETRAINED_WEIGHTS[key] != entry:
        raise ValueError(f"pretrained weights {key} are already registered ({PRETRAINED_WEIGHTS[key].url}); pass overwrite=True")
    PRETRAINED_WEIGHTS[key] = entry
    return entry


def register_state_dict_adapter(architecture: str, adapter: Callable[[Mapping], dict]) -> None:
    """Convert the published weights of ``architecture`` with ``adapter(state_dict) -> state_dict`` before loading."""
    STATE_DICT_ADAPTERS[architecture] = adapter


def state_dict_adapter(architecture: str) -> Callable[[Mapping], dict] | None:
    """The adapter registered for ``architecture``, or None."""
    return STATE_DICT_ADAPTERS.get(architecture)


def pretrained_weights_entry(architecture: str, dataset: str) -> PretrainedWeights:
    """The registered entry; raises `MissingPretrainedWeightsException` listing what is registered."""
    entry = PRETRAINED_WEIGHTS.get((architecture, dataset))
    if entry is not None:
        return entry
    for_arch = sorted(d for a, d in PRETRAINED_WEIGHTS if a == architecture)
    for_dataset = sorted(a for a, d in PRETRAINED_WEIGHTS if d == dataset)
    raise MissingPretrainedWeightsException(
        f"no weights {dataset!r} registered for architecture {architecture!r} (registered for it: "
        f"{', '.join(map(repr, for_arch)) or 'none'}; architectures with {dataset!r} weights: "
        f"{', '.join(for_dataset) or 'none'}); load a file with checkpoint_path= or load_pretrained_weights_local()"
    )


def fetch_pretrained_weights(architecture: str, dataset: str, verify: Callable[[Path], None] | None = None) -> Path:
    """The local file of the registered weights, downloaded once into the cache and hash-checked on each use."""
    entry = pretrained_weights_entry(architecture, dataset)
    try:
        return fetch_url(entry.url, sha256=entry.sha256, verify=verify)
    except DownloadError as error:
        raise DownloadError(f"pretrained weights {architecture}/{dataset}: {error}; {LOCAL_FILE_HINT}") from error
