"""Tasks -> ``Trajectory`` records: multi-turn SFT trajectories with realistic failed calls, and
prompts that end at a gold call turn.

Failures (``error_rate``: the chance that a single-call step is first done wrong): a wrong call is
made, executed, its error output shown, then the correct call follows. The kinds
(``executor.ERROR_KINDS``), tried in a random order until one applies:

- ``unknown_tool``: a near-miss name (``get_invoices_status``, ``getInvoiceStatus`` in a snake_case
  domain, ``invoices.get_status`` without its namespace) -> ``NameError: ... is not defined``;
- ``unexpected_argument``: a required argument under a plausible wrong name (``invoice_id`` ->
  ``id``) or an extra, hallucinated one -> ``TypeError: ... unexpected keyword argument``;
- ``missing_argument``: a required argument left out -> ``TypeError: ... missing 1 required
  positional argument``;
- ``bad_value``: a value the schema rejects (``14/05/2024`` for a date, ``"3"`` for an integer,
  ``4821`` for ``INV-4821``, ``Paid`` for ``paid``) -> ``Error: ...``;
- ``transient``: the right call, answered ``ConnectionError: ...`` by the service, then retried.

MAE drops exactly these turns (the tests check it); they stay as context of the later turns.
"""

from __future__ import annotations

import random
from typing import Any

from tl_lightning.data.world.executor import ERROR_KINDS, Result, World
from tl_lightning.data.world.tasks import SPLITS, Task, make_task
from tl_lightning.data.world.tools import Tool
from tl_lightning.data.world.vocabulary import styled
from tl_lightning.records import Message, ToolCall, Trajectory, validate_trajectory

HALLUCINATED_ARGUMENTS = {"verbose": True, "format": "json", "user_id": "me", "max_results": 3}
SYNONYMS = {"query": "keyword", "status": "state", "title": "name", "changes": "fields", "tags": "labels",
            "since": "from_date", "reason": "comment", "limit": "max_items"}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLITS)}")


def generate_tasks(n: int, seed: int = 0, split: str = "train", world_seed: int = 0) -> list[Task]:
    """``n`` tasks of ``split``; the same (n, seed, split, world_seed), the same tasks."""
    _check_split(split)
    world, rng = World(world_seed), random.Random(f"tasks|{split}|{seed}")
    return [make_task(world, split, f"world-{split}-{seed}-{i:05d}", rng) for i in range(n)]


# ---------------------------------------------------------------- wrong calls


def _near_miss_names(name: str) -> list[str]:
    """Names a model plausibly invents for ``name``: plural toggled, another naming style, the
    dotted namespace dropped."""
    out = [name[:-1] if name.endswith("s") else name + "s"]
    if "." in name:
        out.append(name.split(".", 1)[1])
    words = [w for w in name.replace(".", "_").replace("_", " ").split()]
    words = [w for part in words for w in _camel_words(part)]
    out += [styled(words, s) for s in ("snake", "camel")]
    return [n for n in out if n != name]


def _camel_words(text: str) -> list[str]:
    words, current = [], ""
    for ch in text:
        if ch.isupper() and current:
            words.append(current)
            current = ""
        current += ch.lower()
    return words + [current] if current else words


def _synonym(name: str) -> str:
    """A plausible wrong name for parameter ``name`` (``invoice_id`` / ``invoiceId`` -> ``id``)."""
    if name.endswith(("_id", "Id")):
        return "id"
    if name.endswith(("_name", "Name")):
        return "name"
    return SYNONYMS.get(name, name + "_value")


def _bad_value(value: Any, schema: dict[str, Any], is_id: bool) -> Any:
    """A value of the wrong form that a model plausibly writes, or None when there is none."""
    if schema.get("format") == "date":
        y, m, d = value.split("-")
        return f"{d}/{m}/{y}"
    if is_id:
        return value.split("-")[-1]
    if "enum" in schema:
        return value.replace("_", " ").capitalize()
    kind = schema.get("type")
    if kind in ("integer", "number"):
        return str(value)
    if kind == "boolean":
        return "yes" if value else "no"
    if kind == "array":
        return ", ".join(value)
    if kind == "object":
        return {**value, "state": value.get("status")}
    return None


def wrong_call(call: ToolCall, tool: Tool, kind: str, offered: set[str], rng: random.Random) -> ToolCall | None:
    """``call`` (of ``tool``) made wrong in the way ``kind`` names, or None when that kind does not apply."""
    spec = tool.spec
    required = [k for k in spec.required if k in call.arguments]
    if kind == "unknown_tool":
        names = [n for n in _near_miss_names(call.name) if n not in offered]
        return ToolCall(rng.choice(names), dict(call.arguments)) if names else None
    if kind == "missing_argument" and required:
        drop = rng.choice(required)
        return ToolCall(call.name, {k: v for k, v in call.arguments.items() if k != drop})
    if kind == "unexpected_argument":
        if required and rng.random() < 0.6:
            old = rng.choice(required)
            return ToolCall(call.name, {(_synonym(old) if k == old else k): v for k, v in call.arguments.items()})
        extra = rng.choice(sorted(k for k in HALLUCINATED_ARGUMENTS if k not in spec.properties))
        return ToolCall(call.name, {**call.arguments, extra: HALLUCINATED_ARGUMENTS[extra]})
    if kind == "bad_value":
        bad = {k: _bad_value(v, spec.properties[k], k == tool.id_key) for k, v in call.arguments.items()}
        bad = {k: v for k, v in bad.items() if v is not None}
        if bad:
            key = rng.choice(sorted(bad))
            return ToolCall(call.name, {**call.arguments, key: bad[key]})
    if kind == "transient":
        return call
    return None


