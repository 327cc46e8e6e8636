"""The runtime environment: the installed torch version, and seeding every random generator at once."""

from __future__ import annotations

import random
import re

import numpy as np
import torch

from trainwright.distributed import get_local_rank

__all__ = ["torch_version_is_greater_or_equal", "random_seed"]


def _major_minor(version: str) -> tuple[int, int]:
    """'2.5.1+cu121' -> (2, 5)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"cannot read a major.minor version from {version!r}")
    return int(match.group(1)), int(match.group(2))


def torch_version_is_greater_or_equal(major: int, minor: int) -> bool:
    """True when the installed torch's (major, minor) is at least (major, minor); patch and local tags are ignored."""
    return _major_minor(torch.__version__) >= (int(major), int(minor))


def random_seed(is_ddp: bool, device: torch.device | str, seed: int) -> None:
    """Seed python's `random`, numpy and torch (every device) with ``seed + rank``.

    Under DDP each process gets its own stream: rank is the index of ``device`` ("cuda:3" -> 3), or the
    local rank of the process when the device has no index (e.g. "cpu" under a gloo launch). Without DDP
    the rank is 0. numpy only takes 32-bit seeds, so it gets ``(seed + rank) % 2**32``.

    Args:
        is_ddp: whether this process is one of several distributed processes.
        device: this process's device ("cpu", "cuda", "cuda:<index>" or a torch.device).
        seed: the base seed, an int.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    rank = 0
    if is_ddp:
        index = torch.device(device).index
        rank = index if index is not None else get_local_rank()
    value = int(seed) + rank
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)
