"""A tiny timing helper shared by the benchmarks: best of a few repeats, operations per second."""

from __future__ import annotations

import time
from collections.abc import Callable


def ops_per_second(fn: Callable[[], object], *, number: int, repeat: int = 5) -> float:
    """Best-of-``repeat`` rate of calling ``fn`` ``number`` times (best = least disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - start)
    return number / best


def report(name: str, rate: float, unit: str = "ops/s") -> None:
    print(f"{name:<58} {rate:>12,.0f} {unit}")
