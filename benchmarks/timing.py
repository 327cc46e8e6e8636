"""Timing helpers shared by the benchmarks: best-of-N wall times, run in turns so machine noise hits all alike."""

from __future__ import annotations

import statistics
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


def median_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                       calls: int = 2) -> dict[str, float]:
    """Median over `repeats` rounds of the best of `calls` back-to-back calls of each function (in milliseconds),
    one turn of each per round after `warmup` such rounds: a change of load on a shared machine hits every
    function alike, and the first call of a turn, which wakes the function's threads and pays for its
    predecessor's spinning threads and evicted caches, does not decide its time alone."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            best = float("inf")
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - start)
            times[name].append(best * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def cpu_description() -> str:
    """The CPU's model name and its widest vector extensions (what the CPU kernels of torch and onnxruntime use),
    e.g. "AMD EPYC (AVX-512, VNNI, BF16), 2 cores": speed ratios between layouts and engines depend on them."""
    import os
    from pathlib import Path

    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{os.cpu_count()} cores"
    fields = dict(line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    extensions = [label for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("amx_tile", "AMX"),
                                            ("avx512_vnni", "VNNI"), ("avx_vnni", "VNNI"), ("avx512_bf16", "BF16"))
                  if flag in flags]
    if "AVX-512" in extensions and "AVX2" in extensions:
        extensions.remove("AVX2")
    extensions = list(dict.fromkeys(extensions))  # AVX-VNNI and AVX-512 VNNI read as one
    model = fields.get("model name", "unknown CPU")
    return f"{model} ({', '.join(extensions) or 'no AVX2'}), {os.cpu_count()} cores"
