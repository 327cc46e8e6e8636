"""The device a run asks for, checked against the machine before anything is built."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device) -> torch.device:
    """`device` ("cpu", "cuda", "cuda:1", a torch.device, or None for CUDA when available) as a torch.device.

    A malformed name, or a device this machine lacks (`cuda` without a GPU, `cuda:3` with two), is a ValueError
    naming it.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"device={device!r} is not a device name: use cpu, cuda, cuda:N or null "
                         f"({str(error).splitlines()[0]})") from None  # fmt: skip
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}, but no CUDA GPU is available on this machine: use device=cpu "
                             "(or null: the GPU when there is one)")  # fmt: skip
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device={device!r}, but this machine has {count} CUDA GPU(s): cuda:0 to cuda:{count - 1}")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r}, but MPS is not available on this machine: use device=cpu")
    return resolved
