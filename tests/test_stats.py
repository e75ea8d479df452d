"""Bootstrap intervals: exact cases, determinism, pairing, and coverage on simulated data."""

from __future__ import annotations

import numpy as np
import pytest

from tl_lightning.stats import Interval, as_runs, bootstrap_mean, paired_difference


def test_constant_scores_give_a_point_interval():
    ci = bootstrap_mean([1.0] * 30)
    assert (ci.estimate, ci.low, ci.high, ci.n, ci.seeds) == (1.0, 1.0, 1.0, 30, 1)


def test_half_pass_rate_interval_matches_the_normal_approximation():
    # p = 0.5, n = 400: standard error 0.025, so the 95% interval is about +-0.049
    scores = np.array([1.0, 0.0] * 200)
    ci = bootstrap_mean(scores, resamples=4000)
    assert ci.estimate == 0.5
    assert ci.low == pytest.approx(0.451, abs=0.01) and ci.high == pytest.approx(0.549, abs=0.01)


def test_same_seed_same_interval_other_seed_other_draws():
    scores = np.random.default_rng(1).random(50)
    assert bootstrap_mean(scores, seed=3) == bootstrap_mean(scores, seed=3)
    assert bootstrap_mean(scores, seed=3).low != bootstrap_mean(scores, seed=4).low


def test_seed_rows_widen_the_interval_when_runs_disagree():
    items = np.tile([1.0, 0.0], 100)
    agreeing = np.stack([items] * 3)
    disagreeing = np.stack([items * 0.2, items * 0.5, items])  # run means 0.1, 0.25, 0.5
    narrow, wide = bootstrap_mean(agreeing), bootstrap_mean(disagreeing)
    assert wide.seeds == 3 and wide.n == 200
    assert (wide.high - wide.low) > (narrow.high - narrow.low)


def test_paired_difference_of_identical_models_is_exactly_zero():
    scores = np.random.default_rng(0).integers(0, 2, size=(2, 80))
    diff = paired_difference(scores, scores[::-1])  # same runs, other order: same distribution
    assert diff.estimate == 0.0
    assert paired_difference(scores[0], scores[0]) == Interval(0.0, 0.0, 0.0, 80, 1)


def test_pairing_is_tighter_than_two_separate_intervals():
    rng = np.random.default_rng(0)
    difficulty = rng.random(300)
    luck = rng.random(300)  # the same draw for both: model a passes whatever b passes, and more
    a = (luck < difficulty + 0.1).astype(float)
    b = (luck < difficulty).astype(float)
    diff = paired_difference(a, b)
    ci_a, ci_b = bootstrap_mean(a), bootstrap_mean(b)
    assert diff.low > 0.0
    assert (diff.high - diff.low) < (ci_a.high - ci_a.low) + (ci_b.high - ci_b.low)


def test_coverage_is_near_the_nominal_level():
    rng = np.random.default_rng(7)
    covered = 0
    for trial in range(200):
        scores = (rng.random(100) < 0.3).astype(float)
        ci = bootstrap_mean(scores, resamples=500, seed=trial)
        covered += ci.low <= 0.3 <= ci.high
    assert 0.88 <= covered / 200 <= 0.99


def test_bad_shapes_and_values_are_refused():
    with pytest.raises(ValueError, match="shape"):
        as_runs([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_mean([1.0, float("nan")])
    with pytest.raises(ValueError, match="same items"):
        paired_difference([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean([1.0, 0.0], confidence=1.5)


def test_scaled_and_serialised():
    ci = Interval(0.5, 0.4, 0.6, 10).scaled(100)
    assert ci.to_dict() == {"estimate": 50.0, "low": 40.0, "high": 60.0, "n": 10, "seeds": 1}
    assert str(ci) == "50.0 [40.0, 60.0]"
