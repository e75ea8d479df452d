"""Multi-turn episodes (tl_lightning/episodes.py): reward combination and turn categories as pure
functions; on tiny-llama with a scripted policy (tests/scripts/scripted_policy.py), the token
layout against the SFT text, masks, MAE in RL, log-prob consistency between rollout and update,
batching, budgets, faults and safety; greedy evaluation with intervals."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch

from tl_lightning import episodes as episodes_module
from tl_lightning.calls import format_call, parse_calls
from tl_lightning.data.mae import Sample
from tl_lightning.records import Message, ToolCall, ToolSpec, Trajectory
from tl_lightning.data.render import render_sample
from tl_lightning.data.tokenize import tokenize_rendered
from tl_lightning.data.world import Result
from tl_lightning.environments import FunctionEnv, SyntheticWorldEnv
from tl_lightning.episodes import (
    EpisodeOptions,
    episode_batch,
    evaluate_episodes,
    execution_category,
    run_episodes,
    turn_category,
    turn_rewards,
    void_neutral_rewards,
)
from tl_lightning.modeling import TINY_LLAMA, LoraOptions, load_model, load_tokenizer
from tl_lightning.reward import RewardTable

SCRIPTS = Path(__file__).resolve().parent / "scripts"
sys.path.insert(0, str(SCRIPTS))
from scripted_policy import add, outputs_seen, scripted  # noqa: E402

TABLE = RewardTable()
FAILING, RIGHT = ToolCall("add", {"a": 1, "c": 2}), ToolCall("add", {"a": 1, "b": 2})
ANSWER = "The sum is 3."


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    return load_model(TINY_LLAMA), load_tokenizer(TINY_LLAMA)


def reply_text(prompt_format: str, turn: ToolCall | str) -> str:
    """What a model trained on the format writes for a call or an answer."""
    if isinstance(turn, str):
        return " " + turn if prompt_format == "codellama" else turn
    return " " + format_call(turn, "python") if prompt_format == "codellama" else format_call(turn, "tool_call")


def script(prompt_format: str, turns: list[ToolCall | str]):
    """Turn k writes ``turns[k]`` (k = tool outputs seen so far)."""
    return lambda context: reply_text(prompt_format, turns[min(outputs_seen(context), len(turns) - 1)])


def episodes_of(tiny, env, tasks, prompt_format="codellama", turns=(FAILING, RIGHT, ANSWER), options=None, **kw):
    model, tokenizer = tiny
    with scripted(tokenizer, script(prompt_format, list(turns))):
        return run_episodes(model, tokenizer, env, tasks, prompt_format=prompt_format,
                            options=options or EpisodeOptions(), max_new_tokens=64, table=TABLE, **kw)


def sum_env(**kw) -> FunctionEnv:
    return FunctionEnv([add], [{"query": "Add 1 and 2.", "steps": ["add(a=1, b=2)"], "answer": "3"}], **kw)


# ----------------------------------------------------------------------------- rewards


def test_turn_rewards_by_hand_in_each_mode():
    scores, outcome = [-2.0, 1.0, None], 1.0  # a failed call, the right call, the answer
    # each scored turn weighs 1/2: shares -1, 0.5, 0; the outcome 1 comes with the last turn
    assert turn_rewards(scores, outcome, "final_token") == [0.0, 0.0, 0.5]
    assert turn_rewards(scores, outcome, "per_turn") == [-1.0, 0.5, 1.0]
    # reward-to-go G2 = 1, G1 = 0.5 + 0.5 * 1 = 1, G0 = -1 + 0.5 * 1 = -0.5; placed G_k - G_{k+1}
    assert turn_rewards(scores, outcome, "discounted", discount=0.5) == [-1.5, 0.0, 1.0]
    assert turn_rewards([0.5], 0.0, "discounted", outcome_weight=2.0, discount=0.3) == [0.5]
    assert turn_rewards([None], 1.0, "per_turn", outcome_weight=0.5) == [0.5]


@pytest.mark.parametrize("scores", [[-2.0, 1.0, None], [1.0], [-0.5, -0.25, 1.0, None]])
def test_reward_modes_agree_on_the_sum_and_discount_one_is_per_turn(scores):
    final, per_turn = turn_rewards(scores, 1.0, "final_token"), turn_rewards(scores, 1.0, "per_turn")
    assert sum(final) == pytest.approx(sum(per_turn))  # the group estimators' scalar
    assert turn_rewards(scores, 1.0, "discounted", discount=1.0) == pytest.approx(per_turn)
    discounted = turn_rewards(scores, 1.0, "discounted", discount=0.9)
    to_go = [sum(discounted[k:]) for k in range(len(scores))]
    for k in range(len(scores) - 1):
        share = 0.0 if scores[k] is None else scores[k] / sum(s is not None for s in scores)
        assert to_go[k] == pytest.approx(share + 0.9 * to_go[k + 1])


def test_bad_reward_options_are_clear_errors():
    with pytest.raises(ValueError, match="reward_mode"):
        turn_rewards([1.0], 0.0, "sparse")
    with pytest.raises(ValueError, match="reward_mode"):
        EpisodeOptions(reward_mode="sparse")
    with pytest.raises(ValueError, match="turn_discount"):
        EpisodeOptions(turn_discount=1.5)


WEATHER = ToolSpec("get_weather", "", {"type": "object", "properties": {"city": {"type": "string"},
                                                                    "unit": {"type": "string"}}, "required": ["city"]})


def test_turn_categories_against_gold_by_execution_and_after_the_task():
    call = ToolCall("get_weather", {"city": "Paris", "unit": "c"})
    gold = ((ToolCall("get_weather", {"city": "Paris"}),),)
    ok = Result("{}", False)
    assert turn_category("text", [call], [ok], gold, [WEATHER]) == "redundant_or_missing"
    assert turn_category("I cannot.", [], [], gold, [WEATHER]) == "unparsable_or_unknown_tool"  # a call was due
    assert turn_category("Done.", [], [], (), [WEATHER]) is None
    assert turn_category("x", [call], [ok], (), [WEATHER]) == "redundant_or_missing"  # no call expected
    assert turn_category("Done.", [], [], None, [WEATHER]) is None
    assert turn_category("x", [call], [ok], None, [WEATHER]) == "exact"
    failures = [Result("e", True, kind) for kind in ("missing_argument", "unexpected_argument", "transient")]
    assert execution_category(failures) == "hallucinated"  # the worst of the turn's calls
    assert execution_category([Result("e", True, "unknown_tool"), ok]) == "unparsable_or_unknown_tool"
    assert execution_category([Result("e", True, "timeout")]) == "wrong_value"


def test_void_episodes_take_their_groups_mean_reward():
    rewards = torch.tensor([1.0, 5.0, 3.0, 0.0, 2.0, 2.0])
    void = torch.tensor([False, True, False, False, True, True])
    assert void_neutral_rewards(rewards, void, 2).tolist() == [1.0, 1.0, 3.0, 0.0, 0.0, 0.0]
    assert void_neutral_rewards(rewards, torch.zeros(6, dtype=torch.bool), 3).tolist() == rewards.tolist()


# ----------------------------------------------------------------------------- episodes


def sft_tokens(prompt_format, tokenizer, turns, outputs):
    """The SFT tokenization of user, the turns with the outputs between them, every turn a target."""
    messages = [Message("user", "Add 1 and 2.")]
    for turn, output in zip(turns, outputs + [None]):
        messages.append(Message("assistant", turn) if isinstance(turn, str) else Message("assistant", calls=(turn,)))
        if output is not None:
            messages.append(Message("tool", output, name="add"))
    traj = Trajectory("t", (ToolSpec(**{k: v for k, v in vars(sum_env().specs["add"]).items()}),), tuple(messages))
    targets = tuple(i for i, m in enumerate(messages) if m.role == "assistant")
    return tokenize_rendered(render_sample(Sample("t", traj, targets), prompt_format, tokenizer), tokenizer)


@pytest.mark.parametrize("prompt_format", ["codellama", "chat_template"])
def test_an_episode_is_token_for_token_the_sft_text_of_its_conversation(tiny, prompt_format):
    env = sum_env()
    [episode] = episodes_of(tiny, env, env.tasks, prompt_format)
    assert [t.text for t in episode.turns] == [reply_text(prompt_format, t).strip() for t in (FAILING, RIGHT, ANSWER)]
    assert [m.role for m in episode.messages] == ["user", "assistant", "tool", "assistant", "tool"]
    first, second = episode.turns[0].outputs[0], episode.turns[1].outputs[0]
    assert first.failed and first.output == "TypeError: add() got an unexpected keyword argument 'c'"
    assert second.output == "3" and not second.failed
    sft = sft_tokens(prompt_format, tiny[1], [FAILING, RIGHT, ANSWER], [first.output, second.output])
    # up to the answer's end marker (a chat template writes a newline after it, which nobody generates)
    end = max(i for i, label in enumerate(sft.labels) if label != -100) + 1
    assert episode.prompt_ids + episode.ids == sft.input_ids[:end]
    assert tiny[1].decode(sft.input_ids[end:]).strip() == ""
    # the policy's tokens are exactly the tokens SFT supervises; tool outputs are context
    supervised = [label != -100 for label in sft.labels[len(episode.prompt_ids):end]]
    assert episode.generated == supervised
    assert (episode.end, episode.answer, episode.solved, episode.calls) == ("answer", ANSWER, True, 2)
    # against the gold add(a=1, b=2): c is hallucinated, b missing
    assert [t.category for t in episode.turns] == ["hallucinated_and_redundant_or_missing", "exact", None]


def test_the_batch_masks_tool_outputs_places_rewards_and_mae_drops_failed_turns(tiny):
    env = sum_env()
    [episode] = episodes_of(tiny, env, env.tasks)
    pad = tiny[1].pad_token_id
    plain = episode_batch([episode], pad, EpisodeOptions(reward_mode="per_turn"), TABLE)
    mae = episode_batch([episode], pad, EpisodeOptions(reward_mode="per_turn", mae=True), TABLE)
    rollout = plain.rollout
    P = rollout.prompt_length
    assert rollout.sequences[0, P:].tolist() == episode.ids
    assert rollout.response_mask[0].tolist() == [int(g) for g in episode.generated]
    assert torch.equal(plain.policy_mask, rollout.response_mask)
    failed, right, answer = episode.turns
    expected = torch.zeros(len(episode.ids))
    # the scored turns' shares of -1.3 and 1, the outcome 1 with the answer
    expected[[failed.end - 1, right.end - 1, answer.end - 1]] = torch.tensor([-0.65, 0.5, 1.0])
    torch.testing.assert_close(plain.rewards[0], expected)
    # MAE in RL: the failed call turn leaves the policy loss, nothing else changes
    dropped = plain.policy_mask - mae.policy_mask
    assert dropped[0].nonzero().flatten().tolist() == list(range(failed.start, failed.end))
    torch.testing.assert_close(mae.rewards, plain.rewards)
    assert torch.equal(mae.rollout.response_mask, rollout.response_mask)
    assert plain.scores.tolist() == pytest.approx([0.85]) and plain.stats["failed_call_share"] == 0.5


@pytest.mark.parametrize("estimator", ["grpo", "gae"])
def test_log_probs_recomputed_over_the_sequence_equal_the_rollouts(tiny, estimator):
    """Sampled multi-turn episodes of different lengths (two forced call turns, then free text at
    temperature 0.7): the update's log-probs over the whole sequence equal generation's, fp32."""
    from tl_lightning.ppo import IRMPPOModule

    env = FunctionEnv([add], ["Add 1 and 2.", "Add 2 and 2, then more."])
    module = IRMPPOModule(model_name=TINY_LLAMA, lora=LoraOptions(r=4, alpha=8), environment=env, do_sample=True,
                          temperature=0.7, num_generations=2, max_new_tokens=12, advantage_estimator=estimator,
                          episodes=EpisodeOptions(max_turns=3, max_episode_tokens=200))
    module.configure_model()
    with torch.no_grad():  # a trained adapter
        for param in module.actor.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn_like(param))

    def calls(context: str) -> str | None:  # two calls (the second task's longer), then free text
        return {0: " add(a=1, b=2)", 1: " add(a=2, b=22)" if "more" in context else None}.get(outputs_seen(context))

    with scripted(module.tokenizer, calls):
        scored = module.make_episodes({"tasks": [0, 0, 1, 1], "prompt_format": "codellama"})
    mask = scored.rollout.response_mask.bool()
    assert (~mask).any() and len({int(n) for n in mask.sum(1)}) > 1  # tool outputs between, lengths differ
    with torch.no_grad():
        recomputed = module.logprobs(module.actor, scored.rollout)
    torch.testing.assert_close(recomputed[mask], scored.rollout.logprobs[mask], rtol=0, atol=1e-5)


def test_finished_episodes_leave_the_batch(tiny):
    env = FunctionEnv([add], ["Say hi.", "Add 1 and 2."])
    sizes = []

    def counting(real):
        def generate(*args, **kwargs):
            sizes.append(args[2].shape[0])
            return real(*args, **kwargs)
        return generate

    def hi_or_add(context: str) -> str:
        return " Hi." if "Say hi" in context else reply_text("codellama", [RIGHT, RIGHT, ANSWER][outputs_seen(context)])
    model, tokenizer = tiny
    with scripted(tokenizer, hi_or_add):
        with mock.patch.object(episodes_module, "generate", counting(episodes_module.generate)):
            done = run_episodes(model, tokenizer, env, env.tasks, prompt_format="codellama",
                                options=EpisodeOptions(), max_new_tokens=16)
    assert sizes == [2, 1, 1] and [len(e.turns) for e in done] == [1, 3]
    assert done[1].turns[1].category == "exact"  # no gold: scored by execution


def test_episodes_end_at_the_turn_limit_the_token_budget_or_a_cut_turn(tiny):
    env = sum_env()
    [looping] = episodes_of(tiny, env, env.tasks, turns=[RIGHT], options=EpisodeOptions(max_turns=3))
    assert (looping.end, len(looping.turns), looping.solved) == ("max_turns", 3, False)
    assert [t.category for t in looping.turns] == ["exact", "redundant_or_missing", "redundant_or_missing"]
    [short] = episodes_of(tiny, env, env.tasks, turns=[RIGHT], options=EpisodeOptions(max_episode_tokens=20))
    assert short.end == "token_budget" and len(short.ids) < 20 and len(short.turns) == 1
    model, tokenizer = tiny  # free text that never reaches eos within 5 tokens: a cut turn, no answer
    [cut] = run_episodes(model, tokenizer, env, env.tasks, prompt_format="codellama", options=EpisodeOptions(),
                         max_new_tokens=5, do_sample=True, seeds=[3])
    assert (cut.end, cut.answer, len(cut.ids)) == ("cut", None, 5)


class Fragile(FunctionEnv):
    """Fails in reset for one task and in step for another."""

    def reset(self, task):
        if "reset" in task.messages[-1].content:
            raise RuntimeError("no such account")
        return super().reset(task)

    def step(self, calls):
        if "step" in self.task.messages[-1].content:
            raise ConnectionError("backend down")
        outputs, done, info = super().step(calls)
        return ([42] if "number" in self.task.messages[-1].content else outputs), done, info


def test_a_failing_environment_voids_its_episode_only(tiny, caplog):
    env = Fragile([add], ["Add 1 and 2.", "Break in reset.", "Break in step.", "Answer a number."])
    with caplog.at_level(logging.WARNING, logger="tl_lightning.episodes"):
        fine, at_reset, at_step, malformed = episodes_of(tiny, env, env.tasks, turns=[RIGHT, ANSWER])
    assert malformed.void and malformed.error.startswith("step: ValueError: step gave [42] for 1 calls")
    assert fine.solved and fine.end == "answer" and not fine.void  # no gold steps, no expected answer: any answer
    assert at_reset.void and at_reset.error == "reset: RuntimeError: no such account" and at_reset.ids == []
    assert at_step.void and at_step.error == "step: ConnectionError: backend down" and len(at_step.turns) == 1
    assert "backend down" in caplog.text and "no such account" in caplog.text
    scored = episode_batch([fine, at_reset, at_step], tiny[1].pad_token_id, EpisodeOptions(), TABLE)
    assert scored.void.tolist() == [False, True, True]
    assert scored.policy_mask[1:].sum() == 0 and scored.rewards[1:].abs().sum() == 0
    assert scored.rollout.response_mask[1].sum() == 1  # the reset failure's one placeholder token


def test_model_text_is_parsed_never_evaluated(tiny, tmp_path):
    marker = tmp_path / "pwned"
    env = sum_env()
    for turn in (f'__import__("os").system("touch {marker}")', f'add(a=__import__("os").system("touch {marker}"))',
                 f'add(a="__import__(\'os\').system(\'touch {marker}\')", b=1)'):
        [episode] = episodes_of(tiny, env, env.tasks, turns=[turn, ANSWER])
        assert not marker.exists()
        first = episode.turns[0]
        assert first.calls == () or first.outputs[0].error_kind == "bad_value", turn
    assert parse_calls('add(a="x", b=1)')[0].arguments == {"a": "x", "b": 1}


def test_two_step_world_tasks_with_the_gold_policy(tiny):
    env = SyntheticWorldEnv(split="heldout_domains", n=30, seed=1)
    tasks = [t for t in env.tasks if len(t.steps) == 2][:2] + [t for t in env.tasks if len(t.steps[0][0]) == 2][:1]

    def gold(context: str) -> str:
        task = next(t for t in tasks if t.messages[0].content in context)
        k = outputs_seen(context) // len(task.steps[0][0]) if len(task.steps) == 1 else outputs_seen(context)
        if k >= len(task.steps):
            return " Done."
        return " " + "\n".join(format_call(c, "python") for c in task.steps[k][0])

    model, tokenizer = tiny
    with scripted(tokenizer, gold):
        done = run_episodes(model, tokenizer, env, tasks, prompt_format="codellama", options=EpisodeOptions(),
                            max_new_tokens=96)
    assert [e.solved for e in done] == [True, True, True]
    assert [len(e.turns) for e in done] == [3, 3, 2] and [e.calls for e in done] == [2, 2, 2]
    assert all(t.category == "exact" for e in done for t in e.turns[:-1])


def test_evaluation_reports_success_and_calls_per_solved_with_intervals(tiny):
    env = FunctionEnv([add], [{"query": f"Add {i} and 2.", "answer": "3" if i == 1 else "x"} for i in range(4)])
    model, tokenizer = tiny
    with scripted(tokenizer, script("codellama", [RIGHT, ANSWER])):
        report = evaluate_episodes(model, tokenizer, env, prompt_format="codellama", options=EpisodeOptions(),
                                   max_new_tokens=16, batch_size=3)
    assert report["tasks"] == 4 and report["success"]["estimate"] == 25.0  # only "Add 1 and 2." holds "3"
    assert report["success"]["low"] <= 25.0 <= report["success"]["high"]
    assert report["calls_per_solved"] == {"estimate": 1.0, "low": 1.0, "high": 1.0, "n": 1, "seeds": 1}
    assert report["categories"]["exact"] == 1.0 and report["end_answer"] == 1.0
    assert [e["solved"] for e in report["episodes"]] == [False, True, False, False]
