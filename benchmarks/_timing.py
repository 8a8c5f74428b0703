"""Shared timing helper for the benchmark scripts: medians of repeated runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(run: Callable[[], object], *, repeat: int = 5) -> float:
    """Median wall time of ``run()`` over ``repeat`` runs, after one warm-up."""
    run()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interleaved_medians(
    runs: dict[str, tuple[Callable[[], Any], Callable[[Any], object]]], *, repeat: int = 9
) -> dict[str, float]:
    """Median wall time of each ``run(setup())``, the implementations taking turns.

    Taking turns spreads a noisy machine's slow spells over every implementation instead
    of charging them to whichever happened to run then; only ``run`` is timed.
    """
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for round_number in range(repeat + 1):  # round 0 warms up
        for name, (setup, run) in runs.items():
            argument = setup()
            start = time.perf_counter()
            run(argument)
            if round_number:
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}
