"""Multi-turn RL episodes in tool environments (``environments.py``): rollouts, their rewards, and
the batch an RL step trains on (docs/design.md, "Multi-turn episodes").

Rollout (``run_episodes``), batched over episodes: the policy generates an assistant turn for every
running episode (``generation.generate``, one call per turn, ending at eos or end-of-turn text);
each turn's calls are parsed (``calls.parse_calls``); a turn without a call is the final answer and
ends the episode; otherwise the environment executes the calls and the outputs are appended in the
prompt format's tool-output role; repeat until an answer, ``max_turns``, the token budget
(``max_episode_tokens``, everything after the first prompt) or the environment's ``done``.
Finished episodes leave the batch.

Tokens. An episode is kept as token ids: the first prompt (``encode_prompt(render_prompt(...))``),
then each turn's ids exactly as sampled (its stop token included), then the text
``render.render_continuation`` puts between that turn and the next generation prompt (the tool
outputs), encoded on its own. In both prompt formats a turn ends with the end marker (the eos
token) and the continuation starts after it, so the concatenation is the token sequence of the SFT
text of the same conversation (tests/test_episodes.py checks it for SmolLM2's tokenizer). A turn
that stops without its eos (cut by a budget, or at end-of-turn text) gets the eos text appended as
context, so the next turn starts as in training. Only the generated tokens are trained on
(``response_mask``); tool outputs are context. Positions count the real tokens before each one,
as generation saw them, so log-probs recomputed over the whole sequence equal those recorded
during the rollout (to float rounding).

Rewards, per call turn (``turn_category``), the IRM category:

- against the environment's gold call sets for that turn (``env.gold()``) where there are some, as
  the single-call reward does (an answer where a call was due is ``unparsable_or_unknown_tool``);
- a call where the environment expects none any more (``gold() == ()``) is
  ``redundant_or_missing`` (a call the gold does not have); an answer then is not scored;
- with no gold (``gold()`` None or absent), by execution (``EXECUTION_CATEGORIES``, the worst call
  of the turn): unknown tool, hallucinated or missing argument, a bad value or a tool that raised or
  hung; a call that ran is ``exact``.

The turn scores are averaged over the episode's scored turns (so an episode's call reward stays in
the IRM range whatever its length, and repeating a good call earns nothing), plus
``outcome_weight`` times the outcome (``env.outcome_reward(answer)``: 1 if solved). How they reach
the tokens (``reward_mode``; ``turn_rewards``, values placed on each turn's last generated token):

- ``final_token``: everything on the episode's last generated token, as the single-call reward;
- ``per_turn``: each turn's share on its own last token, the outcome on the last one: PPO's critic
  then credits a turn with its own and the later turns' rewards;
- ``discounted``: the reward-to-go from turn k is ``G_k = r_k + turn_discount * G_{k+1}`` (the
  outcome arriving with the last turn): earlier fixes are worth more; with a discount of 1 it is
  ``per_turn``.

The group-relative estimators need one scalar per episode: the sum of its token rewards (``G_0``),
which is the same for ``final_token`` and ``per_turn`` (they differ only for PPO's critic) and
discounts the later turns under ``discounted``.

MAE in RL (``mae``): the policy's own failed call turns (a call whose output failed) are left out
of the policy loss, as MAE leaves failed turns out of SFT targets; they stay in the context of the
later turns, their rewards still count, the critic still learns their values. Without it, a failed
call in an episode that recovers and succeeds shares the episode's positive advantage.

Faults: a reset, step, gold or outcome that raises, or outputs that are not one ``Result`` with a
text output per call, end that episode (``end == "env_error"``, the reason logged and kept in ``Episode.error``); the
episode is void: no gradient, and for the group estimators its reward is the mean of its group's
other episodes (``void_neutral_rewards``), so it moves nobody's advantage. Tools that raise or hang
are the environment's to report as error outputs (``environments.FunctionEnv``).
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tl_lightning.calls import ParseFailure, parse_calls
from tl_lightning.data.render import render_continuation, render_prompt
from tl_lightning.data.tokenize import encode_prompt
from tl_lightning.data.world import Result
from tl_lightning.generation import Rollout, StopRule, generate, sampling_seed, stop_token_ids
from tl_lightning.records import Message, ToolCall, ToolSpec, Trajectory
from tl_lightning.reward import CATEGORIES, RewardTable, classify_call
from tl_lightning.rollouts import ScoredRollout
from tl_lightning.stats import bootstrap_mean

log = logging.getLogger(__name__)

REWARD_MODES = ("final_token", "per_turn", "discounted")
ENDS = ("answer", "cut", "max_turns", "token_budget", "env_done", "env_error")
"""Why an episode ended: a final answer; a turn without a call that ran out of tokens before its
end; the turn limit; the token budget; the environment's ``done``; the environment failed."""
TURN_END = StopRule()  # a turn ends at eos or end-of-turn text

