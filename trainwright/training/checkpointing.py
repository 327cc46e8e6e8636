"""The checkpoints of a run: built from the state and every stateful callback, written through the sg_logger,
read back for resume. Only plain containers and tensors, so `torch.load(..., weights_only=True)` reads them."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import torch

from trainwright._version import __version__
from trainwright.checkpoints import read_ckpt_state_dict
from trainwright.nn.checkpoint_keys import (
    ACC,
    CALLBACK_STATES,
    INTERRUPTED_AT,
    LATEST_CHECKPOINT,
    METRICS,
    NET,
    PROCESSING_PARAMS,
    RECIPE,
    RNG_STATE,
    VERSION,
)
from trainwright.training.file_names import experiment_file
from trainwright.training.params import resume_requested
from trainwright.training.state import TrainState

__all__ = ["Checkpointer", "Stateful", "plain", "capture_rng_state", "restore_rng_state", "read_resume_checkpoint"]

logger = logging.getLogger("trainwright")


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


class Stateful(Protocol):
    """Anything whose state goes into the checkpoint: a callback with `state_dict()` / `load_state_dict()`."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state_dict: dict) -> None: ...


class Checkpointer:
    """Builds the checkpoints of a run and writes them through the state's sg_logger (when `enabled`: rank 0).

    A checkpoint is `state.state_dict()` (net, ema_net, optimizer, scaler, epoch, best_metric) plus the epoch's
    metrics and `acc`, the processing params, the resolved training params (`recipe`), the RNG states and, under
    `callback_states`, the `state_dict()` of everything added with `add_checkpointable`.
    """

    def __init__(self, state: TrainState, enabled: bool):
        self.state = state
        self.enabled = enabled
        self.checkpointables: dict[str, Stateful] = {}

    def add_checkpointable(self, key: str, obj: Stateful) -> None:
        """Save `obj.state_dict()` under `callback_states[key]` and restore it on resume."""
        if key in self.checkpointables:
            raise ValueError(f"two callbacks save their state under the same key {key!r}")
        self.checkpointables[key] = obj

    def build(self, metrics: Mapping[str, float], extra: Mapping | None = None) -> dict:
        """The checkpoint of the current state; `metrics` are the validation results it is written after."""
        state = self.state
        watched = state.metric_to_watch
        checkpoint = state.state_dict()
        checkpoint.update({
            ACC: float(metrics[watched]) if metrics and watched in metrics else None,
            METRICS: plain(dict(metrics)),
            RECIPE: plain(state.params.to_dict(include_schema=False)),
            VERSION: __version__,
            RNG_STATE: capture_rng_state(),
            CALLBACK_STATES: {key: obj.state_dict() for key, obj in self.checkpointables.items()},
        })  # fmt: skip
        if state.processing_params is not None:
            checkpoint[PROCESSING_PARAMS] = plain(dict(state.processing_params))
        checkpoint.update(extra or {})
        return checkpoint

    def save(self, name: str, checkpoint: dict) -> None:
        """Write `checkpoint` as the file `name` of the experiment directory (atomically, by the sg_logger)."""
        if self.enabled:
            self.state.sg_logger.add_checkpoint(name, checkpoint, global_step=self.state.epoch)

    def save_weights(self, name: str, checkpoint: dict, weights: dict) -> None:
        """`checkpoint` with `weights` as its `net` (e.g. the EMA or averaged weights)."""
        self.save(name, {**checkpoint, NET: weights})

    def restore(self, path: str, checkpoint: Mapping) -> None:
        """Load a checkpoint written by `build` into the state and the checkpointables; the RNG states last."""
        self.state.load_state_dict(checkpoint)
        self.state.resumed_from = path
        states = checkpoint.get(CALLBACK_STATES) or {}
        for key, obj in self.checkpointables.items():
            if key in states:
                obj.load_state_dict(states[key])
        if INTERRUPTED_AT in checkpoint:
            logger.warning("Resuming from a checkpoint saved by an interruption %s: epoch %d restarts from its "
                           "beginning with the weights of the interruption", checkpoint[INTERRUPTED_AT],
                           self.state.epochs_done)  # fmt: skip
        logger.info("Resumed from %s at epoch %d (best metric %s)", path, self.state.epochs_done,
                    self.state.best_metric)  # fmt: skip
        if checkpoint.get(RNG_STATE) is not None:  # last, so nothing above shifts the restored streams
            restore_rng_state(checkpoint[RNG_STATE])


def read_resume_checkpoint(params, experiment_dir: str) -> tuple[str, dict] | None:
    """(path, checkpoint) to resume from when `params` ask for it (resume or resume_path), else None.

    Without resume_path the file is `ckpt_name` (ckpt_latest.pth by default) of the experiment directory.

    Read before anything of the run is built or written, so a missing or unreadable file changes nothing.
    """
    if not resume_requested(params):
        return None
    path = params.resume_path or experiment_file(experiment_dir, params.get("ckpt_name", LATEST_CHECKPOINT),
                                                 "training_params.ckpt_name")  # fmt: skip
    if not os.path.isfile(path):
        raise FileNotFoundError(f"cannot resume: no checkpoint at {path!r}")
    return path, read_ckpt_state_dict(path)
