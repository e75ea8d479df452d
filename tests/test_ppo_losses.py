"""RL math of the IRM stage (tl_lightning/losses.py): hand-computed values (PPO and the
group-relative estimators), and a literal re-derivation of the authors' DeepSpeed-Chat trainer (``compute_rewards``,
``get_advantages_and_returns``, ``actor_loss_fn``, ``critic_loss_fn``) written as plain loops over
whole sequences, to show that our response-only tensors give the same numbers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tl_lightning.losses import (
    aggregate_token_losses,
    approx_kl,
    check_response_mask,
    clipped_policy_losses,
    dr_grpo_advantages,
    gae_advantages,
    gather_logprobs,
    grpo_advantages,
    k3_kl,
    kl_penalized_rewards,
    kl_penalty,
    masked_gae_advantages,
    masked_mean,
    masked_var,
    masked_whiten,
    pack_masked,
    ppo_value_loss,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
    tempered_logits,
    terminal_rewards,
    token_entropy,
    unpack_masked,
)

# ----------------------------------------------------------------------------- hand-computed


def test_masked_mean_counts_only_masked_positions():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(values, mask).item() == pytest.approx(2.0)  # (1 + 2 + 3) / 3
    assert masked_mean(values, mask, dim=1).tolist() == pytest.approx([1.5, 3.0])
    assert masked_mean(values, torch.zeros_like(mask)).item() == 0.0


def test_masked_var_is_bessel_corrected_and_needs_two_values():
    values = torch.tensor([[1.0, 2.0, 3.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    assert masked_var(values, mask).item() == pytest.approx(1.0)  # var([1, 2, 3], ddof=1)
    with pytest.raises(ValueError, match="two"):
        masked_var(values, torch.tensor([[1, 0, 0, 0]]))


def test_masked_whiten_gives_zero_mean_unit_variance_on_the_mask():
    torch.manual_seed(0)
    values = torch.randn(3, 5) * 4 + 7
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    white = masked_whiten(values, mask)
    assert masked_mean(white, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_var(white, mask).item() == pytest.approx(1.0, abs=1e-5)
    assert (white[mask == 0] == 0).all()
    kept_mean = masked_whiten(values, mask, shift_mean=False)
    assert masked_mean(kept_mean, mask).item() == pytest.approx(masked_mean(values, mask).item(), rel=1e-5)


def test_response_mask_must_be_a_non_empty_prefix():
    check_response_mask(torch.tensor([[1, 1, 0], [1, 0, 0]]))
    with pytest.raises(ValueError, match="ones followed by zeros"):
        check_response_mask(torch.tensor([[1, 0, 1]]))
    with pytest.raises(ValueError, match="at least one token"):
        check_response_mask(torch.tensor([[1, 1, 1], [0, 0, 0]]))


def test_kl_penalized_rewards_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -3.0], [-2.0, -1.0, -1.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    score = torch.tensor([10.0, -1.0])  # 10 is clipped to 5
    rewards = kl_penalized_rewards(logp, ref, score, mask, kl_coef=0.5, clip_score=5.0)
    expected = torch.tensor([[-0.25, 0.5, 0.0 + 5.0], [-0.5, 0.0 - 1.0, 0.0]])
    torch.testing.assert_close(rewards, expected)


def test_gae_by_hand():
    # One response of three tokens, gamma 1, lambda 0.5; the value after the last token is 0.
    rewards = torch.tensor([[0.0, 0.0, 1.0, 7.0]])
    values = torch.tensor([[0.5, 0.25, 0.5, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    adv, ret = gae_advantages(rewards, values, mask, gamma=1.0, lam=0.5)
    d2 = 1.0 + 0.0 - 0.5        # 0.5
    d1 = 0.0 + 0.5 - 0.25       # 0.25
    d0 = 0.0 + 0.25 - 0.5       # -0.25
    a2 = d2
    a1 = d1 + 0.5 * a2          # 0.5
    a0 = d0 + 0.5 * a1          # 0.0
    torch.testing.assert_close(adv, torch.tensor([[a0, a1, a2, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[a0 + 0.5, a1 + 0.25, a2 + 0.5, 0.0]]))
    # gamma discounts both the next value and the next advantage
    adv_g, _ = gae_advantages(rewards, values, mask, gamma=0.5, lam=1.0)
    e2 = 1.0 - 0.5
    e1 = 0.5 * 0.5 - 0.25 + 0.5 * e2
    e0 = 0.5 * 0.25 - 0.5 + 0.5 * e1
    torch.testing.assert_close(adv_g, torch.tensor([[e0, e1, e2, 0.0]]))


def test_kl_penalty_is_the_per_token_part_of_the_kl_penalized_rewards():
    logp, ref = torch.tensor([[-1.0, -2.0, -3.0]]), torch.tensor([[-1.5, -1.0, -3.0]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(kl_penalty(logp, ref, mask, 0.5), torch.tensor([[-0.25, 0.5, 0.0]]))
    torch.testing.assert_close(kl_penalized_rewards(logp, ref, torch.tensor([2.0]), mask, 0.5),
                               kl_penalty(logp, ref, mask, 0.5) + terminal_rewards(torch.tensor([2.0]), mask))


def test_pack_masked_moves_the_masked_tokens_to_the_front_and_back():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]])
    mask = torch.tensor([[1, 0, 0, 1, 1], [0, 1, 0, 0, 0]])  # holes: a multi-turn response's tool outputs
    packed, packed_mask = pack_masked(values, mask)
    torch.testing.assert_close(packed, torch.tensor([[1.0, 4.0, 5.0], [7.0, 0.0, 0.0]]))
    assert packed_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    torch.testing.assert_close(unpack_masked(packed, mask), values * mask)


def test_masked_gae_skips_the_holes_and_is_gae_without_them():
    rewards = torch.tensor([[0.0, 9.0, 9.0, 0.0, 1.0]])  # rewards under the holes are never seen
    values = torch.tensor([[0.5, 7.0, 7.0, 0.25, 0.5]])
    holes = torch.tensor([[1, 0, 0, 1, 1]])
    adv, ret = masked_gae_advantages(rewards, values, holes, gamma=1.0, lam=0.5)
    contiguous = gae_advantages(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.25, 0.5]]),
                                torch.ones(1, 3), gamma=1.0, lam=0.5)
    torch.testing.assert_close(adv[holes.bool()], contiguous[0].flatten())
    torch.testing.assert_close(ret[holes.bool()], contiguous[1].flatten())
    assert adv[0, 1:3].abs().sum() == 0 and ret[0, 1:3].abs().sum() == 0
    prefix = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])  # no holes: exactly gae_advantages
    two_rewards, two_values = torch.randn(2, 5), torch.randn(2, 5)
    for got, want in zip(masked_gae_advantages(two_rewards, two_values, prefix),
                         gae_advantages(two_rewards, two_values, prefix)):
        assert torch.equal(got, want)


def test_policy_loss_clips_ratio_by_the_sign_of_the_advantage():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 1.5, 1.0, 0.5]])).requires_grad_(True)
    adv = torch.tensor([[2.0, -2.0, 1.0, 3.0]])
    mask = torch.ones(1, 4)
    losses, frac = clipped_policy_losses(logp, old, adv, mask, clip=0.2)
    loss = aggregate_token_losses(losses, mask)
    # token 0: A>0, ratio 1.5 -> clipped 1.2 -> -2.4 ; token 1: A<0, ratio 1.5 -> -(-2)*1.5 = 3.0
    # token 2: ratio 1 -> -1.0 ; token 3: A>0, ratio 0.5 -> max(-1.5, -2.4) = -1.5 (unclipped)
    assert loss.item() == pytest.approx((-2.4 + 3.0 - 1.0 - 1.5) / 4)
    assert frac.item() == pytest.approx(0.25)
    loss.backward()
    # the clipped token gets no gradient; the others get -A * ratio / 4
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, 2.0 * 1.5 / 4, -1.0 / 4, -3.0 * 0.5 / 4]]))


def test_policy_loss_ignores_masked_positions_even_when_infinite():
    logp = torch.tensor([[-1.0, -float("inf")]])
    old = torch.tensor([[-1.0, 0.0]])
    adv = torch.tensor([[1.0, 0.0]])
    mask = torch.tensor([[1, 0]])
    losses, frac = clipped_policy_losses(logp, old, adv, mask)
    loss = aggregate_token_losses(losses, mask)
    assert loss.item() == pytest.approx(-1.0)
    assert frac.item() == 0.0


def test_value_loss_by_hand():
    values = torch.tensor([[1.0, 0.0, 0.5]], requires_grad=True)
    old = torch.tensor([[0.0, 0.0, 0.0]])
    returns = torch.tensor([[2.0, 1.0, -1.0]])
    mask = torch.tensor([[1, 1, 1]])
    loss = ppo_value_loss(values, old, returns, mask, clip=0.2)
    # token 0: (1-2)^2=1 vs (0.2-2)^2=3.24 -> 3.24 ; token 1: 1 vs 1 -> 1 ; token 2: 2.25 vs 1.44 -> 2.25
    assert loss.item() == pytest.approx(0.5 * (3.24 + 1.0 + 2.25) / 3)
    loss.backward()
    # the clipped branch wins on token 0 and has no gradient in V
    assert values.grad[0, 0].item() == 0.0
    assert values.grad[0, 2].item() == pytest.approx(0.5 * 2 * (0.5 + 1.0) / 3)


def test_logprobs_entropy_and_kl():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 11)
    tokens = torch.randint(0, 11, (2, 3))
    expected = -F.cross_entropy(logits.reshape(-1, 11), tokens.reshape(-1), reduction="none").reshape(2, 3)
    torch.testing.assert_close(gather_logprobs(logits, tokens), expected)
    uniform = torch.zeros(1, 2, 11)
    torch.testing.assert_close(token_entropy(uniform), torch.full((1, 2), math.log(11)))
    logp = torch.tensor([[-1.0, -2.0, -3.0]])
    ref = torch.tensor([[-1.5, -2.5, 0.0]])
    assert approx_kl(logp, ref, torch.tensor([[1, 1, 0]])).tolist() == pytest.approx([1.0])


def test_tempered_logits_divide_by_the_sampling_temperature():
    logits = torch.tensor([[[1.0, 2.0, 4.0]]])
    assert tempered_logits(logits, 1.0) is logits  # greedy: untouched, no copy
    torch.testing.assert_close(tempered_logits(logits, 0.7), logits / 0.7)
    probs = torch.softmax(tempered_logits(logits, 0.5), -1)
    torch.testing.assert_close(probs, torch.exp(2 * logits) / torch.exp(2 * logits).sum())
    with pytest.raises(ValueError, match="temperature"):
        tempered_logits(logits, 0.0)


def test_kl_penalized_rewards_sum_to_the_clipped_score_minus_the_sequence_kl():
    """The group estimators' sequence reward is the per-token rewards summed (verl's convention)."""
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -3.0], [-2.0, -1.0, -1.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    score = torch.tensor([10.0, -1.0])
    terminal = terminal_rewards(score, mask, clip_score=5.0)
    torch.testing.assert_close(terminal, torch.tensor([[0.0, 0.0, 5.0], [0.0, -1.0, 0.0]]))
    summed = kl_penalized_rewards(logp, ref, score, mask, kl_coef=0.5, clip_score=5.0).sum(1)
    torch.testing.assert_close(summed, torch.tensor([5.0, -1.0]) - 0.5 * approx_kl(logp, ref, mask))


# ----------------------------------------------------------- group-relative estimators, by hand
# Two prompts with G = 2 completions each ([1, -1] and [0, 2]), or one prompt with G = 3.


def test_dr_grpo_subtracts_the_group_mean():
    rewards = torch.tensor([1.0, -1.0, 0.0, 2.0])
    assert dr_grpo_advantages(rewards, 2).tolist() == [1.0, -1.0, -1.0, 1.0]
    assert dr_grpo_advantages(torch.tensor([1.0, -2.0, -2.0]), 3).tolist() == [2.0, -1.0, -1.0]


def test_grpo_divides_by_the_bessel_corrected_group_std_plus_eps():
    # [1, -2, -2]: mean -1, centred [2, -1, -1], variance (4 + 1 + 1) / (3 - 1) = 3
    got = grpo_advantages(torch.tensor([1.0, -2.0, -2.0]), 3)
    torch.testing.assert_close(got, torch.tensor([2.0, -1.0, -1.0]) / (math.sqrt(3.0) + 1e-4))
    # [1, -1]: std sqrt(2); a group of equal rewards has no signal: 0, not NaN
    got = grpo_advantages(torch.tensor([1.0, -1.0, 0.5, 0.5]), 2)
    s2 = math.sqrt(2.0) + 1e-4
    torch.testing.assert_close(got, torch.tensor([1 / s2, -1 / s2, 0.0, 0.0]))


def test_rloo_baseline_leaves_the_completion_out():
    # [1, -2, -2]: 1 - mean(-2, -2) = 3; -2 - mean(1, -2) = -1.5 (twice)
    assert rloo_advantages(torch.tensor([1.0, -2.0, -2.0]), 3).tolist() == [3.0, -1.5, -1.5]
    # G = 2: each against the other
    assert rloo_advantages(torch.tensor([1.0, -1.0, 0.0, 2.0]), 2).tolist() == [2.0, -2.0, -2.0, 2.0]


def test_reinforce_pp_baseline_whitens_the_centred_rewards_over_tokens():
    rewards = torch.tensor([1.0, -1.0, 0.0, 2.0])
    lengths = torch.tensor([1, 3, 2, 2])
    # centred [1, -1, -1, 1]; over 8 tokens: mean (1 - 3 - 2 + 2) / 8 = -0.25,
    # variance (1 * 1.25^2 + 3 * 0.75^2 + 2 * 0.75^2 + 2 * 1.25^2) / (8 - 1) = 7.5 / 7
    got = reinforce_pp_baseline_advantages(rewards, 2, lengths)
    expected = torch.tensor([1.25, -0.75, -0.75, 1.25]) / math.sqrt(7.5 / 7 + 1e-8)
    torch.testing.assert_close(got, expected)
    # the same as masked_whiten of the centred values spread over the response tokens
    mask = (torch.arange(3)[None, :] < lengths[:, None]).long()
    spread = torch.tensor([1.0, -1.0, -1.0, 1.0])[:, None] * mask
    torch.testing.assert_close(got[:, None] * mask, masked_whiten(spread, mask))
    # ``reduce`` adds the other processes' sums: two identical halves -> 16 tokens, variance
    # 2 * 7.5 / 15 = 1, so the advantages are just centred
    doubled = reinforce_pp_baseline_advantages(rewards, 2, lengths, reduce=lambda t: 2 * t)
    torch.testing.assert_close(doubled, torch.tensor([1.25, -0.75, -0.75, 1.25]))


def test_group_estimators_need_whole_groups_of_two_or_more():
    for estimator in (dr_grpo_advantages, grpo_advantages, rloo_advantages):
        with pytest.raises(ValueError, match="groups of >= 2"):
            estimator(torch.tensor([1.0, 2.0, 3.0]), 2)
        with pytest.raises(ValueError, match="groups of >= 2"):
            estimator(torch.tensor([1.0, 2.0]), 1)


def test_loss_aggregations_by_hand():
    losses = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate_token_losses(losses, mask, "token_mean").item() == pytest.approx(10 / 4)
    assert aggregate_token_losses(losses, mask, "sequence_mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate_token_losses(losses, mask, "sum_over_budget", budget=4).item() == pytest.approx((6 / 4 + 4 / 4) / 2)
    # a global count (over processes / their number) replaces the local one
    assert aggregate_token_losses(losses, mask, "token_mean", divisor=5.0).item() == pytest.approx(2.0)
    assert aggregate_token_losses(losses, mask, "sequence_mean", divisor=4.0).item() == pytest.approx(6 / 4)
    with pytest.raises(ValueError, match="budget"):
        aggregate_token_losses(losses, mask, "sum_over_budget")
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        aggregate_token_losses(losses, mask, "median")


def test_k3_kl_by_hand_and_its_gradient_points_back_to_the_reference():
    logp = torch.log(torch.tensor([[0.5, 0.25]])).requires_grad_(True)
    ref = torch.log(torch.tensor([[0.25, 0.25]]))
    k3 = k3_kl(logp, ref)
    # token 0: r = 0.25 / 0.5 = 0.5 -> 0.5 - ln(0.5) - 1; token 1: equal -> 0
    torch.testing.assert_close(k3, torch.tensor([[0.5 - math.log(0.5) - 1.0, 0.0]]))
    k3.sum().backward()
    # d/dlogp = 1 - r: pushes logp down where the policy puts more mass than the reference
    torch.testing.assert_close(logp.grad, torch.tensor([[0.5, 0.0]]))


# ----------------------------------------------- the authors' formulas, re-derived literally
# DeepSpeed-Chat works on whole sequences (prompt left-padded to P, then the response). Its
# ``log_probs[:, t]`` is the log-prob of token t+1, ``start = P - 1``, the action mask is
# ``seq[:, 1:] != pad``, and with pad == eos (LLaMA) the eos closing a response is masked out.


def ds_compute_rewards(P, log_probs, ref_log_probs, reward_score, action_mask, kl_ctl, clip_reward_value):
    rewards = -kl_ctl * (log_probs - ref_log_probs)
    start = P - 1
    ends = start + action_mask[:, start:].sum(1) + 1
    reward_clip = torch.clamp(reward_score, -clip_reward_value, clip_reward_value)
    for j in range(log_probs.shape[0]):
        rewards[j, start:ends[j]][-1] += reward_clip[j]
    return rewards


def ds_advantages_and_returns(values, rewards, start, gamma, lam):
    lastgaelam = 0
    advantages_reversed = []
    length = rewards.size()[-1]
    for t in reversed(range(start, length)):
        nextvalues = values[:, t + 1] if t < length - 1 else 0.0
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)
    returns = advantages + values[:, start:]
    return advantages.detach(), returns


def ds_actor_loss(logprobs, old_logprobs, advantages, mask, cliprange):
    log_ratio = (logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    return torch.sum(torch.max(pg_loss1, pg_loss2) * mask) / mask.sum()


def ds_critic_loss(values, old_values, returns, mask, cliprange_value):
    values_clipped = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    vf_loss1 = (values - returns) ** 2
    vf_loss2 = (values_clipped - returns) ** 2
    return 0.5 * torch.sum(torch.max(vf_loss1, vf_loss2) * mask) / mask.sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_deepspeed_chat_literal_loops(seed):
    gen = torch.Generator().manual_seed(seed)
    B, P, R, pad = 4, 5, 7, 0
    kl_coef, clip_score, gamma, lam = 0.3, 5.0, 1.0, 0.95
    n_real = torch.tensor([2, 6, 0, 4])  # generated tokens before the eos; row 3 hits no eos...
    seq = torch.randint(1, 50, (B, P + R), generator=gen)
    seq[0, :2] = pad  # left padding of one prompt
    for j, n in enumerate(n_real.tolist()):
        seq[j, P + n:] = pad  # eos (== pad), then padding
    seq[3, P:] = torch.randint(1, 50, (R,), generator=gen)  # ... and row 3 runs to max length
    n_real[3] = R

    T1 = P + R - 1
    log_probs = -torch.rand(B, T1, generator=gen) * 3
    ref_log_probs = -torch.rand(B, T1, generator=gen) * 3
    old_values = torch.randn(B, T1, generator=gen)
    score = torch.tensor([7.0, -2.0, 0.5, -6.0])
    action_mask = (seq != pad).long()[:, 1:]
    start = P - 1

    # DeepSpeed-Chat, as in its train_rlhf
    ds_rewards = ds_compute_rewards(P, log_probs, ref_log_probs, score, action_mask, kl_coef, clip_score)
    ends = start + action_mask[:, start:].sum(1) + 1
    ds_values = old_values.clone()
    for i in range(B):
        ds_rewards[i, ends[i]:] = 0
        ds_values[i, ends[i]:] = 0
    ds_adv, ds_ret = ds_advantages_and_returns(ds_values, ds_rewards, start, gamma, lam)

    # ours, on response tensors; the mask covers the generated tokens and the closing eos
    ours_mask = (torch.arange(R)[None, :] < (n_real + 1).clamp(max=R)[:, None]).long()
    resp = slice(start, None)
    rewards = kl_penalized_rewards(log_probs[:, resp], ref_log_probs[:, resp], score, ours_mask,
                                   kl_coef, clip_score)
    adv, ret = gae_advantages(rewards, old_values[:, resp], ours_mask, gamma, lam)
    torch.testing.assert_close(rewards, ds_rewards[:, resp])
    torch.testing.assert_close(adv, ds_adv)
    torch.testing.assert_close(ret, ds_ret)

    # the two losses, on the same mask
    new_logp = log_probs[:, resp] + 0.3 * torch.randn(B, R, generator=gen)
    new_values = old_values[:, resp] + 0.5 * torch.randn(B, R, generator=gen)
    loss_mask = action_mask[:, resp]
    policy = aggregate_token_losses(clipped_policy_losses(new_logp, log_probs[:, resp], ds_adv, loss_mask, 0.2)[0],
                                    loss_mask)
    torch.testing.assert_close(policy, ds_actor_loss(new_logp, log_probs[:, resp], ds_adv, loss_mask, 0.2))
    value = ppo_value_loss(new_values, old_values[:, resp], ds_ret, loss_mask, clip=0.2)
    torch.testing.assert_close(value, ds_critic_loss(new_values, old_values[:, resp], ds_ret, loss_mask, 0.2))