EXECUTION_CATEGORIES = {
    None: "exact",
    "unknown_tool": "unparsable_or_unknown_tool",
    "unexpected_argument": "hallucinated",
    "missing_argument": "redundant_or_missing",
    "bad_value": "wrong_value",
    "tool_error": "wrong_value",  # the call fit the schema, the tool refused its values
    "timeout": "wrong_value",
    "no_record": "wrong_value",  # a replay without this call's output
    "transient": "exact",  # the service's failure, not the call's
}
"""The IRM category of one executed call by its ``Result.error_kind`` (scoring without gold)."""


@dataclass(frozen=True)
class EpisodeOptions:
    """How episodes run and are rewarded (module docstring).

    Args:
        max_turns: assistant turns per episode at most.
        max_episode_tokens: tokens after the first prompt at most (generated turns and tool
            outputs; each turn also stops at the module's ``max_new_tokens``).
        reward_mode: ``"final_token"``, ``"per_turn"`` or ``"discounted"``.
        outcome_weight: the outcome reward's weight beside the mean turn score.
        turn_discount: ``discounted``'s factor per turn.
        mae: leave the policy's failed call turns out of the policy loss (MAE in RL).
    """

    max_turns: int = 4
    max_episode_tokens: int = 1024
    reward_mode: str = "final_token"
    outcome_weight: float = 1.0
    turn_discount: float = 0.9
    mae: bool = False

    def __post_init__(self) -> None:
        if self.max_turns < 1 or self.max_episode_tokens < 2:
            raise ValueError(f"max_turns must be >= 1 and max_episode_tokens >= 2, got {self.max_turns}, "
                             f"{self.max_episode_tokens}")
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {self.reward_mode!r}")
        if not 0.0 <= self.turn_discount <= 1.0:
            raise ValueError(f"turn_discount must be in [0, 1], got {self.turn_discount}")

    def generated_budget(self, max_new_tokens: int) -> int:
        """The most tokens an episode can generate: Dr. GRPO's loss constant."""
        return min(self.max_turns * max_new_tokens, self.max_episode_tokens)


@dataclass
class Turn:
    """One assistant turn: its text (cut at its end), its calls (none: an answer), their outputs,
    its IRM category (None: not scored) and where its generated tokens sit in ``Episode.ids``
    (``[start, end)``)."""

    text: str
    calls: tuple[ToolCall, ...]
    outputs: tuple[Result, ...]
    category: str | None
    start: int
    end: int

    @property
    def failed(self) -> bool:
        """Whether a call of the turn failed (what MAE drops)."""
        return any(o.failed for o in self.outputs)


