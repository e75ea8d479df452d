"""Trajectories and prompts of the classic world: a task's gold calls, a wrong call first (with the
error output it gets) at ``error_rate``, the tools of its domain and one or two distractors."""

from __future__ import annotations

import random
from typing import Any

from tl_lightning.data.synthetic.tasks import TASKS
from tl_lightning.data.synthetic.tools import SPECS, World, make_world
from tl_lightning.records import Message, ToolCall, ToolSpec, Trajectory, validate_trajectory

ERROR_KINDS = ("missing_argument", "unexpected_argument", "unknown_function", "bad_value")
# Wrong-but-plausible argument names a model hallucinates (for ``unexpected_argument``).
ARGUMENT_SYNONYMS = {"city": "location", "paper_id": "id", "query": "keywords", "symbol": "ticker",
                     "date": "day", "title": "name", "origin": "from_airport", "flight_id": "flight",
                     "amount": "value", "destination": "to_airport"}


# ---------------------------------------------------------------- wrong calls


def _near_miss_name(name: str) -> str:
    """A tool name a model plausibly invents (``getPaperDetails`` -> ``getPaperDetail``)."""
    return name[:-1] if name.endswith("s") else name + "s"


def _bad_values(spec: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    """For each argument a value the tool rejects (only arguments with a known bad value)."""
    bad: dict[str, Any] = {}
    for k, v in args.items():
        if k == "date":
            y, m, d = v.split("-")
            bad[k] = f"{d}/{m}/{y}"
        elif k == "unit":
            bad[k] = "kelvin"
        elif k in ("limit", "days", "passengers"):
            bad[k] = 0
        elif k == "seat_class":
            bad[k] = "first"
        elif k in ("from_currency", "to_currency"):
            bad[k] = "euro"
        elif k == "symbol":
            bad[k] = v.lower() + " inc"
        elif k == "city":
            bad[k] = v.upper()[:3]
        elif k == "paper_id":
            bad[k] = v[1:]
    return bad


def _wrong_call(call: ToolCall, kind: str, rng: random.Random) -> ToolCall | None:
    """``call`` made wrong in the way ``kind`` names, or None when that kind does not apply."""
    spec = SPECS[call.name][1]
    if kind == "unknown_function":
        return ToolCall(_near_miss_name(call.name), dict(call.arguments))
    required = [k for k in spec.required if k in call.arguments]
    if kind == "missing_argument" and required:
        drop = rng.choice(required)
        return ToolCall(call.name, {k: v for k, v in call.arguments.items() if k != drop})
    if kind == "unexpected_argument":
        renamable = [k for k in required if k in ARGUMENT_SYNONYMS]
        if renamable:
            old = rng.choice(renamable)
            return ToolCall(call.name, {(ARGUMENT_SYNONYMS[old] if k == old else k): v
                                        for k, v in call.arguments.items()})
    if kind == "bad_value":
        bad = _bad_values(spec, call.arguments)
        if bad:
            key = rng.choice(sorted(bad))
            return ToolCall(call.name, {**call.arguments, key: bad[key]})
    return None


# ---------------------------------------------------------------- trajectories and prompts


def _tool_set(world: World, domain: str, rng: random.Random) -> tuple[ToolSpec, ...]:
    """The domain's tools plus one or two distractors from other domains, in random order."""
    own = world.domain_tools(domain)
    others = [s for d, s in SPECS.values() if d != domain]
    tools = own + rng.sample(others, rng.randint(1, 2))
    rng.shuffle(tools)
    return tuple(tools)


def _optional_default_alternatives(call: ToolCall, spec: ToolSpec) -> tuple[tuple[ToolCall, ...], ...]:
    """Gold calls that also pass an optional argument explicitly at its default (or omit one given
    at its default) are equally correct."""
    alts = []
    for k, schema in spec.properties.items():
        if k in spec.required or "default" not in schema:
            continue
        if k in call.arguments and call.arguments[k] == schema["default"]:
            alts.append((ToolCall(call.name, {a: v for a, v in call.arguments.items() if a != k}),))
        elif k not in call.arguments:
            alts.append((ToolCall(call.name, {**call.arguments, k: schema["default"]}),))
    return tuple(alts)


def _trajectory(world: World, index: int, seed: int, rng: random.Random, error_rate: float) -> Trajectory:
    plan = rng.choice(TASKS)(world, rng)
    tools = _tool_set(world, plan.domain, rng)
    available = tuple(t.name for t in tools)
    messages = [Message("user", plan.query)]
    injected = []
    for step, outputs in zip(plan.steps, plan.outputs):
        if len(step.calls) == 1 and rng.random() < error_rate:
            kinds = list(ERROR_KINDS)
            rng.shuffle(kinds)
            for kind in kinds:
                wrong = _wrong_call(step.calls[0], kind, rng)
                if wrong is None:
                    continue
                text, failed = world.execute(wrong, available)
                if failed:
                    messages += [Message("assistant", calls=(wrong,)), Message("tool", text, name=wrong.name)]
                    injected.append(kind)
                    break
        messages.append(Message("assistant", calls=step.calls))
        messages += [Message("tool", out, name=c.name) for c, out in zip(step.calls, outputs)]
    messages.append(Message("assistant", plan.answer))
    traj = Trajectory(id=f"synthetic-{seed}-{index:05d}", tools=tools, messages=tuple(messages),
                      meta={"source": "synthetic", "format": "synthetic", "domain": plan.domain,
                            "injected_errors": injected})
    return validate_trajectory(traj)


def generate_trajectories(n: int, seed: int = 0, error_rate: float = 0.3) -> list[Trajectory]:
    """``n`` multi-turn trajectories: user -> [wrong call -> error output ->] call -> output
    [-> second call -> output] -> final answer. ``error_rate`` is the chance that a single-call
    step is first made wrong."""
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    world, rng = make_world(seed), random.Random(seed)
    return [_trajectory(world, i, seed, rng, error_rate) for i in range(n)]


def generate_prompts(n: int, seed: int = 0) -> list[Trajectory]:
    """``n`` single-turn prompts: a user request and, as the last message, the gold assistant
    call turn (``alternatives`` holds equally correct call sets, e.g. an optional argument
    given explicitly at its default)."""
    world, rng = make_world(seed), random.Random(seed + 1_000_003)
    out = []
    for i in range(n):
        plan = rng.choice(TASKS)(world, rng)
        tools = _tool_set(world, plan.domain, rng)
        gold = plan.steps[0].calls
        alts = _optional_default_alternatives(gold[0], SPECS[gold[0].name][1]) if len(gold) == 1 else ()
        traj = Trajectory(id=f"synthetic-prompt-{seed}-{i:05d}", tools=tools,
                          messages=(Message("user", plan.query), Message("assistant", calls=gold, alternatives=alts)),
                          meta={"source": "synthetic", "format": "synthetic", "domain": plan.domain})
        out.append(validate_trajectory(traj))
    return out
