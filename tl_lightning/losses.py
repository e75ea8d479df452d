"""Losses as small pure functions.

PKT part: the key-token-weighted cross-entropy of TL-Training (DESIGN §2). Labels follow the
Hugging Face convention (aligned with ``input_ids``, ``-100`` = no loss); the causal shift happens
here, and vocabulary-sized logits are only needed at the positions that predict a supervised
token (``prediction_mask``; transformers' ``logits_to_keep`` computes just those).
"""

from __future__ import annotations

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
    """PKT loss ``sum(w * CE) / sum(w)`` over supervised tokens (DESIGN §2).

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


def kl_penalized_rewards(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    score: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    clip_score: float = 5.0,
) -> torch.Tensor:
    """Per-token PPO rewards: ``-kl_coef * (logp - ref_logp)`` on every response token, plus the
    sequence's score clipped to ``[-clip_score, clip_score]`` on its last token.

    logp, ref_logp, mask: (B, R); score: (B,) -> rewards (B, R), 0 where ``mask`` is 0.

    DeepSpeed-Chat adds the score at ``start + n`` with ``n`` the number of non-pad generated
    tokens; with a pad token equal to eos (LLaMA, SmolLM2) that is the eos token, which its mask
    leaves out. Here the stop token belongs to the mask, so "the last masked token" is the same
    position.
    """
    check_response_mask(mask)
    maskf = mask.to(logp.dtype)
    rewards = -kl_coef * (logp - ref_logp) * maskf
    last = maskf.sum(1).long() - 1
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += score.to(rewards.dtype).clamp(-clip_score, clip_score)
    return rewards


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


def ppo_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipped surrogate ``mean(max(-A * ratio, -A * clamp(ratio, 1 - clip, 1 + clip)))`` over
    the response tokens, with ``ratio = exp(logp - old_logp)``.

    logp (B, R) with grad, old_logp, advantages, mask: (B, R) -> (loss, clip_fraction), scalars;
    clip_fraction is the share of tokens where the clipped term is the larger one (no gradient).
    """
    maskb = mask.bool()
    ratio = torch.exp(torch.where(maskb, logp - old_logp, torch.zeros_like(logp)))
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).to(logp.dtype), mask).detach()
    return loss, clip_fraction


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
) -> torch.Tensor:
    """The clipped value loss over the response tokens:
    ``0.5 * mean(max((V - G)^2, (clamp(V, V_old - clip, V_old + clip) - G)^2))`` with G the returns.

    values (B, R) with grad, old_values, returns, mask: (B, R) -> scalar.
    """
    clipped = torch.max(torch.min(values, old_values + clip), old_values - clip)
    worst = torch.max((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * masked_mean(worst, mask)
