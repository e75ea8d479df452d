"""advantages.py: the estimator table, the options each estimator needs, and the advantages of a
scored rollout batch (GAE over the generated tokens; one advantage per row for the group estimators,
a void row neutral in its group)."""

from __future__ import annotations

import pytest
import torch

from tl_lightning.advantages import ESTIMATORS, checked_estimator, rollout_advantages
from tl_lightning.losses import (
    LOSS_AGGREGATIONS,
    grpo_advantages,
    masked_gae_advantages,
    masked_whiten,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
)


def test_only_gae_has_a_critic_and_every_aggregation_is_known():
    assert [name for name, e in ESTIMATORS.items() if e.critic] == ["gae"]
    assert {e.loss_aggregation for e in ESTIMATORS.values()} <= set(LOSS_AGGREGATIONS)
    assert ESTIMATORS["grpo"].loss_aggregation == "sequence_mean"
    assert ESTIMATORS["dr_grpo"].loss_aggregation == "sum_over_budget"


@pytest.mark.parametrize("options, message", [
    (("ppo2", 1, False, False), "advantage_estimator"),
    (("gae", 0, False, False), "num_generations must be >= 1"),
    (("gae", 4, False, False), "needs do_sample=True"),
    (("rloo", 1, True, False), "num_generations >= 2"),
    (("grpo", 2, True, True), "whiten_advantages"),
])
def test_each_estimator_checks_what_it_needs(options, message):
    with pytest.raises(ValueError, match=message):
        checked_estimator(*options)


def test_checked_estimator_returns_the_table_entry():
    assert checked_estimator("gae", 1, False, True) is ESTIMATORS["gae"]
    assert checked_estimator("rloo", 4, True, False) is ESTIMATORS["rloo"]


def test_group_advantages_come_from_the_summed_token_rewards():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]])
    token_rewards = torch.tensor([[0.5, 1.0, 0.0], [0.0, 0.0, -2.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.0]])
    sums = token_rewards.sum(1)
    void = torch.zeros(4, dtype=torch.bool)
    for name, expected in (("grpo", grpo_advantages(sums, 2)), ("rloo", rloo_advantages(sums, 2)),
                           ("reinforce_pp_baseline", reinforce_pp_baseline_advantages(sums, 2, mask.sum(1)))):
        advantages, returns = rollout_advantages(ESTIMATORS[name], token_rewards, mask, void=void, group_size=2,
                                                 policy_lengths=mask.sum(1))
        assert returns is None
        assert torch.allclose(advantages, expected[:, None] * mask)


def test_a_void_row_moves_no_baseline():
    mask = torch.ones(4, 2, dtype=torch.long)
    token_rewards = torch.tensor([[0.0, 1.0], [0.0, 3.0], [0.0, 2.0], [0.0, -9.0]])
    void = torch.tensor([False, False, False, True])
    advantages, _ = rollout_advantages(ESTIMATORS["dr_grpo"], token_rewards, mask, void=void, group_size=2,
                                       policy_lengths=mask.sum(1))
    assert advantages[:, -1].tolist() == [-1.0, 1.0, 0.0, 0.0]  # the void row takes its group's mean


def test_gae_runs_over_the_generated_tokens_and_whitens_on_request():
    mask = torch.tensor([[1, 0, 1, 1], [1, 1, 0, 0]])  # a tool output between two turns in row 0
    token_rewards = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, -1.0, 0.0, 0.0]])
    values = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    expected, expected_returns = masked_gae_advantages(token_rewards, values, mask, 1.0, 0.9)
    advantages, returns = rollout_advantages(ESTIMATORS["gae"], token_rewards, mask, values=values, lam=0.9)
    assert torch.equal(advantages, expected) and torch.equal(returns, expected_returns)
    whitened, _ = rollout_advantages(ESTIMATORS["gae"], token_rewards, mask, values=values, lam=0.9, whiten=True)
    assert torch.allclose(whitened, masked_whiten(expected, mask))
