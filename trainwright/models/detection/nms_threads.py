"""The thread pool on which the post-processing modules run per-image NMS concurrently on CPU.

Starting threads costs about as much as NMS on a small image, so one pool serves every call. Its lifetime is
explicit: created on first use with as many threads as torch uses (re-created when that number changes),
forgotten in a forked child (a DataLoader worker must not use its parent's threads), shut down by
`shutdown_nms_threads()` or at interpreter exit.

The pool's threads run torch ops on one OpenMP thread each. Otherwise the first large op in each of them starts an
OpenMP team of its own; GNU OpenMP then counts more threads than CPUs and, for the rest of the process, cuts the
spin-wait of every team to 100 spins, so that the training step's threads sleep and wake in system calls at
each parallel region. Measured on 2 cores: after the first validation, training epochs took 1.6x as long,
with 25,000 context switches per second instead of 500.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["nms_threads", "shutdown_nms_threads"]

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def nms_threads() -> ThreadPoolExecutor | None:
    """The shared pool for `non_max_suppression(..., executor=...)`; None when torch runs on one thread."""
    global _pool, _pool_size
    workers = min(torch.get_num_threads(), os.cpu_count() or 1)
    if workers < 2:
        return None
    with _lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trainwright-nms",
                                       initializer=_one_openmp_thread)
            _pool_size = workers
        return _pool


@functools.cache
def _openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime loaded in this process (GNU, LLVM or Intel), from its memory map; None if none is found."""
    try:
        with open("/proc/self/maps") as maps:
            paths = [line.split()[-1] for line in maps if line.rstrip().endswith((".so", ".so.1", ".so.5"))]
    except OSError:  # no /proc (macOS, Windows)
        return None
    names = ("libgomp", "libomp", "libiomp5")
    runtime = next((p for p in paths if os.path.basename(p).startswith(names)), None)
    return ctypes.CDLL(runtime) if runtime is not None else None


def _one_openmp_thread() -> None:
    """Pool thread start: torch ops of this thread run on it alone (why: the module's docstring)."""
    torch.get_num_threads()  # torch sets a thread's OpenMP thread count on its first use; let it happen first
    runtime = _openmp_runtime()
    if runtime is not None:
        runtime.omp_set_num_threads(1)  # this thread's setting only; torch.set_num_threads would change all


def shutdown_nms_threads() -> None:
    """Stop the pool's threads (after the tasks already given to it); the next `nms_threads()` starts a new one."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True)


def _forget_in_child() -> None:
    # The parent's threads do not exist in a forked child: drop the pool without touching it.
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


atexit.register(shutdown_nms_threads)
os.register_at_fork(after_in_child=_forget_in_child)
