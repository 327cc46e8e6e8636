"""Process settings that make CPU training faster: denormal flushing and keeping freed memory for reuse.

A training step on CPU frees and allocates the same large activation tensors every step. glibc's malloc serves
blocks over its mmap threshold (at most 32 MiB) with fresh `mmap` pages and unmaps them on free, so every step
pays a page fault per 4 KiB touched: measured on YOLOX-S at 640, batch 8, 1.1-1.8 s of system CPU per 9-10 s
step (280k-600k minor faults), none with the setting below. Keeping freed memory in the heap makes the next
step reuse it. The price is a larger resident size: up to `KEPT_FREE_BYTES` of free memory stay with the
process. Loader workers forked afterwards inherit the setting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

import torch

__all__ = ["KEPT_FREE_BYTES", "apply_cpu_speed_settings", "flush_denormals", "keep_freed_memory"]

KEPT_FREE_BYTES = 1 << 30  # free memory at the top of the heap kept rather than given back to the system

# mallopt parameters of glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def flush_denormals() -> bool:
    """Flush denormal floats to zero (CPU kernels slow down 10x and more on them); False where unsupported."""
    return torch.set_flush_denormal(True)


@functools.cache
def keep_freed_memory() -> bool:
    """Serve every allocation from the heap and keep up to KEPT_FREE_BYTES freed there; False without glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success, 0 on a refused value.
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_BYTES))


def apply_cpu_speed_settings(flush_denormal: bool, reuse_memory: bool) -> dict[str, bool]:
    """Apply the settings asked for; returns which of them took effect."""
    return {"flush_denormal": flush_denormal and flush_denormals(),
            "cpu_memory_reuse": reuse_memory and keep_freed_memory()}
