"""rollouts.py: groups of consecutive rows, IRM scores and category shares, the figures logged per
step, and the passes over a rollout (the shared-prompt reference pass equals the full one)."""

from __future__ import annotations

import pytest
import torch

from tl_lightning.generation import Rollout
from tl_lightning.modeling import TINY_LLAMA, LoraOptions
from tl_lightning.ppo import IRMPPOModule
from tl_lightning.records import ToolCall, ToolSpec
from tl_lightning.reward import CATEGORIES
from tl_lightning.rollouts import (
    ScoredRollout,
    category_shares,
    group_reward_stats,
    repeat_prompts,
    rollout_metrics,
    score_responses,
    single_turn_scored,
)

LORA = LoraOptions(r=4, alpha=8, dropout=0.0)
WEATHER = ToolSpec("get_weather", "Current weather.", {"type": "object", "properties": {"city": {"type": "string"}},
                                                       "required": ["city"]})
GOLD = ((ToolCall("get_weather", {"city": "Paris"}),),)


def test_scores_and_category_shares():
    texts = ['get_weather(city="Paris")', 'get_weather(city="Lima")', "I cannot help", 'get_weather(town="Paris")']
    rewards, categories = score_responses(texts, [GOLD] * 4, [(WEATHER,)] * 4)
    assert rewards.tolist() == pytest.approx([1.0, -0.25, -2.0, -1.3])
    assert categories == ["exact", "wrong_value", "unparsable_or_unknown_tool", "hallucinated_and_redundant_or_missing"]
    shares = category_shares(categories)
    assert set(shares) == set(CATEGORIES) and sum(shares.values()) == pytest.approx(1.0)
    assert shares["exact"] == 0.25 and shares["wrong_tool"] == 0.0
    custom, _ = score_responses(texts[:1], [GOLD], [(WEATHER,)], table=IRMPPOModule(
        model_name=TINY_LLAMA, lora=LORA, reward_table={"exact": 2.0}).table)
    assert custom.tolist() == [2.0]


def test_groups_sit_in_consecutive_rows():
    batch = {"input_ids": torch.tensor([[1, 2], [3, 4]]), "ids": ["a", "b"], "gold": [GOLD, ()]}
    grouped = repeat_prompts(batch, 3)
    assert grouped["input_ids"].tolist() == [[1, 2]] * 3 + [[3, 4]] * 3
    assert grouped["ids"] == ["a"] * 3 + ["b"] * 3 and grouped["gold"] == [GOLD] * 3 + [()] * 3
    assert repeat_prompts(batch, 1) is batch
    stats = group_reward_stats(torch.tensor([1.0, 1.0, -2.0, 0.0]), 2)
    assert stats == pytest.approx({"group_std": 2 ** 0.5 / 2, "zero_variance_groups": 0.5})


def fake_rollout(response_mask: list[list[int]], texts: list[str], prompt: int = 2) -> Rollout:
    mask = torch.tensor(response_mask)
    B, R = mask.shape
    sequences = torch.arange(B * (prompt + R)).view(B, prompt + R) % 7 + 1
    attention = torch.cat([torch.ones(B, prompt, dtype=torch.long), mask], 1)
    return Rollout(sequences, attention, attention.cumsum(1) - 1, mask, texts, prompt)


def test_a_single_answer_is_scored_on_its_last_token():
    rollout = fake_rollout([[1, 1, 1], [1, 0, 0]], ['get_weather(city="Paris")', "no call"])
    scored = single_turn_scored(rollout, [GOLD] * 2, [(WEATHER,)] * 2, IRMPPOModule(
        model_name=TINY_LLAMA, lora=LORA).table, clip_score=1.5)
    assert scored.scores.tolist() == [1.0, -2.0]  # the scores as the table gives them
    assert scored.rewards.tolist() == [[0.0, 0.0, 1.0], [-1.5, 0.0, 0.0]]  # clipped, on the last token
    assert torch.equal(scored.policy_mask, rollout.response_mask) and not scored.void.any()
    assert scored.categories == ["exact", "unparsable_or_unknown_tool"]


def test_the_logged_figures_of_a_rollout_batch():
    rollout = fake_rollout([[1, 1], [1, 0], [1, 1], [1, 1]], ["a", "b", "c", "d"])
    scored = ScoredRollout(rollout, rollout.response_mask, torch.zeros(4, 2), torch.tensor([1.0, 1.0, -2.0, 0.0]),
                           ["exact", "exact", "wrong_tool", "wrong_value"], torch.zeros(4, dtype=torch.bool),
                           {"success": 0.5})
    advantages = torch.tensor([[1.0, 1.0], [3.0, 9.0], [-1.0, -1.0], [0.0, 0.0]])  # 9 sits on padding
    figures = rollout_metrics(scored, advantages, torch.zeros(4, 2), group_size=2)
    assert figures["ppo/advantage_mean"] == pytest.approx(3.0 / 7)
    assert figures["ppo/response_length"] == pytest.approx(7 / 4)
    assert figures["reward/zero_variance_groups"] == 0.5 and figures["reward/share_exact"] == 0.5
    assert figures["episodes/success"] == 0.5 and "episodes/rollout_logprob_gap" not in figures
    assert "reward/group_std" not in rollout_metrics(scored, advantages, torch.zeros(4, 2), group_size=1)


@pytest.mark.slow
def test_the_shared_prompt_pass_equals_the_full_pass():
    """The reference pass runs each group's prompt once and repeats its KV cache: the same
    log-probs as a full forward of every row, to float rounding."""
    from tl_lightning.generation import generate
    from tl_lightning.modeling import load_model, load_tokenizer
    from tl_lightning.losses import gather_logprobs
    from tl_lightning.rollouts import response_logits, shared_prompt_logprobs

    model, tokenizer = load_model(TINY_LLAMA), load_tokenizer(TINY_LLAMA)
    prompts = tokenizer(["Weather in Paris?", "A much longer question about the weather in Lima today?"],
                        padding=True, padding_side="left", return_tensors="pt")
    batch = repeat_prompts({"input_ids": prompts["input_ids"], "attention_mask": prompts["attention_mask"]}, 2)
    rollout = generate(model, tokenizer, batch["input_ids"], batch["attention_mask"], max_new_tokens=4,
                       do_sample=True, temperature=0.7, seeds=[1, 2, 3, 4])
    with torch.no_grad():
        full = gather_logprobs(response_logits(model, rollout, 0.7), rollout.response_ids)
    shared = shared_prompt_logprobs(model, rollout, 2, 0.7)
    mask = rollout.response_mask.bool()
    assert torch.allclose(shared[mask], full[mask], atol=1e-5)
