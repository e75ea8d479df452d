"""Advantage estimators of the RL step (docs/design.md, "IRM: reinforcement learning"): which needs a
critic, how its policy loss is averaged, and the advantages of a scored rollout batch. The formulas
are the pure functions of ``losses.py``; ``ESTIMATORS`` is the one place that names them.

| estimator | advantage of row i (sequence rewards r of its group of G) | policy loss averaged as |
|---|---|---|
| ``gae`` | GAE over per-token rewards, learned critic (the paper's PPO) | token mean |
| ``grpo`` | (r_i - mean r) / (std r + 1e-4) | per sequence, then over sequences |
| ``dr_grpo`` | r_i - mean r | token sums / the generation budget, mean over sequences |
| ``rloo`` | r_i - mean of the other G - 1 | token mean |
| ``reinforce_pp_baseline`` | r_i - mean r, whitened over the batch's response tokens | token mean |

RLOO and REINFORCE++ take the token mean as OpenRLHF implements both: every token weighs the same,
so long responses are not down-weighted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from tl_lightning.episodes import void_neutral_rewards
from tl_lightning.losses import (
    dr_grpo_advantages,
    grpo_advantages,
    masked_gae_advantages,
    masked_whiten,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
)

Reduce = Callable[[torch.Tensor], torch.Tensor]
"""Sums a tensor over the data-parallel processes (the identity in one process)."""


@dataclass(frozen=True)
class Estimator:
    """An advantage estimator.

    ``loss_aggregation``: how its policy loss is averaged (``losses.aggregate_token_losses``).
    ``sequence``: ``(rewards (B,), group size G, response lengths (B,), reduce) -> advantages (B,)``,
    one advantage per row from the sequence rewards of its group (consecutive rows); None for GAE,
    whose per-token advantages come from a learned critic.
    """

    loss_aggregation: str
    sequence: Callable[[torch.Tensor, int, torch.Tensor, Reduce], torch.Tensor] | None = None

    @property
    def critic(self) -> bool:
        """Whether the estimator learns a value function (only GAE)."""
        return self.sequence is None


ESTIMATORS: dict[str, Estimator] = {
    "gae": Estimator("token_mean"),
    "grpo": Estimator("sequence_mean", lambda rewards, group, lengths, reduce: grpo_advantages(rewards, group)),
    "dr_grpo": Estimator("sum_over_budget",
                         lambda rewards, group, lengths, reduce: dr_grpo_advantages(rewards, group)),
    "rloo": Estimator("token_mean", lambda rewards, group, lengths, reduce: rloo_advantages(rewards, group)),
    "reinforce_pp_baseline": Estimator("token_mean", reinforce_pp_baseline_advantages),
}


def checked_estimator(name: str, num_generations: int, do_sample: bool, whiten_advantages: bool) -> Estimator:
    """``ESTIMATORS[name]``, once the options it needs are checked: groups of ``num_generations``
    sampled completions (>= 2 for an estimator that compares them), ``whiten_advantages`` for GAE
    only. Raises ``ValueError`` naming the option."""
    if name not in ESTIMATORS:
        raise ValueError(f"advantage_estimator must be one of {tuple(ESTIMATORS)}, got {name!r}")
    if num_generations < 1:
        raise ValueError(f"num_generations must be >= 1, got {num_generations}")
    if num_generations > 1 and not do_sample:
        raise ValueError(f"num_generations={num_generations} needs do_sample=True: greedy completions of one "
                         "prompt are all the same")
    estimator = ESTIMATORS[name]
    if not estimator.critic and num_generations < 2:
        raise ValueError(f"advantage_estimator={name!r} compares the completions of a prompt: "
                         "it needs num_generations >= 2")
    if not estimator.critic and whiten_advantages:
        raise ValueError("whiten_advantages is a gae option (reinforce_pp_baseline whitens by definition)")
    return estimator


@torch.no_grad()
def rollout_advantages(estimator: Estimator, token_rewards: torch.Tensor, mask: torch.Tensor, *,
                       values: torch.Tensor | None = None, gamma: float = 1.0, lam: float = 0.95,
                       whiten: bool = False, void: torch.Tensor | None = None, group_size: int = 1,
                       policy_lengths: torch.Tensor | None = None,
                       reduce: Reduce | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The advantages (B, R) of a scored rollout batch and, with a critic, its returns (B, R).

    ``token_rewards`` (B, R): the rewards of the generated tokens of ``mask`` (B, R), KL penalty
    included when it is in the reward. With a critic (``values`` (B, R)), GAE over the generated
    tokens only (a multi-turn episode's tool outputs are skipped), whitened over the batch with
    ``whiten``. Otherwise one advantage per row from its summed token rewards, a void row's sum
    replaced by its group's mean (``void`` (B,)), given to every generated token; ``policy_lengths``
    (B,), the tokens each row's policy loss covers, weigh REINFORCE++'s whitening, which ``reduce``
    takes over all processes.
    """
    if estimator.critic:
        advantages, returns = masked_gae_advantages(token_rewards, values, mask, gamma, lam)
        return (masked_whiten(advantages, mask) if whiten else advantages), returns
    rewards = void_neutral_rewards(token_rewards.sum(1), void, group_size)
    return estimator.sequence(rewards, group_size, policy_lengths, reduce)[:, None] * mask, None