@dataclass
class Episode:
    """One episode: its task, the first prompt's ids, then every token after it (``ids``) with
    whether the policy generated it and the log-prob generation gave it (0 for tool outputs), the
    turns, the final answer (None if it ended otherwise), why it ended (``ENDS``; None while it
    runs), the environment's error, and the outcome reward."""

    task_id: str
    prompt_ids: list[int]
    tools: tuple[ToolSpec, ...] = ()
    messages: list[Message] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    generated: list[bool] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    answer: str | None = None
    end: str | None = None
    error: str | None = None
    outcome: float = 0.0

    @property
    def void(self) -> bool:
        """The environment failed: the episode says nothing about the policy."""
        return self.end == "env_error"

    @property
    def solved(self) -> bool:
        """A positive outcome reward (the built-in environments give 1 for a solved task)."""
        return not self.void and self.outcome > 0

    @property
    def calls(self) -> int:
        return sum(len(t.calls) for t in self.turns)

    def append(self, ids: Sequence[int], generated: bool, logprobs: Sequence[float] | None = None) -> None:
        self.ids += ids
        self.generated += [generated] * len(ids)
        self.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(ids)


# ---------------------------------------------------------------------------------- rewards


def execution_category(outputs: Sequence[Result], table: RewardTable | None = None) -> str:
    """The IRM category of a call turn by what execution reported: its worst call's
    (``EXECUTION_CATEGORIES``)."""
    table = table or RewardTable()
    return min((EXECUTION_CATEGORIES[o.error_kind] for o in outputs), key=table.value, default="exact")


def turn_category(text: str, calls: Sequence[ToolCall], outputs: Sequence[Result], gold: Any,
                  tools: Sequence[ToolSpec], table: RewardTable | None = None) -> str | None:
    """The IRM category of one turn (module docstring): against ``gold`` call sets, as a call
    nobody expects (``gold == ()``), or by execution (``gold`` None); None for an answer turn
    that is not scored."""
    if gold is None:
        return execution_category(outputs, table) if calls else None
    if not gold:
        return "redundant_or_missing" if calls else None
    return classify_call(list(calls) if calls else text, gold, tools, table)


def turn_rewards(scores: Sequence[float | None], outcome: float, mode: str = "final_token",
                 outcome_weight: float = 1.0, discount: float = 1.0) -> list[float]:
    """The reward placed on the last generated token of each of an episode's K >= 1 turns, from
    the turns' IRM scores (None: a turn not scored) and the outcome (module docstring). Each
    scored turn weighs 1 / (scored turns); in every mode the rewards from turn k on sum to its
    reward-to-go, and all of them to the episode's scalar reward."""
    if mode not in REWARD_MODES:
        raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {mode!r}")
    if not scores:
        raise ValueError("an episode has at least one turn")
    n_scored = sum(s is not None for s in scores)
    shares = [0.0 if s is None else s / n_scored for s in scores]
    final = outcome_weight * outcome
    if mode == "final_token":
        return [0.0] * (len(scores) - 1) + [sum(shares) + final]
    if mode == "per_turn":
        return shares[:-1] + [shares[-1] + final]
    to_go, following = [], final
    for share in reversed(shares):
        following = share + (following if not to_go else discount * following)
        to_go.append(following)
    to_go.reverse()
    return [g - (to_go[k + 1] if k + 1 < len(to_go) else 0.0) for k, g in enumerate(to_go)]


def void_neutral_rewards(rewards: torch.Tensor, void: torch.Tensor, group_size: int) -> torch.Tensor:
    """Sequence rewards (B,) with each void episode's (``void`` (B,) bool) replaced by the mean of
    the other episodes of its group of ``group_size`` consecutive rows (0 when none is left): an
    environment failure then shifts no group baseline."""
    groups, voids = rewards.float().view(-1, group_size), void.view(-1, group_size)
    keep = (~voids).float()
    means = (groups * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1)
    return torch.where(voids, means.expand_as(groups), groups).flatten()


# ---------------------------------------------------------------------------------- rollouts


def _env_failed(episode: Episode, what: str, error: Exception) -> None:
    episode.end, episode.error = "env_error", f"{what}: {type(error).__name__}: {error}"
    log.warning("episode %s failed in the environment (%s)", episode.task_id, episode.error)


