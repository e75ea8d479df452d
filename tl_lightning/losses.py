"""Losses as small pure functions.

PKT part: the key-token-weighted cross-entropy of TL-Training (docs/design.md, "PKT"). Labels follow the
Hugging Face convention (aligned with ``input_ids``, ``-100`` = no loss); the causal shift happens
here, and vocabulary-sized logits are only needed at the positions that predict a supervised
token (``prediction_mask``; transformers' ``logits_to_keep`` computes just those).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def prediction_mask(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """(B, T) bool: True at position t when the label at t+1 is supervised (t predicts it).

    The last column is always False. Passing this mask as ``logits_to_keep`` makes a transformers
    causal LM return only those logits, flattened to (N, V).
    """
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != ignore_index
    return mask


@dataclass(frozen=True)
class SupervisedTokens:
    """The N supervised tokens of a batch after the causal shift.

    ``logits`` (N, V): the logits that predict each of them; ``targets`` (N,): the tokens;
    ``mask`` (B, T): ``prediction_mask`` of the labels (where the predicting positions sit).
    """

    logits: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor

    def select(self, per_token: torch.Tensor) -> torch.Tensor:
        """The entries of a (B, T) tensor aligned with ``input_ids`` (e.g. ``loss_weights``,
        ``key_mask``) that belong to the supervised tokens: (N,), in the order of ``targets``."""
        return per_token[:, 1:][self.mask[:, :-1]]


def supervised_tokens(logits: torch.Tensor, labels: torch.Tensor,
                      ignore_index: int = IGNORE_INDEX) -> SupervisedTokens:
    """Pair each supervised label (B, T) with the logits that predict it.

    ``logits`` is either the full (B, T, V) block or the (N, V) rows already kept with
    ``logits_to_keep=prediction_mask(labels)``. Indexing before any float cast means only N x V
    values are copied, never the whole (B, T, V) block.
    """
    mask = prediction_mask(labels, ignore_index)
    targets = labels[:, 1:][mask[:, :-1]]
    if logits.ndim == 3:
        if logits.shape[:2] != labels.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on (B, T)")
        logits = logits[mask]
    elif logits.shape[0] != targets.shape[0]:
        raise ValueError(f"{logits.shape[0]} kept logits rows but labels supervise {targets.shape[0]} tokens")
    return SupervisedTokens(logits=logits, targets=targets, mask=mask)


def weighted_token_ce_sums(tokens: SupervisedTokens, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Numerator and denominator of the PKT loss: (sum w*CE, sum w), both float32 scalars.

    ``weights`` (N,) per supervised token. Kept apart so data-parallel training can add the
    denominators of all processes before dividing (a global, not per-process, weighted mean).
    """
    ce = F.cross_entropy(tokens.logits.float(), tokens.targets, reduction="none")
    weights = weights.to(ce.dtype)
    return (weights * ce).sum(), weights.sum()


