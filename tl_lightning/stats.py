"""Confidence intervals for per-item scores: percentile bootstrap over items (and seeds).

A benchmark figure is the mean of per-item scores (1/0 pass flags, or rewards). Its uncertainty
comes from which items happened to be drawn and, for trained models, from the training seed.
Both are resampled here:

- ``scores`` is (N,) for one run or (S, N) for S runs (seeds) scored on the same N items;
- each bootstrap draw picks N item indices with replacement (the SAME indices for every seed, since
  an item is hard or easy for all of them) and S seeds with replacement, and takes the mean;
- the interval is the (alpha/2, 1 - alpha/2) percentile of the draws.

``paired_difference`` compares two models on the same items: each draw uses one set of item
indices for both, so what the two have in common (the items) cancels and the interval is much
tighter than the difference of two separate intervals. Seeds of the two models are drawn
independently (seed k of one model has nothing to do with seed k of the other).

Everything is seeded: the same inputs give the same interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval ``[low, high]``; ``n`` items, ``seeds`` runs
    (for a paired difference, the smaller run count of the two models)."""

    estimate: float
    low: float
    high: float
    n: int
    seeds: int = 1

    def scaled(self, factor: float) -> "Interval":
        """The same interval in other units (``scaled(100)``: fractions to percent)."""
        return Interval(self.estimate * factor, self.low * factor, self.high * factor, self.n, self.seeds)

    def to_dict(self, digits: int = 2) -> dict[str, float | int]:
        return {k: round(v, digits) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def __str__(self) -> str:
        return f"{self.estimate:.1f} [{self.low:.1f}, {self.high:.1f}]"


def as_runs(scores) -> np.ndarray:
    """``scores`` as a float (S, N) array: one row per run (seed), one column per item."""
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"scores must be (N,) or (S, N) with S, N >= 1, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("scores must be finite")
    return array


def _percentiles(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _draw_means(runs: np.ndarray, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B,) means of ``runs`` (S, N) over resampled seeds and the item draws ``items`` (B, N)."""
    S = runs.shape[0]
    seeds = rng.integers(0, S, size=(items.shape[0], S))  # (B, S)
    per_seed = runs[:, items].mean(axis=2)  # (S, B): each run's mean over each draw's items
    return np.take_along_axis(per_seed.T, seeds, axis=1).mean(axis=1)


def bootstrap_mean(scores, resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                   seed: int = 0) -> Interval:
    """The mean of ``scores`` ((N,) or (S, N)) and its percentile-bootstrap interval over items
    and seeds (module docstring)."""
    runs = as_runs(scores)
    rng = np.random.default_rng(seed)
    items = rng.integers(0, runs.shape[1], size=(resamples, runs.shape[1]))
    low, high = _percentiles(_draw_means(runs, items, rng), confidence)
    return Interval(float(runs.mean()), low, high, runs.shape[1], runs.shape[0])


def paired_difference(scores_a, scores_b, resamples: int = DEFAULT_RESAMPLES,
                      confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Interval:
    """mean(a) - mean(b) for two models scored on the SAME items (columns aligned), with a paired
    bootstrap interval: one item draw for both, seeds drawn for each separately."""
    a, b = as_runs(scores_a), as_runs(scores_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired scores need the same items: {a.shape[1]} vs {b.shape[1]} columns")
    rng = np.random.default_rng(seed)
    items = rng.integers(0, a.shape[1], size=(resamples, a.shape[1]))
    draws = _draw_means(a, items, rng) - _draw_means(b, items, rng)
    low, high = _percentiles(draws, confidence)
    return Interval(float(a.mean() - b.mean()), low, high, a.shape[1], min(a.shape[0], b.shape[0]))
