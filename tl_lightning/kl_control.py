"""The KL coefficient of the RL step (docs/design.md, "IRM: reinforcement learning"): fixed, as the
authors run it (0.3), or adaptive (Ziegler et al., 2019). Both are checkpointed with the module
(``state_dict``), so a resumed run goes on with the coefficient it had.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class FixedKLController:
    """A constant KL coefficient (the authors' setting: 0.3)."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> None:
        """A fixed coefficient does not follow the KL."""

    def state_dict(self) -> dict[str, float]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


@dataclass
class AdaptiveKLController:
    """Ziegler et al. (2019): move the coefficient so the per-sequence KL approaches ``target``;
    the proportional error is clipped to +-20% and scaled by ``n_steps / horizon``."""

    value: float
    target: float
    horizon: int

    def __post_init__(self) -> None:
        if self.target <= 0 or self.horizon <= 0:
            raise ValueError(f"adaptive KL control needs target > 0 and horizon > 0, got {self.target}, {self.horizon}")

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value, self.target, self.horizon = float(state["value"]), float(state["target"]), int(state["horizon"])


def kl_controller(kl_coef: float, target: float | None = None,
                  horizon: int = 10000) -> FixedKLController | AdaptiveKLController:
    """Adaptive control starting at ``kl_coef`` when a ``target`` KL is given, else a fixed coefficient."""
    return FixedKLController(kl_coef) if target is None else AdaptiveKLController(kl_coef, target, horizon)