def start_episode(env: Any, task: Any, tokenizer, prompt_format: str) -> Episode:
    """Reset ``env`` to ``task`` and encode the first prompt; a failing environment gives a void
    episode."""
    episode = Episode(str(getattr(task, "id", task)), [])
    try:
        messages, tools = env.reset(task)
        episode.messages, episode.tools = list(messages), tuple(tools)
        text = render_prompt(Trajectory(episode.task_id, episode.tools, tuple(messages)), len(messages),
                             prompt_format, tokenizer)
    except Exception as error:  # noqa: BLE001 - an environment's failure ends its episode, not the run
        _env_failed(episode, "reset", error)
        return episode
    episode.prompt_ids = encode_prompt(text, tokenizer)
    return episode


def tool_continuation(episode: Episode, text: str, calls: Sequence[ToolCall], outputs: Sequence[Result],
                      tokenizer, prompt_format: str) -> list[int]:
    """Record the turn and its outputs in ``episode.messages``; the ids of the text between the
    turn and the next generation prompt (``render_continuation``, encoded on its own). The turn is
    rendered with its parsed calls, or as its text where the format cannot write them (a name the
    python form cannot spell): the continuation starts after the turn's end marker either way."""
    tool_messages = tuple(Message("tool", o.output, name=c.name) for c, o in zip(calls, outputs))
    turn = len(episode.messages)

    def continuation(assistant: Message) -> str:
        episode.messages = [*episode.messages[:turn], assistant, *tool_messages]
        conversation = Trajectory(episode.task_id, episode.tools, tuple(episode.messages))
        return render_continuation(conversation, turn, prompt_format, tokenizer)

    try:
        text_after = continuation(Message("assistant", calls=tuple(calls)))
    except ValueError:
        text_after = continuation(Message("assistant", text))
    return list(tokenizer(text_after, add_special_tokens=False)["input_ids"])


def play_turn(episode: Episode, env: Any, ids: Sequence[int], logprobs: Sequence[float], stop_ids: Sequence[int],
              tokenizer, prompt_format: str, options: EpisodeOptions, table: RewardTable | None) -> None:
    """One generated turn of ``episode``: record its tokens, score it, execute its calls and append
    the outputs (or end the episode: an answer, a cut turn, the budget, the environment)."""
    decoded = tokenizer.decode(list(ids))
    text = TURN_END.cut(decoded)
    stopped = ids[-1] in stop_ids or TURN_END.end(decoded) is not None
    start = len(episode.ids)
    episode.append(ids, True, logprobs)
    parsed = parse_calls(text)
    calls = () if isinstance(parsed, ParseFailure) else tuple(parsed)
    try:
        gold = env.gold() if hasattr(env, "gold") else None
        outputs, done = ((), False) if not calls else env.step(calls)[:2]
        if len(outputs) != len(calls) or not all(isinstance(getattr(o, "output", None), str) for o in outputs):
            raise ValueError(f"step gave {outputs!r} for {len(calls)} calls: one world.Result (text output) per call")
    except Exception as error:  # noqa: BLE001 - an environment's failure ends its episode, not the run
        episode.turns.append(Turn(text, calls, (), None, start, len(episode.ids)))
        _env_failed(episode, "step", error)
        return
    category = turn_category(text, calls, outputs, gold, episode.tools, table)
    episode.turns.append(Turn(text, calls, tuple(outputs), category, start, len(episode.ids)))
    if not calls:
        episode.end, episode.answer = ("answer", text) if stopped else ("cut", None)
        return
    if ids[-1] not in stop_ids:  # the turn ended without its eos: close it as training texts do
        episode.append(tokenizer(tokenizer.eos_token, add_special_tokens=False)["input_ids"], False)
    continuation = tool_continuation(episode, text, calls, outputs, tokenizer, prompt_format)
    if len(episode.ids) + len(continuation) >= options.max_episode_tokens:  # no room left for a turn
        episode.end = "token_budget"
    else:
        episode.append(continuation, False)
        episode.end = "env_done" if done else None


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows LEFT-padded to one length: ``input_ids``, ``attention_mask`` (B, T)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[b, width - len(row):] = 1
    return ids, mask


