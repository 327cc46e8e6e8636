"""Checkpoint dicts the trainer writes (plain containers + tensors, `weights_only=True`-safe) and resume."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from trainwright._version import __version__

__all__ = ["plain", "capture_rng_state", "restore_rng_state", "build_checkpoint", "load_checkpoint"]


def plain(obj: Any) -> Any:
    """`obj` as plain containers (dict/list/str/int/float/bool/None); any other object becomes its repr."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if isinstance(obj, np.generic):
        return obj.item()
    return repr(obj)


def capture_rng_state() -> dict:
    """The torch (CPU and CUDA), numpy and python RNG states as tensors and plain containers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": plain(random.getstate()),
    }  # fmt: skip


def restore_rng_state(state: Mapping) -> None:
    """Inverse of `capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))  # fmt: skip
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _state_dict(model: nn.Module) -> dict:
    return getattr(model, "module", model).state_dict()


def build_checkpoint(
    *,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler,
    epoch: int,
    acc: float | None,
    best_metric: float | None,
    metrics: Mapping[str, float],
    ema=None,
    processing_params: Mapping | None = None,
    recipe: Mapping | None = None,
    extra: Mapping | None = None,
) -> dict:
    """The checkpoint dict; `epoch` is the number of finished epochs (the epoch a resume starts at)."""
    ckpt = {
        "net": _state_dict(net),
        "optimizer_state_dict": optimizer.state_dict(),
        "scaler_state_dict": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "acc": None if acc is None else float(acc),
        "best_metric": None if best_metric is None else float(best_metric),
        "metrics": plain(dict(metrics)),
        "trainwright_version": __version__,
        "rng_state": capture_rng_state(),
    }
    if ema is not None:
        ckpt["ema_net"] = ema.state_dict()
    if processing_params is not None:
        ckpt["processing_params"] = plain(dict(processing_params))
    if recipe is not None:
        ckpt["recipe"] = plain(dict(recipe))
    if extra:
        ckpt.update(extra)
    return ckpt


def load_checkpoint(path, device="cpu") -> dict:
    """Read a checkpoint written by the trainer (`weights_only=True`)."""
    return torch.load(path, map_location=device, weights_only=True)