def pkt_loss(logits: torch.Tensor, labels: torch.Tensor, loss_weights: torch.Tensor,
             ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """PKT loss ``sum(w * CE) / sum(w)`` over supervised tokens (docs/design.md, "PKT").

    logits (B, T, V) (or the (N, V) kept rows, see ``supervised_tokens``), labels (B, T) aligned
    with input_ids, loss_weights (B, T). With every weight 1 this is exactly the causal-LM
    cross-entropy of transformers. A batch without supervised tokens gives 0 (still attached to
    the graph), not NaN.
    """
    tokens = supervised_tokens(logits, labels, ignore_index)
    numerator, denominator = weighted_token_ce_sums(tokens, tokens.select(loss_weights))
    return numerator / denominator.clamp_min(torch.finfo(denominator.dtype).tiny)


def token_hits(tokens: SupervisedTokens) -> torch.Tensor:
    """(N,) bool: whether the greedy prediction equals the label at each supervised token."""
    return tokens.logits.argmax(dim=-1) == tokens.targets

# ---------------------------------------------------------------------------------------------
# PPO (the IRM stage). Shapes: B sequences, R response tokens (right-padded after generation).
# ``mask`` (B, R) is 1 on generated tokens up to and including the stop token and 0 after it.
# The formulas follow DeepSpeed-Chat's PPO trainer (the authors' code); tests/test_ppo_losses.py
# re-derives them as a literal loop.


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``values`` (any shape) over the positions where ``mask`` (same shape) is non-zero.

    ``dim=None`` reduces everything to a scalar; an int reduces that dimension only. An empty mask
    gives 0 rather than NaN, so a batch without tokens cannot poison a running average.
    """
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased (Bessel-corrected) variance of ``values`` over the masked positions: a scalar."""
    count = mask.to(values.dtype).sum()
    if count < 2:
        raise ValueError("the variance needs at least two masked values")
    mean = masked_mean(values, mask)
    return masked_mean((values - mean) ** 2, mask) * count / (count - 1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``values`` scaled to unit variance (and shifted to zero mean with ``shift_mean``) over the
    masked positions; masked-out positions become 0. values, mask: (B, R) -> (B, R)."""
    mean = masked_mean(values, mask)
    whitened = (values - mean) * torch.rsqrt(masked_var(values, mask) + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


def check_response_mask(mask: torch.Tensor) -> None:
    """Raise ``ValueError`` unless every row of ``mask`` (B, R) is ones then zeros, with at least
    one one: responses are right-padded after generation and never empty."""
    m = mask.to(torch.int64)
    if (m[:, 1:] > m[:, :-1]).any():
        raise ValueError("a response mask must be ones followed by zeros in every row "
                         "(responses are right-padded after generation)")
    if (m.sum(1) == 0).any():
        raise ValueError("every response needs at least one token (a response mask row is empty)")


def tempered_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` (any shape): the logits of the distribution that sampling at
    ``temperature`` draws from. The log-probs of sampled rollouts (old, new, reference, hence the
    KL) come from these, as in TRL; ``temperature=1`` (greedy rollouts) returns ``logits`` as is."""
    if temperature <= 0:
        raise ValueError(f"the sampling temperature must be > 0, got {temperature}")
    return logits if temperature == 1.0 else logits / temperature


def gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probability of each token under the logits that predict it, in float32.

    logits (B, R, V) at the positions *before* the tokens, tokens (B, R) -> (B, R).
    """
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each next-token distribution, in float32: logits (B, R, V) -> (B, R)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def approx_kl(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The KL estimate the reward penalises, summed over each response: ``sum_t (logp - ref_logp)``.

    logp, ref_logp, mask: (B, R) -> (B,). Its batch mean is the reported KL and what the adaptive
    KL controller steers.
    """
    return ((logp - ref_logp) * mask.to(logp.dtype)).sum(1)


def terminal_rewards(score: torch.Tensor, mask: torch.Tensor, clip_score: float = 5.0) -> torch.Tensor:
    """Per-token rewards that are 0 except the sequence's score, clipped to
    ``[-clip_score, clip_score]``, on its last response token.

    score: (B,), mask: (B, R) -> (B, R) float32.

    DeepSpeed-Chat adds the score at ``start + n`` with ``n`` the number of non-pad generated
    tokens; with a pad token equal to eos (LLaMA, SmolLM2) that is the eos token, which its mask
    leaves out. Here the stop token belongs to the mask, so "the last masked token" is the same
    position.
    """
    check_response_mask(mask)
    rewards = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    last = mask.sum(1).long() - 1
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] = score.to(rewards.dtype).clamp(-clip_score, clip_score)
    return rewards


def kl_penalized_rewards(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    score: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    clip_score: float = 5.0,
) -> torch.Tensor:
    """Per-token PPO rewards: ``-kl_coef * (logp - ref_logp)`` on every response token, plus the
    ``terminal_rewards`` (the clipped score on the last token).

    logp, ref_logp, mask: (B, R); score: (B,) -> rewards (B, R), 0 where ``mask`` is 0. Summed over
    a row this is the sequence reward the group-relative estimators take: the clipped score minus
    ``kl_coef`` times the row's ``approx_kl`` (verl's GRPO with the KL in the reward does the same).
    """
    return kl_penalty(logp, ref_logp, mask, kl_coef) + terminal_rewards(score, mask, clip_score).to(logp.dtype)


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """The per-token KL reward ``-kl_coef * (logp - ref_logp)`` on the masked tokens, 0 elsewhere.
    logp, ref_logp, mask: (B, R) -> (B, R)."""
    return -kl_coef * (logp - ref_logp) * mask.to(logp.dtype)


@torch.no_grad()
def gae_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each response.

    rewards, values, mask: (B, R) -> (advantages, returns), both (B, R), 0 where ``mask`` is 0.
    ``values[:, t]`` is the critic's estimate before response token t; the value after the last
    token is 0 (the episode ends there):
    ``delta_t = r_t + gamma * V_{t+1} - V_t``, ``A_t = delta_t + gamma * lam * A_{t+1}``,
    ``returns = A + V``.
    """
    check_response_mask(mask)
    maskf = mask.to(values.dtype)
    values = values * maskf
    rewards = rewards * maskf
    length = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    following = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(values[:, t])
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        following = delta + gamma * lam * following
        advantages[:, t] = following
    return advantages * maskf, (advantages + values) * maskf


def pack_masked(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The masked entries of each row moved to its front, in order: values, mask (B, R) ->
    (packed (B, A), packed mask (B, A), ones then zeros) with A the most masked entries of a row.
    A multi-turn response has holes (the tool outputs); packed, its generated tokens are one
    contiguous response, as the per-sequence functions here expect."""
    maskb = mask.bool()
    counts = maskb.sum(1)
    width = int(counts.max()) if counts.numel() else 0
    packed_mask = torch.arange(width, device=mask.device)[None, :] < counts[:, None]
    packed = values.new_zeros((values.shape[0], width))
    packed[packed_mask] = values[maskb]
    return packed, packed_mask.to(mask.dtype)


def unpack_masked(packed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The inverse of ``pack_masked``: packed (B, A) back to where ``mask`` (B, R) is non-zero, 0
    elsewhere -> (B, R)."""
    maskb = mask.bool()
    out = packed.new_zeros(mask.shape)
    out[maskb] = packed[torch.arange(packed.shape[1], device=mask.device)[None, :] < maskb.sum(1)[:, None]]
    return out


def masked_gae_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``gae_advantages`` over the masked tokens only: a multi-turn response's tool outputs
    (holes in ``mask``) are skipped, so the token after a turn's last one is the next turn's first,
    as in verl's multi-turn GAE. rewards, values, mask: (B, R) -> (advantages, returns) (B, R); on a
    mask without holes, exactly ``gae_advantages``. Rewards placed on unmasked tokens are lost."""
    packed_mask = pack_masked(mask, mask)[1]
    advantages, returns = gae_advantages(pack_masked(rewards, mask)[0], pack_masked(values, mask)[0], packed_mask,
                                         gamma, lam)
    return unpack_masked(advantages, mask), unpack_masked(returns, mask)


def clipped_policy_losses(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipped surrogate per token, ``max(-A * ratio, -A * clamp(ratio, 1 - clip, 1 + clip))``
    with ``ratio = exp(logp - old_logp)``; ``aggregate_token_losses`` averages it.

    logp (B, R) with grad, old_logp, advantages, mask: (B, R) -> (losses (B, R), 0 where ``mask``
    is 0; clip_fraction, a scalar: the share of response tokens where the clipped term is the
    larger one, no gradient).
    """
    maskb = mask.bool()
    ratio = torch.exp(torch.where(maskb, logp - old_logp, torch.zeros_like(logp)))
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    losses = torch.where(maskb, torch.max(unclipped, clipped), torch.zeros_like(logp))
    clip_fraction = masked_mean((clipped > unclipped).to(logp.dtype), mask).detach()
    return losses, clip_fraction


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate to the reference used as a loss term (Schulman's k3, GRPO's):
    ``exp(ref_logp - logp) - (ref_logp - logp) - 1``; non-negative, and unbiased for
    KL(policy || reference) on tokens sampled from the policy. logp, ref_logp: (B, R) -> (B, R)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


LOSS_AGGREGATIONS = ("token_mean", "sequence_mean", "sum_over_budget")


def aggregate_token_losses(
    losses: torch.Tensor,
    mask: torch.Tensor,
    how: str = "token_mean",
    budget: int | None = None,
    divisor: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Average per-token losses (B, R) over the response tokens of ``mask`` (B, R) into a scalar.

    - ``token_mean``: the sum over all response tokens / their number (PPO; every token weighs
      the same, whatever its sequence's length);
    - ``sequence_mean``: each sequence's token mean, then the mean over sequences (GRPO; a
      sequence's tokens share one unit of weight, so tokens of long sequences weigh less);
    - ``sum_over_budget``: each sequence's token sum / ``budget`` (the generation budget,
      ``max_new_tokens``), then the mean over sequences (Dr. GRPO: no length bias, and a constant
      scale).

    ``divisor`` replaces the count the sums are divided by (tokens for ``token_mean``, sequences
    otherwise). Data-parallel training passes the count over all processes / their number, so the
    gradients the processes average are those of one process holding the whole batch.
    """
    maskf = mask.to(losses.dtype)
    if how == "token_mean":
        total, count = (losses * maskf).sum(), maskf.sum()
    elif how == "sequence_mean":
        total, count = ((losses * maskf).sum(1) / maskf.sum(1).clamp(min=1)).sum(), maskf.new_tensor(mask.shape[0])
    elif how == "sum_over_budget":
        if budget is None or budget < 1:
            raise ValueError(f"sum_over_budget needs the generation budget (>= 1), got {budget}")
        total, count = (losses * maskf).sum() / budget, maskf.new_tensor(mask.shape[0])
    else:
        raise ValueError(f"unknown loss aggregation {how!r} (expected one of {LOSS_AGGREGATIONS})")
    return total / (count.clamp(min=1) if divisor is None else divisor)


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
    divisor: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """The clipped value loss over the response tokens:
    ``0.5 * mean(max((V - G)^2, (clamp(V, V_old - clip, V_old + clip) - G)^2))`` with G the returns.

    values (B, R) with grad, old_values, returns, mask: (B, R) -> scalar; ``divisor`` as in
    ``aggregate_token_losses`` (a token mean).
    """
    clipped = torch.max(torch.min(values, old_values + clip), old_values - clip)
    worst = torch.max((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * aggregate_token_losses(worst, mask, "token_mean", divisor=divisor)


# ---------------------------------------------------------------------------------------------
# Group-relative estimators (docs/design.md, "IRM: reinforcement learning"). ``rewards`` (B,) holds the sequence
# rewards of B = prompts x G completions, the G completions of a prompt in consecutive rows; each
# returns one advantage per sequence (B,), given to every response token of it. No critic.


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(B,) -> (B / G, G) float32, checking that whole groups of G >= 2 fill the batch."""
    if group_size < 2 or rewards.ndim != 1 or rewards.shape[0] % group_size:
        raise ValueError(f"group-relative advantages need groups of >= 2 completions filling the batch: "
                         f"{tuple(rewards.shape)} rewards, group size {group_size}")
    return rewards.float().view(-1, group_size)


def dr_grpo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Dr. GRPO: ``A_i = r_i - mean(r)`` over the group (no division by the std, which would
    up-weight groups whose rewards barely differ). rewards (B,) -> (B,)."""
    groups = _grouped(rewards, group_size)
    return (groups - groups.mean(1, keepdim=True)).flatten()


def grpo_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """GRPO: ``A_i = (r_i - mean(r)) / (std(r) + eps)`` over the group, the std Bessel-corrected
    (``torch.std``, as TRL and verl take it). A group of equal rewards gets 0. rewards (B,) -> (B,)."""
    std = _grouped(rewards, group_size).std(1).repeat_interleave(group_size)
    return dr_grpo_advantages(rewards, group_size) / (std + eps)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO: ``A_i = r_i - mean_{j != i}(r_j)``, the baseline of each completion the mean of the
    other G - 1 (so it does not depend on r_i: unbiased). rewards (B,) -> (B,)."""
    groups = _grouped(rewards, group_size)
    others = (groups.sum(1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).flatten()


def reinforce_pp_baseline_advantages(
    rewards: torch.Tensor,
    group_size: int,
    lengths: torch.Tensor,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """REINFORCE++-baseline: ``r_i - mean(r)`` over the group, then whitened (zero mean, unit
    Bessel-corrected variance) over all response tokens of the batch.

    rewards (B,), lengths (B,) response tokens per sequence -> (B,). Every token of sequence i
    carries the same value, so the token statistics are length-weighted sequence statistics;
    ``masked_whiten`` of the values spread over a (B, R) mask gives the same numbers.
    ``reduce`` sums a tensor over data-parallel processes (None: this process holds the whole
    batch), so the whitening is over the global batch.
    """
    reduce = reduce or (lambda t: t)
    centered = dr_grpo_advantages(rewards, group_size)
    weights = lengths.to(centered.dtype)
    count, weighted_sum = reduce(torch.stack([weights.sum(), (weights * centered).sum()])).unbind()
    if count < 2:
        raise ValueError("whitening needs at least two response tokens")
    mean = weighted_sum / count
    variance = reduce((weights * (centered - mean) ** 2).sum()) / (count - 1)
    return (centered - mean) * torch.rsqrt(variance + 1e-8)
