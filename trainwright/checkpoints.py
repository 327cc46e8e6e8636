"""Read checkpoints safely (path or URL), load them into models under a chosen strictness, and fetch
pretrained weights from a hash-checked registry.

A checkpoint is a dict with the model weights under ``net`` (and optionally ``ema_net``,
``optimizer_state_dict``, ``processing_params``, ...), the layout SuperGradients 3.x and the trainer write.
Files are read with ``torch.load(weights_only=True)``: plain containers and tensors only. A file that
needs a full unpickle is refused unless the caller passes ``allow_unsafe_pickle=True`` for a file it trusts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainwright.logging.files import atomic_torch_save, atomic_write
from trainwright.nn.checkpoint_keys import EMA_NET, NET, PROCESSING_PARAMS
from trainwright.nn.state_dict import (
    StrictLoad,
    WeightTransferReport,
    adapt_state_dict_to_fit_model_layer_names,
    adaptive_load_state_dict,
    extract_weights,
    raise_informative_runtime_error,
    state_dict_mismatch,
    transfer_weights,
)

__all__ = [
    "CorruptCheckpointError",
    "MissingPretrainedWeightsException",
    "PRETRAINED_WEIGHTS",
    "PretrainedWeights",
    "StrictLoad",
    "UnsafeCheckpointError",
    "WeightTransferReport",
    "adapt_state_dict_to_fit_model_layer_names",
    "adaptive_load_state_dict",
    "copy_ckpt_to_local_folder",
    "download_checkpoint",
    "load_checkpoint_to_model",
    "load_pretrained_weights",
    "load_pretrained_weights_local",
    "raise_informative_runtime_error",
    "read_ckpt_state_dict",
    "register_pretrained_weights",
    "transfer_weights",
]

logger = logging.getLogger(__name__)

_DOWNLOAD_TIMEOUT_S = 60.0


class MissingPretrainedWeightsException(Exception):
    """No pretrained weights are registered for the requested architecture and dataset."""

    def __init__(self, desc: str):
        self.desc = desc
        super().__init__(f"Missing pretrained weights: {desc}")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file needs a full unpickle (which can run arbitrary code) and was refused."""


class CorruptCheckpointError(ValueError):
    """The file is empty, truncated, not a checkpoint, or fails its hash check."""


# --------------------------------------------------------------------------------------------------------
# Reading


def read_ckpt_state_dict(ckpt_path, device: str | torch.device = "cpu", *, allow_unsafe_pickle: bool = False) -> dict:
    """Read a checkpoint from a local path or an ``http``, ``https`` or ``file`` URL onto ``device``.

    URLs are downloaded once into the torch hub cache (``torch.hub.get_dir()/checkpoints``). Only plain
    containers and tensors are unpickled unless ``allow_unsafe_pickle=True`` (trusted files only: a full
    unpickle executes whatever code the file names). Raises FileNotFoundError, CorruptCheckpointError or
    UnsafeCheckpointError, each naming the file.
    """
    path = _local_path_of(str(ckpt_path))
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        return torch.load(path, map_location=device, weights_only=not allow_unsafe_pickle)
    except pickle.UnpicklingError as error:
        if "global" not in str(error).lower():  # only a GLOBAL (a class or function to import) needs trust
            reason = [line.strip() for line in str(error).splitlines() if "nsupported" in line] or [str(error)[:200]]
            raise CorruptCheckpointError(
                f"checkpoint {path} could not be read: it is corrupt or not a torch checkpoint ({reason[0]})"
            ) from error
        details = [line.strip() for line in str(error).splitlines() if "nsupported" in line or "GLOBAL" in line]
        raise UnsafeCheckpointError(
            f"refused to read checkpoint {path}: it holds objects beyond tensors and plain containers "
            f"({'; '.join(details[:2]) or 'not a weights-only file'}). Rebuilding them means unpickling, which "
            "runs any code the file names, so a malicious file could take over this process. If (and only if) "
            "you trust where this file comes from, pass allow_unsafe_pickle=True."
        ) from None
    except Exception as error:  # a damaged file fails in many ways inside the unpickler
        if isinstance(error, RuntimeError) and "device" in str(error).lower():
            raise  # e.g. device="cuda" on a machine without one: not the file's fault
        raise CorruptCheckpointError(
            f"checkpoint {path} could not be read: it is truncated, corrupt or not a torch checkpoint "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else 'unexpected end'})"
        ) from error


def _local_path_of(location: str) -> Path:
    """A local path for a path or URL, downloading http(s) URLs into the hub cache."""
    scheme = urllib.parse.urlparse(location).scheme
    if scheme in ("http", "https"):
        name = Path(urllib.parse.urlparse(location).path).name or "checkpoint.pth"
        url_tag = hashlib.sha256(location.encode()).hexdigest()[:8]  # two URLs with one file name stay apart
        target = _hub_checkpoints_dir() / f"{url_tag}-{name}"
        if not target.is_file():
            download_checkpoint(location, target)
        return target
    if scheme == "file":
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(location).path))
    if len(scheme) > 1:  # one letter is a Windows drive
        raise ValueError(f"unsupported checkpoint URL scheme {scheme!r} in {location!r}: use a path, http(s):// or file://")
    return Path(location)


