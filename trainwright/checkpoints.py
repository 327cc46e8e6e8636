"""Read checkpoints safely (path or URL), load them into models under a chosen strictness, and load the
pretrained weights of the registry (`trainwright.nn.hub`: downloads, the hash-checked cache, the entries).

A checkpoint is a dict with the model weights under ``net`` (and optionally ``ema_net``,
``optimizer_state_dict``, ``processing_params``, ...), the layout SuperGradients 3.x and the trainer write.
Files are read with ``torch.load(weights_only=True)``: plain containers and tensors only. A file that
needs a full unpickle is refused unless the caller passes ``allow_unsafe_pickle=True`` for a file it trusts.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from trainwright.logging.files import atomic_torch_save, atomic_write
from trainwright.nn.checkpoint_keys import EMA_NET, NET, PROCESSING_PARAMS
from trainwright.nn.hub import (
    PRETRAINED_WEIGHTS,
    MissingPretrainedWeightsException,
    PretrainedWeights,
    download_to_file,
    fetch_pretrained_weights,
    fetch_url,
    register_pretrained_weights,
    state_dict_adapter,
)
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
    "verify_checkpoint_file",
]

logger = logging.getLogger(__name__)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file needs a full unpickle (which can run arbitrary code) and was refused."""


class CorruptCheckpointError(ValueError):
    """The file is empty, truncated, not a checkpoint, or fails its hash check."""


# --------------------------------------------------------------------------------------------------------
# Reading


def read_ckpt_state_dict(ckpt_path, device: str | torch.device = "cpu", *, allow_unsafe_pickle: bool = False) -> dict:
    """Read a checkpoint from a local path or an ``http``, ``https`` or ``file`` URL onto ``device``.

    URLs are downloaded once into the weights cache (``torch.hub.get_dir()/checkpoints``, see
    `trainwright.nn.hub.fetch_url`: verified before it is kept, hash-checked on every use). Only plain
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
    """A local path for a path or URL, downloading http(s) URLs into the weights cache."""
    scheme = urllib.parse.urlparse(location).scheme
    if scheme in ("http", "https"):
        return fetch_url(location, verify=verify_checkpoint_file)
    if scheme == "file":
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(location).path))
    if len(scheme) > 1:  # one letter is a Windows drive
        raise ValueError(f"unsupported checkpoint URL scheme {scheme!r} in {location!r}: use a path, http(s):// or file://")
    return Path(location)


def verify_checkpoint_file(path) -> None:
    """Raise CorruptCheckpointError unless ``path`` is a complete torch checkpoint (one needing trust counts)."""
    try:
        read_ckpt_state_dict(path)
    except UnsafeCheckpointError:
        pass  # complete; reading it is the user's explicit decision (allow_unsafe_pickle)


def download_checkpoint(url: str, destination, sha256: str | None = None) -> Path:
    """Download the checkpoint at ``url`` to ``destination`` atomically, verified before it is moved into place.

    Checked: the size the server announced, the size cap and deadline (`trainwright.nn.hub.DownloadLimits`),
    the SHA-256 when given, and that the file reads as a checkpoint. On any failure nothing is left at
    ``destination`` and `trainwright.nn.hub.DownloadError` names the URL.
    """
    download_to_file(url, destination, sha256=sha256, verify=verify_checkpoint_file)
    return Path(destination)


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


def load_pretrained_weights(model: nn.Module, architecture: str, pretrained_weights: str) -> WeightTransferReport:
    """Load the registered weights of ``architecture`` pretrained on ``pretrained_weights`` (e.g. ``"coco"``).

    Downloads once into the weights cache, SHA-256 checked on every use (pinned, or recorded at the first
    download). When the model differs from the one trained (e.g. another number of classes), the tensors
    that fit load and the rest are reported.
    """
    path = fetch_pretrained_weights(architecture, pretrained_weights, verify=verify_checkpoint_file)
    return _load_pretrained_file(model, architecture, path)


def load_pretrained_weights_local(model: nn.Module, architecture: str, pretrained_weights) -> WeightTransferReport:
    """Like `load_pretrained_weights` from the local checkpoint file ``pretrained_weights``."""
    return _load_pretrained_file(model, architecture, pretrained_weights)


def _load_pretrained_file(model: nn.Module, architecture: str, path) -> WeightTransferReport:
    checkpoint = read_ckpt_state_dict(path)
    # EMA weights, when shipped, are the ones that were evaluated.
    weights = extract_weights(checkpoint, path, EMA_NET if EMA_NET in checkpoint else NET)
    adapter = state_dict_adapter(architecture)  # a published layout that differs from trainwright's
    if adapter is not None:
        weights = adapter(weights)
    own = model.state_dict()
    missing, unexpected, shapes = state_dict_mismatch(own, weights)
    if (missing or unexpected or shapes) and set(weights) & set(own):
        return transfer_weights(model, weights)
    adaptive_load_state_dict(model, weights, StrictLoad.NO_KEY_MATCHING, source=f"{path} ({architecture})")
    return WeightTransferReport(loaded=list(own))