def pad_id_of(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@torch.no_grad()
def run_episodes(model, tokenizer, environment: Any, tasks: Sequence[Any], *, prompt_format: str,
                 options: EpisodeOptions, max_new_tokens: int, do_sample: bool = False, temperature: float = 1.0,
                 top_p: float = 1.0, seeds: Sequence[int] | None = None,
                 table: RewardTable | None = None) -> list[Episode]:
    """One episode per task, side by side (a copy of ``environment`` each), to their ends (module
    docstring). ``seeds``: one per episode when sampling (turn t of an episode samples with
    ``sampling_seed(seed, t)``), so an episode does not depend on the batch it runs in."""
    if do_sample and (seeds is None or len(seeds) != len(tasks)):
        raise ValueError("sampled episodes need one seed per task")
    envs = [copy.copy(environment) for _ in tasks]
    episodes = [start_episode(env, task, tokenizer, prompt_format) for env, task in zip(envs, tasks)]
    device = next(model.parameters()).device
    stop_ids, pad_id = stop_token_ids(tokenizer, model), pad_id_of(tokenizer)
    for turn in range(options.max_turns):
        active = [i for i, e in enumerate(episodes) if e.end is None]
        if not active:
            break
        budgets = [min(max_new_tokens, options.max_episode_tokens - len(episodes[i].ids)) for i in active]
        input_ids, attention_mask = left_pad([episodes[i].prompt_ids + episodes[i].ids for i in active], pad_id)
        rollout = generate(model, tokenizer, input_ids.to(device), attention_mask.to(device),
                           max_new_tokens=max(budgets), do_sample=do_sample, temperature=temperature, top_p=top_p,
                           stop=TURN_END, seeds=[sampling_seed(seeds[i], turn) for i in active] if do_sample else None,
                           logprobs=True)
        lengths = rollout.response_mask.sum(1).tolist()
        for row, (i, budget) in enumerate(zip(active, budgets)):
            n = min(int(lengths[row]), budget)
            play_turn(episodes[i], envs[i], rollout.response_ids[row, :n].tolist(),
                      rollout.logprobs[row, :n].tolist(), stop_ids, tokenizer, prompt_format, options, table)
    for episode, env in zip(episodes, envs):
        if episode.end is None:
            episode.end = "max_turns"
        if not episode.void and hasattr(env, "outcome_reward"):
            try:
                episode.outcome = float(env.outcome_reward(episode.answer))
            except Exception as error:  # noqa: BLE001
                _env_failed(episode, "outcome_reward", error)
    return episodes


# ---------------------------------------------------------------------------------- batches


def episode_stats(episodes: Sequence[Episode]) -> dict[str, float]:
    """Shares and means over ``episodes``: solved, turns, calls, failed calls (of all calls),
    void episodes, and each end."""
    n = max(len(episodes), 1)
    calls = sum(e.calls for e in episodes)
    failed = sum(o.failed for e in episodes for t in e.turns for o in t.outputs)
    ends = Counter(e.end for e in episodes)
    return {"success": sum(e.solved for e in episodes) / n, "turns": sum(len(e.turns) for e in episodes) / n,
            "calls": calls / n, "failed_call_share": failed / max(calls, 1),
            "void": sum(e.void for e in episodes) / n, **{f"end_{r}": ends[r] / n for r in ENDS}}


def episode_batch(episodes: Sequence[Episode], pad_id: int, options: EpisodeOptions, table: RewardTable,
                  clip_score: float = 5.0) -> ScoredRollout:
    """The ``ScoredRollout`` of finished episodes: tensors on the CPU, rewards from
    ``turn_rewards`` (each clipped to +-``clip_score``) on each turn's last generated token. A
    void episode without tokens (its reset failed) gets one pad token as prompt and response."""
    prompts = [e.prompt_ids or [pad_id] for e in episodes]
    P, R = max(map(len, prompts)), max(max(len(e.ids) for e in episodes), 1)
    B = len(episodes)
    sequences = torch.full((B, P + R), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, P + R), dtype=torch.long)
    response_mask = torch.zeros((B, R), dtype=torch.long)
    policy_mask = torch.zeros((B, R), dtype=torch.long)
    logprobs = torch.zeros((B, R), dtype=torch.float32)
    rewards = torch.zeros((B, R), dtype=torch.float32)
    categories = []
    for b, (episode, prompt) in enumerate(zip(episodes, prompts)):
        ids, generated = (episode.ids, episode.generated) if episode.ids else ([pad_id], [True])
        sequences[b, P - len(prompt):P + len(ids)] = torch.tensor(prompt + ids)
        attention_mask[b, P - len(prompt):P + len(ids)] = 1
        response_mask[b, :len(ids)] = torch.tensor(generated, dtype=torch.long)
        logprobs[b, :len(episode.logprobs)] = torch.tensor(episode.logprobs, dtype=torch.float32)
        if episode.void:
            continue
        policy_mask[b] = response_mask[b]
        scores = [None if t.category is None else table.value(t.category) for t in episode.turns]
        categories += [t.category for t in episode.turns if t.category is not None]
        placed = turn_rewards(scores, episode.outcome, options.reward_mode, options.outcome_weight,
                              options.turn_discount)
        for turn, value in zip(episode.turns, placed):
            rewards[b, turn.end - 1] = max(-clip_score, min(clip_score, value))
            if options.mae and turn.failed:
                policy_mask[b, turn.start:turn.end] = 0
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    texts = [e.turns[-1].text if e.turns else "" for e in episodes]
    rollout = Rollout(sequences, attention_mask, position_ids, response_mask, texts, P, logprobs)
    void = torch.tensor([e.void for e in episodes], dtype=torch.bool)
    stats = {**episode_stats(episodes), "policy_token_share": (policy_mask.sum() / response_mask.sum()).item()}
    return ScoredRollout(rollout, policy_mask, rewards, rewards.sum(1), categories, void, stats)


