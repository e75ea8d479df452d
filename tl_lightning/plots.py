"""Training curves and held-out figures as PNG (matplotlib, Agg backend), from Lightning's CSV logs
and ``HeldOutEvaluation`` histories. Used by ``make demo`` and ``make reproduce``."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HELDOUT_LINES = (("exact_call", "exact call"), ("ts", "TS"), ("cf", "CF"))


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a Lightning ``metrics.csv`` as floats (empty cells left out)."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def series(rows: Sequence[dict[str, float]], name: str) -> tuple[list[float], list[float]]:
    """``(steps, values)`` of the rows that logged ``name``."""
    points = [(row["step"], row[name]) for row in rows if name in row and "step" in row]
    return [p[0] for p in points], [p[1] for p in points]


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_heldout(ax, stages: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> None:
    """Held-out figures over training on ``ax``: each stage's ``HeldOutEvaluation`` history in
    turn (x: training batches, counted on across stages), each point with its 95% interval."""
    offset = 0
    for stage, history in stages:
        if not history:
            continue
        xs = [offset + h["batches"] for h in history]
        for key, label in HELDOUT_LINES:
            ys = [h[key] for h in history]
            errors = [[y - h["ci"][key][0] for y, h in zip(ys, history)],
                      [h["ci"][key][1] - y for y, h in zip(ys, history)]]
            ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=f"{stage}: {label}")
        offset = xs[-1]
        ax.axvline(offset, color="grey", linewidth=0.5)
    ax.set_xlabel("training batches (PKT steps, then IRM rollout batches)")
    ax.set_ylabel("% of held-out items (95% CI)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path
