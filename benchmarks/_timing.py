"""Shared helpers of the benchmark scripts: interleaved timing, robust summaries, the output.

The machine these run on is shared and noisy, so every comparison is measured side by side in
one run: the variants alternate (A, B, B, A, A, B, ...) so a slow spell hits all of them alike,
and the figures are medians of several repeats with their spread (min-max and IQR). A ratio is
the median of the per-repeat (paired) ratios, which cancels drift between repeats.

Every script prints a human-readable table and ends with exactly one JSON line of its figures.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence


@dataclass(frozen=True)
class Spread:
    """Median of ``n`` measurements with their min-max range and interquartile range."""

    median: float
    low: float
    high: float
    q1: float
    q3: float
    n: int

    def to_dict(self, digits: int = 6) -> dict[str, float | int]:
        return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def spread(values: Sequence[float]) -> Spread:
    """The ``Spread`` of ``values`` (at least one)."""
    if not values:
        raise ValueError("spread() needs at least one value")
    ordered = sorted(values)
    if len(ordered) == 1:
        q1 = q3 = ordered[0]
    else:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Spread(statistics.median(ordered), ordered[0], ordered[-1], q1, q3, len(ordered))


def interleaved(variants: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds of each variant over ``repeats`` rounds, variants alternating within a round
    and their order reversed every other round (ABBA), after ``warmup`` untimed rounds.

    A variant that returns a float has timed itself (to leave out setup that must not count, e.g.
    building its inputs): that value is taken instead of the wall time of the call."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            measured = variants[name]()
            elapsed = time.perf_counter() - start
            times[name].append(float(measured) if isinstance(measured, float) else elapsed)
    return times


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> Spread:
    """Spread of the per-repeat ratios ``numerator[i] / denominator[i]`` (same round, same noise)."""
    if len(numerator) != len(denominator):
        raise ValueError("paired_ratio needs two series of the same length")
    return spread([a / b for a, b in zip(numerator, denominator)])


def fmt(s: Spread, scale: float = 1.0, digits: int = 3) -> str:
    """``median [min-max]`` of a spread, values multiplied by ``scale``."""
    return f"{s.median * scale:.{digits}f} [{s.low * scale:.{digits}f}-{s.high * scale:.{digits}f}]"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned text table under a title."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for k, row in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))


def emit_json(benchmark: str, figures: Mapping[str, Any]) -> dict[str, Any]:
    """Print the script's one JSON line (``{"benchmark": ..., **figures}``) and return it."""
    line = {"benchmark": benchmark, **figures}
    print(json.dumps(line, sort_keys=False))
    return line
