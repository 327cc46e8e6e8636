"""The thread pool on which the post-processing modules run per-image NMS concurrently on CPU.

Starting threads costs about as much as NMS on a small image, so one pool serves every call. Its lifetime is
explicit: created on first use with as many threads as torch uses (re-created when that number changes),
forgotten in a forked child (a DataLoader worker must not use its parent's threads), shut down by
`shutdown_nms_threads()` or at interpreter exit.
"""

from __future__ import annotations

import atexit
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
            _pool, _pool_size = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trainwright-nms"), workers
        return _pool


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