def _hub_checkpoints_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def download_checkpoint(url: str, destination, sha256: str | None = None) -> Path:
    """Download ``url`` to ``destination`` atomically; check the size announced by the server and the SHA-256.

    The bytes go to a temporary file beside the destination, moved into place only when complete and
    matching; on any failure the temporary file is removed, so the destination is never a partial file.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            expected_size = response.headers.get("Content-Length")
            received = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        if expected_size is not None and received != int(expected_size):
            raise CorruptCheckpointError(f"download of {url} is truncated: {received} of {expected_size} bytes")
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise CorruptCheckpointError(
                f"download of {url} failed its hash check: SHA-256 {digest.hexdigest()}, expected {sha256.lower()}"
            )
        os.replace(tmp_name, destination)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return destination


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def copy_ckpt_to_local_folder(
    local_ckpt_destination_dir,
    ckpt_filename: str,
    remote_ckpt_source_dir=None,
    path_src: str = "local",
    overwrite_local_ckpt: bool = False,
    load_weights_only: bool = False,
) -> str:
    """Copy ``remote_ckpt_source_dir/ckpt_filename`` to a local file and return its path.

    ``path_src``: ``"local"`` (a folder) or ``"url"`` (an http, https or file URL of the folder). The copy
    goes to ``local_ckpt_destination_dir`` when ``overwrite_local_ckpt`` is True, else to a fresh temporary
    folder, so an existing local checkpoint is never replaced without asking. With ``load_weights_only``
    the copy keeps only the ``net`` entry. Writes are atomic.
    """
    if path_src not in ("local", "url"):
        raise ValueError(f"path_src must be 'local' or 'url', got {path_src!r} (download other sources first)")
    target_dir = Path(local_ckpt_destination_dir) if overwrite_local_ckpt else Path(tempfile.mkdtemp(prefix="ckpt_"))
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / Path(ckpt_filename).name
    if path_src == "url":
        if remote_ckpt_source_dir is None:
            raise ValueError("path_src='url' needs remote_ckpt_source_dir, the URL of the folder")
        source = _local_path_of(remote_ckpt_source_dir.rstrip("/") + "/" + ckpt_filename)
    else:
        source = Path(remote_ckpt_source_dir or "") / ckpt_filename
        if not source.is_file():
            raise FileNotFoundError(f"checkpoint not found: {source}")
    if load_weights_only:
        checkpoint = read_ckpt_state_dict(source)
        atomic_torch_save({NET: extract_weights(checkpoint, source)}, target)
    elif source.resolve() != target.resolve():
        atomic_write(target, lambda out: _copy_file_into(source, out))
    return str(target)


def _copy_file_into(source: Path, out) -> None:
    with open(source, "rb") as src:
        shutil.copyfileobj(src, out)


# --------------------------------------------------------------------------------------------------------
# Loading checkpoints and pretrained weights into models


def _backbone_of(net: nn.Module) -> tuple[str, nn.Module]:
    for name in ("backbone", "_backbone"):
        module = getattr(net, name, None)
        if isinstance(module, nn.Module):
            return name, module
    raise ValueError(f"load_backbone=True needs a model with a `backbone` or `_backbone` submodule; {type(net).__name__} has neither")


def load_checkpoint_to_model(
    net: nn.Module,
    ckpt_local_path,
    load_backbone: bool = False,
    strict=StrictLoad.NO_KEY_MATCHING,
    load_weights_only: bool = False,
    load_ema_as_net: bool = False,
    load_processing_params: bool = False,
    *,
    allow_unsafe_pickle: bool = False,
) -> dict:
    """Load the checkpoint at ``ckpt_local_path`` (path or URL) into ``net``; return the checkpoint dict.

    - ``load_ema_as_net``: load ``ema_net`` (error when the file has none) instead of ``net``.
    - ``load_backbone``: load into the model's ``backbone`` submodule (else ``_backbone``) the checkpoint
      keys under that prefix (``_backbone.x`` -> ``x``); a checkpoint with none is taken as a backbone's own.
    - ``load_processing_params``: call ``net.set_dataset_processing_params(**checkpoint["processing_params"])``.
    - ``load_weights_only`` (or ``load_backbone``): the returned dict holds ``net`` only.
    A file holding a bare state dict (no ``net`` entry, only tensors) is accepted as the weights.
    """
    checkpoint = read_ckpt_state_dict(ckpt_local_path, allow_unsafe_pickle=allow_unsafe_pickle)
    source = str(ckpt_local_path)
    key = NET
    if load_ema_as_net:
        if not isinstance(checkpoint, Mapping) or EMA_NET not in checkpoint:
            raise ValueError(
                f"load_ema_as_net=True but checkpoint {source} has no 'ema_net' entry (EMA weights); "
                "load it with load_ema_as_net=False"
            )
        key = EMA_NET
    weights = extract_weights(checkpoint, source, key)
    if load_backbone:
        name, backbone = _backbone_of(net)
        prefix = name + "."
        backbone_weights = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        adaptive_load_state_dict(backbone, backbone_weights or weights, strict, source=f"{source} ({name})")
    else:
        adaptive_load_state_dict(net, weights, strict, source=source)
    if load_processing_params:
        _apply_processing_params(net, checkpoint, source)
    if load_weights_only or load_backbone or weights is checkpoint:
        return {NET: weights}
    return {**checkpoint, NET: weights}


def _apply_processing_params(net: nn.Module, checkpoint: Mapping, source: str) -> None:
    params = checkpoint.get(PROCESSING_PARAMS)
    if params is None:
        logger.warning("load_processing_params=True but checkpoint %s has no processing_params", source)
        return
    setter = getattr(net, "set_dataset_processing_params", None)
    if setter is None:
        raise TypeError(f"{type(net).__name__} has no set_dataset_processing_params(); load {source} without load_processing_params")
    setter(**params)


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a set of pretrained weights is downloaded from and its SHA-256 (hex)."""

    url: str
    sha256: str


