"""kl_control.py: the fixed and the adaptive KL coefficient."""

from __future__ import annotations

import pytest

from tl_lightning.kl_control import AdaptiveKLController, FixedKLController, kl_controller


def test_kl_controllers_follow_the_kl_and_round_trip():
    fixed = FixedKLController(0.3)
    fixed.update(100.0, n_steps=8)
    assert fixed.value == 0.3
    adaptive = AdaptiveKLController(0.3, target=2.0, horizon=100)
    adaptive.update(3.0, n_steps=10)  # error +0.5 clipped to +0.2: x (1 + 0.2 * 10 / 100)
    assert adaptive.value == pytest.approx(0.3 * 1.02)
    adaptive.update(1.0, n_steps=10)  # error -0.5 clipped to -0.2
    assert adaptive.value == pytest.approx(0.3 * 1.02 * 0.98)
    restored = AdaptiveKLController(9.0, target=1.0, horizon=1)
    restored.load_state_dict(adaptive.state_dict())
    assert restored == adaptive
    with pytest.raises(ValueError, match="target > 0"):
        AdaptiveKLController(0.3, target=0.0, horizon=10)


def test_a_target_makes_the_control_adaptive():
    assert kl_controller(0.3) == FixedKLController(0.3)
    assert kl_controller(0.3, target=6.0, horizon=500) == AdaptiveKLController(0.3, 6.0, 500)
