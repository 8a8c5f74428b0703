"""Shared timing helper for the benchmark scripts: medians of repeated runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(run: Callable[[], object], *, repeat: int = 5) -> float:
    """Median wall time of ``run()`` over ``repeat`` runs, after one warm-up."""
    run()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