# (architecture, dataset) -> PretrainedWeights; add entries with register_pretrained_weights().
PRETRAINED_WEIGHTS: dict[tuple[str, str], PretrainedWeights] = {}


def register_pretrained_weights(architecture: str, dataset: str, url: str, sha256: str, *, overwrite: bool = False):
    """Register the weights of ``architecture`` pretrained on ``dataset`` (an http(s) or file URL + SHA-256)."""
    sha256 = sha256.lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    key = (architecture, dataset)
    if key in PRETRAINED_WEIGHTS and not overwrite and PRETRAINED_WEIGHTS[key] != PretrainedWeights(url, sha256):
        raise ValueError(f"pretrained weights {key} are already registered ({PRETRAINED_WEIGHTS[key].url}); pass overwrite=True")
    PRETRAINED_WEIGHTS[key] = PretrainedWeights(url, sha256)


def _fetch_pretrained(entry: PretrainedWeights) -> Path:
    """The cached file of ``entry``, downloaded (again) unless a copy with the right hash is there."""
    name = Path(urllib.parse.urlparse(entry.url).path).name or "weights.pth"
    target = _hub_checkpoints_dir() / f"{entry.sha256[:12]}-{name}"
    if target.is_file():
        if _sha256_of(target) == entry.sha256:
            return target
        logger.warning("cached %s fails its hash check; downloading it again", target)
    return download_checkpoint(entry.url, target, sha256=entry.sha256)


def load_pretrained_weights(model: nn.Module, architecture: str, pretrained_weights: str) -> WeightTransferReport:
    """Load the registered weights of ``architecture`` pretrained on ``pretrained_weights`` (e.g. ``"coco"``).

    Downloads into the torch hub cache with the SHA-256 checked. When the model differs from the one
    trained (e.g. another number of classes), the tensors that fit load and the rest are reported.
    """
    entry = PRETRAINED_WEIGHTS.get((architecture, pretrained_weights))
    if entry is None:
        known = sorted(d for a, d in PRETRAINED_WEIGHTS if a == architecture)
        raise MissingPretrainedWeightsException(
            f"no weights {pretrained_weights!r} registered for architecture {architecture!r} "
            f"(registered for it: {known or 'none'}); use load_pretrained_weights_local() with a file"
        )
    return _load_pretrained_file(model, architecture, _fetch_pretrained(entry))


def load_pretrained_weights_local(model: nn.Module, architecture: str, pretrained_weights) -> WeightTransferReport:
    """Like `load_pretrained_weights` from the local checkpoint file ``pretrained_weights``."""
    return _load_pretrained_file(model, architecture, pretrained_weights)


def _load_pretrained_file(model: nn.Module, architecture: str, path) -> WeightTransferReport:
    checkpoint = read_ckpt_state_dict(path)
    # EMA weights, when shipped, are the ones that were evaluated.
    weights = extract_weights(checkpoint, path, EMA_NET if EMA_NET in checkpoint else NET)
    own = model.state_dict()
    missing, unexpected, shapes = state_dict_mismatch(own, weights)
    if (missing or unexpected or shapes) and set(weights) & set(own):
        return transfer_weights(model, weights)
    adaptive_load_state_dict(model, weights, StrictLoad.NO_KEY_MATCHING, source=f"{path} ({architecture})")
    return WeightTransferReport(loaded=list(own))
