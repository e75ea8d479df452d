"""Rollouts of the RL step (``ppo.IRMPPOModule``) between generation and the updates: prompts
repeated into groups, single answers scored by the IRM reward (``episodes.py`` scores multi-turn
episodes into the same ``ScoredRollout``), and the no-grad passes that read a rollout back
(log-probs, with each group's shared prompt run once).

Shapes: B rows (prompts x G completions, a group in consecutive rows), P prompt tokens (LEFT
padded), R response tokens (right padded); ``Rollout`` is ``generation.py``'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tl_lightning.generation import Rollout, StopRule, generate
from tl_lightning.losses import gather_logprobs, tempered_logits, terminal_rewards
from tl_lightning.reward import CATEGORIES, RewardTable, classify_call

# RL rollouts end at eos / end-of-turn text only: an extra call after the first must be scored
ROLLOUT_STOP = StopRule(after_call=False)


@dataclass
class ScoredRollout:
    """What an RL step trains on: the rollout (for episodes, the first prompts LEFT-padded to
    P, then every later token right-padded to R; ``response_mask`` 1 on the generated tokens), the
    tokens the policy loss covers (``policy_mask`` (B, R): the generated tokens less MAE's dropped
    turns and void episodes), the rewards before the KL (``rewards`` (B, R)), each row's scalar
    reward and the IRM categories (for logging), the void rows (B,) and episode statistics
    (``episodes.episode_stats``, and the share of the generated tokens the policy loss covers)."""

    rollout: Rollout
    policy_mask: torch.Tensor
    rewards: torch.Tensor
    scores: torch.Tensor
    categories: list[str]
    void: torch.Tensor
    stats: dict[str, float] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> "ScoredRollout":
        """The same with every tensor on ``device``."""
        return ScoredRollout(self.rollout.to(device), self.policy_mask.to(device), self.rewards.to(device),
                             self.scores.to(device), self.categories, self.void.to(device), self.stats)


# ---------------------------------------------------------------------------------------------
# groups and rewards


def repeat_prompts(batch: dict[str, Any], times: int) -> dict[str, Any]:
    """A prompt batch with each row ``times`` times in consecutive rows (a group of completions):
    tensors and lists alike, along their first dimension."""
    if times == 1:
        return batch
    return {k: v.repeat_interleave(times, 0) if isinstance(v, torch.Tensor)
            else [x for x in v for _ in range(times)] if isinstance(v, list) else v for k, v in batch.items()}


def group_reward_stats(scores: torch.Tensor, group_size: int) -> dict[str, float]:
    """How much the scores (B,) vary within the groups of ``group_size`` consecutive rows: the mean
    within-group std and the share of groups whose scores are all equal (they carry no signal for
    a group-relative estimator)."""
    groups = scores.float().view(-1, group_size)
    spread = groups.max(1).values - groups.min(1).values
    return {"group_std": groups.std(1).mean().item(), "zero_variance_groups": (spread == 0).float().mean().item()}


def score_responses(texts: Sequence[str], gold: Sequence[Any], tools: Sequence[Any],
                    table: RewardTable | None = None) -> tuple[torch.Tensor, list[str]]:
    """IRM rewards (B,) float32 and categories of generated texts against the batch's ``gold``
    call sets and ``tools`` (text that is no call scores the table's lowest category)."""
    table = table or RewardTable()
    categories = [classify_call(text, g, t, table) for text, g, t in zip(texts, gold, tools, strict=True)]
    return torch.tensor([table.value(c) for c in categories], dtype=torch.float32), categories


def category_shares(categories: Sequence[str]) -> dict[str, float]:
    """Share of each reward category (all of ``CATEGORIES``, zeros included)."""
    counts = Counter(categories)
    return {c: counts[c] / max(len(categories), 1) for c in CATEGORIES}


def single_turn_scored(rollout: Rollout, gold: Sequence[Any], tools: Sequence[Any], table: RewardTable,
                       clip_score: float) -> ScoredRollout:
    """A rollout of one answer per prompt as a ``ScoredRollout``: its IRM score (clipped) on the
    last response token, every response token in the policy loss."""
    scores, categories = score_responses(rollout.texts, gold, tools, table)
    scores = scores.to(rollout.sequences.device)
    mask = rollout.response_mask
    return ScoredRollout(rollout, mask, terminal_rewards(scores, mask, clip_score), scores, categories,
                         torch.zeros(mask.shape[0], dtype=torch.bool, device=mask.device))


def rollout_metrics(scored: ScoredRollout, advantages: torch.Tensor, sampled_logp: torch.Tensor,
                    group_size: int) -> dict[str, float]:
    """The figures an RL step logs about its rollout batch: the advantages (B, R) over the generated
    tokens, the mean response length, the reward spread within groups (``group_size`` > 1), the
    share of each IRM category, the episodes' statistics, and (episodes) how far the log-probs
    recorded during generation are from ``sampled_logp`` (B, R), the update's."""
    mask = scored.rollout.response_mask
    token_advantages = advantages[mask.bool()].float()
    logged = {"ppo/advantage_mean": token_advantages.mean().item(),
              "ppo/advantage_std": token_advantages.std(unbiased=False).item(),
              "ppo/response_length": mask.sum(1).float().mean().item()}
    if group_size > 1:
        logged.update({f"reward/{k}": v for k, v in group_reward_stats(scored.scores, group_size).items()})
    logged.update({f"reward/share_{c}": s for c, s in category_shares(scored.categories).items()})
    logged.update({f"episodes/{k}": v for k, v in scored.stats.items()})
    if scored.rollout.logprobs is not None:
        gap = (sampled_logp - scored.rollout.logprobs).abs()[mask.bool() & ~scored.void[:, None]]
        logged["episodes/rollout_logprob_gap"] = gap.max().item() if gap.numel() else 0.0
    return logged


@torch.no_grad()
def evaluate_rewards(model, tokenizer, dataloader, *, max_new_tokens: int = 128,
                     table: RewardTable | None = None) -> dict[str, Any]:
    """Greedy rollouts on every prompt of ``dataloader`` (``stage="rl"``/``"eval"`` batches) and
    their IRM scores: ``{"prompts", "mean_reward", "shares": {category: share}}``."""
    device = next(model.parameters()).device
    rewards, categories = [], []
    for batch in dataloader:
        rollout = generate(model, tokenizer, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                           max_new_tokens=max_new_tokens, stop=ROLLOUT_STOP)
        batch_rewards, batch_categories = score_responses(rollout.texts, batch["gold"], batch["tools"], table)
        rewards.append(batch_rewards)
        categories += batch_categories
    if not categories:
        raise ValueError("evaluate_rewards got an empty dataloader")
    return {"prompts": len(categories), "mean_reward": torch.cat(rewards).mean().item(),
            "shares": category_shares(categories)}


# ---------------------------------------------------------------------------------------------
# passes over a rollout


def forward_inputs(rollout: Rollout) -> dict[str, torch.Tensor]:
    """The model kwargs of a whole rollout: ids, mask and the positions generation used."""
    return {"input_ids": rollout.sequences, "attention_mask": rollout.attention_mask,
            "position_ids": rollout.position_ids}


def response_logits(model: nn.Module, rollout: Rollout, temperature: float) -> torch.Tensor:
    """(B, R, V) logits that predict the response tokens (only those positions are projected),
    divided by the sampling ``temperature``: every log-prob taken from them (old, new, reference,
    hence the KL) and the entropy are those of the distribution the tokens were drawn from."""
    R = rollout.response_mask.shape[1]
    out = model(**forward_inputs(rollout), logits_to_keep=R + 1, use_cache=False)
    return tempered_logits(out.logits[:, :-1], temperature)


@torch.no_grad()
def shared_prompt_logprobs(model: nn.Module, rollout: Rollout, group_size: int, temperature: float) -> torch.Tensor:
    """(B, R) log-probs of the response tokens, like ``response_logits`` without grad, but the G
    rows of a group share their prompt: it runs once per group, its KV cache is repeated G times
    and only the responses run on top. A forward over P + R tokens per row becomes P / G + R, so
    long tool-list prompts stop dominating (the values agree with the full pass to float rounding,
    which is why the ratio's old log-probs do not come from here)."""
    G, P = group_size, rollout.prompt_length
    if G == 1:
        return gather_logprobs(response_logits(model, rollout, temperature), rollout.response_ids)
    firsts = torch.arange(0, rollout.sequences.shape[0], G, device=rollout.sequences.device)
    was_training = model.training
    model.eval()  # the KV cache; dropout is off anyway, and gradient checkpointing would drop the cache
    try:
        prompt = model(input_ids=rollout.sequences[firsts, :P], attention_mask=rollout.attention_mask[firsts, :P],
                       position_ids=rollout.position_ids[firsts, :P], use_cache=True, logits_to_keep=1)
        logits = [prompt.logits.repeat_interleave(G, 0)]  # predicts response token 0
        R = rollout.response_mask.shape[1]
        if R > 1:
            cache = prompt.past_key_values
            cache.batch_repeat_interleave(G)
            logits.append(model(input_ids=rollout.sequences[:, P:-1], attention_mask=rollout.attention_mask[:, :-1],
                                position_ids=rollout.position_ids[:, P:-1], past_key_values=cache,
                                use_cache=True).logits)
    finally:
        model.train(was_training)
    return gather_logprobs(tempered_logits(torch.cat(logits, 1), temperature), rollout.response_ids)
