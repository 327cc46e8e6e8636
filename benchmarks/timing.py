"""Timing helpers shared by the benchmarks: best-of-N wall times, run in turns so machine noise hits all alike."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time in seconds of each function over `repeats` rounds, one call of each per round."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time in seconds of `fn` over `repeats` calls."""
    return best_interleaved({"fn": fn}, repeats)["fn"]