def _failed_attempt(world: World, task: Task, call: ToolCall, rng: random.Random) -> tuple[ToolCall, Result] | None:
    """A wrong call for ``call`` (its kind drawn among those that apply) and its failed result."""
    offered = {t.name for t in task.tools}
    for kind in rng.sample(ERROR_KINDS, len(ERROR_KINDS)):
        wrong = wrong_call(call, world.tools[call.name], kind, offered, rng)
        if wrong is None:
            continue
        result = world.transient_failure(call) if kind == "transient" else world.execute(wrong, task.tools)
        if result.failed:
            return wrong, result
    return None


# ---------------------------------------------------------------- trajectories and prompts


def _meta(task: Task, **extra: Any) -> dict[str, Any]:
    return {"source": "synthetic", "format": "synthetic", "domain": task.domain, "split": task.split,
            "task_kind": task.kind, "task_id": task.id, "templates": list(task.templates), **extra}


def task_trajectory(world: World, task: Task, rng: random.Random, error_rate: float) -> Trajectory:
    """user -> [wrong call -> error ->] call(s) -> output(s) [-> second step] -> final answer; the
    correct call turns carry their ``alternatives``, so each is also a gold turn for RL prompts."""
    messages = [Message("user", task.query)]
    injected = []
    for calls, alternatives, outputs in zip(task.steps, task.alternatives, task.outputs):
        if len(calls) == 1 and rng.random() < error_rate:
            attempt = _failed_attempt(world, task, calls[0], rng)
            if attempt is not None:
                wrong, result = attempt
                messages += [Message("assistant", calls=(wrong,)), Message("tool", result.output, name=wrong.name)]
                injected.append(result.error_kind)
        messages.append(Message("assistant", calls=calls, alternatives=alternatives))
        messages += [Message("tool", out, name=c.name) for c, out in zip(calls, outputs)]
    messages.append(Message("assistant", task.answer))
    return validate_trajectory(Trajectory(id=task.id, tools=task.tools, messages=tuple(messages),
                                          meta=_meta(task, injected_errors=injected)))


def task_prompts(task: Task) -> list[Trajectory]:
    """One prompt per call step: the conversation before it (for step 2, the first call and its
    output), then the gold turn with its ``alternatives``."""
    out, history = [], [Message("user", task.query)]
    for k, (calls, alternatives, outputs) in enumerate(zip(task.steps, task.alternatives, task.outputs)):
        gold = Message("assistant", calls=calls, alternatives=alternatives)
        out.append(validate_trajectory(Trajectory(id=f"{task.id}-step{k + 1}", tools=task.tools,
                                                  messages=tuple(history) + (gold,),
                                                  meta=_meta(task, step=k + 1, injected_errors=[]))))
        history += [gold] + [Message("tool", o, name=c.name) for c, o in zip(calls, outputs)]
    return out


def generate_trajectories(n: int, seed: int = 0, split: str = "train", error_rate: float = 0.3,
                          world_seed: int = 0) -> list[Trajectory]:
    """``n`` multi-turn SFT trajectories of ``split`` (one per task); ``error_rate`` is the chance
    that a single-call step is first done wrong."""
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    world, rng = World(world_seed), random.Random(f"errors|{split}|{seed}")
    return [task_trajectory(world, t, rng, error_rate) for t in generate_tasks(n, seed, split, world_seed)]


def generate_prompts(n: int, seed: int = 0, split: str = "train", world_seed: int = 0) -> list[Trajectory]:
    """``n`` prompts of ``split``, each ending with a gold call turn: one per step of each task
    (a two-step task gives its first-step prompt and its second-step prompt), drawn from a task
    stream of their own (``seed`` gives other tasks than ``generate_trajectories``). These are
    evaluation items (one per record, scored at its last turn); to train RL, make prompts from
    ``generate_trajectories`` instead (each correct call turn is one, with failed calls as context),
    as the DataModule does: a second-step record holds the first step's turn too."""
    _check_split(split)
    world, rng = World(world_seed), random.Random(f"prompts|{split}|{seed}")
    out: list[Trajectory] = []
    index = 0
    while len(out) < n:
        out += task_prompts(make_task(world, split, f"world-prompt-{split}-{seed}-{index:05d}", rng))
        index += 1
    return out[:n]