# ---------------------------------------------------------------------------------- evaluation


def evaluate_episodes(model, tokenizer, environment: Any, *, prompt_format: str, options: EpisodeOptions,
                      max_new_tokens: int, batch_size: int = 8, table: RewardTable | None = None,
                      seed: int = 0) -> dict[str, Any]:
    """Greedy episodes on every task of ``environment``: the task success rate (percent) and the
    mean calls per solved task, each with its 95% bootstrap interval over tasks (``stats``), the
    episode statistics, the IRM category shares of the call turns, and one record per episode."""
    tasks = list(environment.tasks)
    episodes: list[Episode] = []
    for start in range(0, len(tasks), batch_size):
        episodes += run_episodes(model, tokenizer, environment, tasks[start:start + batch_size],
                                 prompt_format=prompt_format, options=options, max_new_tokens=max_new_tokens,
                                 table=table)
    if not episodes:
        raise ValueError("the environment has no tasks to evaluate")
    solved_calls = [e.calls for e in episodes if e.solved]
    categories = Counter(t.category for e in episodes for t in e.turns if t.category is not None)
    scored = max(sum(categories.values()), 1)
    return {
        "tasks": len(episodes),
        "success": bootstrap_mean([float(e.solved) for e in episodes], seed=seed).scaled(100).to_dict(),
        "calls_per_solved": bootstrap_mean(solved_calls, seed=seed).to_dict() if solved_calls else None,
        **{k: round(v, 4) for k, v in episode_stats(episodes).items() if k != "success"},
        "categories": {c: round(categories[c] / scored, 4) for c in CATEGORIES},
        "episodes": [{"id": e.task_id, "solved": e.solved, "calls": e.calls, "turns": len(e.turns), "end": e.end,
                      "error": e.error, "texts": [t.text for t in e.turns]} for e in episodes],
    }
