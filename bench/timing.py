"""Timing shared by the bench scripts: A/B pairs in alternating order, so drift in machine load hits both sides."""

from __future__ import annotations

import time
from collections.abc import Callable


def alternating_pairs(bare: Callable[[], object], ours: Callable[[], object], pairs: int) -> list[tuple[float, float]]:
    """(bare seconds, ours seconds) per pair; the order alternates (A B, B A, ...). Warm up before calling."""
    out = []
    for i in range(pairs):
        seconds = {}
        for name, fn in (("A", bare), ("B", ours)) if i % 2 == 0 else (("B", ours), ("A", bare)):
            started = time.perf_counter()
            fn()
            seconds[name] = time.perf_counter() - started
        out.append((seconds["A"], seconds["B"]))
    return out
