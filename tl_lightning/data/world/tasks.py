"""Tasks: a user query, the tools offered, the gold call steps (executed, so every output is
real) and the final answer.

Three kinds (``KIND_WEIGHTS``):

- ``single``: one call;
- ``parallel``: two independent calls in one turn (the same tool for two resources, or two tools
  of the domain), the query joining two single requests;
- ``two_step``: search, then act on the id the search's real output gave (``search_invoices`` ->
  ``INV-4821`` -> ``get_invoice_status(invoice_id="INV-4821")``).

The tools offered (3-4, shuffled) are the gold tool(s) and siblings of the same domain that share
the longest name prefix with it (``get_invoice`` next to ``get_invoice_status``), and a tool of
another domain of the same split: for one gold tool, one or two siblings and the distractor; for
two, one sibling and, half of the time, the distractor. (The tool list is most of a prompt's
tokens, so it is kept short.) Argument values are sampled, written
into the query verbatim, and checked by executing the gold calls.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from typing import Any

from tl_lightning.data.world import queries, vocabulary as vocab
from tl_lightning.data.world.executor import World
from tl_lightning.data.world.tools import ACTIONS, Domain, Tool
from tl_lightning.records import ToolCall, ToolSpec

KIND_WEIGHTS = {"single": 0.6, "parallel": 0.2, "two_step": 0.2}
FOURTH_TOOL_RATE = 0.4
"""Chance that a single-tool prompt offers a second sibling (4 tools instead of 3)."""
OPTIONAL_RATE = 0.35
"""Chance that a query sets each optional argument (else it is left at its default)."""


@dataclass(frozen=True)
class Task:
    """One task of the world.

    ``steps[k]`` are the gold calls of assistant turn k (several = parallel), ``alternatives[k]``
    the other call sets that are equally correct there (an optional argument given at its
    default, parallel calls in the other order), ``outputs[k]`` the outputs of ``steps[k]``.
    ``templates`` are the ids of the query templates used.
    """

    id: str
    domain: str
    split: str
    kind: str
    query: str
    tools: tuple[ToolSpec, ...]
    steps: tuple[tuple[ToolCall, ...], ...]
    alternatives: tuple[tuple[tuple[ToolCall, ...], ...], ...]
    outputs: tuple[tuple[str, ...], ...]
    answer: str
    templates: tuple[str, ...]


@dataclass(frozen=True)
class _Intent:
    """One executed gold call, with the query that asks for it, that query's template id and the
    final-answer sentence (these three empty for a search no sentence of its own asks for)."""

    call: ToolCall
    tool: Tool
    output: str
    query: str = ""
    template: str = ""
    answer: str = ""


# ---------------------------------------------------------------- argument values


def _optional_value(role: str, r: vocab.Resource, rng: random.Random) -> Any:
    """A value other than the default for an optional argument."""
    if role in queries.LIMIT_ROLES:
        return rng.choice([n for n in range(1, 10) if n not in (5, 10)])
    return {
        "include_history": lambda: True, "notify": lambda: True,
        "sort": lambda: rng.choice(vocab.SORT_ORDERS[1:]),
        "status_filter": lambda: rng.choice(r.statuses),
        "due_date": lambda: vocab.date(rng), "since": lambda: vocab.date(rng),
        "tags": lambda: rng.sample(vocab.TAGS, rng.randint(1, 2)),
        "priority": lambda: rng.choice(("low", "high")),
        "reason": lambda: rng.choice(vocab.REASONS),
    }[role]()


def _required_value(role: str, r: vocab.Resource, rng: random.Random) -> Any:
    return {
        "id": lambda: vocab.resource_id(r, rng), "owner": lambda: vocab.person(rng),
        "query": lambda: rng.choice(vocab.KEYWORDS), "status": lambda: rng.choice(r.statuses),
        "title": lambda: rng.choice(vocab.TITLES), "measure": lambda: vocab.measure_value(rng),
        "changes": lambda: {"status": rng.choice(r.statuses),
                            **({"note": rng.choice(vocab.NOTES)} if rng.random() < 0.4 else {})},
    }[role]()


def _slots(r: vocab.Resource) -> dict[str, str]:
    return {"e": r.singular, "E": r.singular.capitalize(), "a_e": vocab.article(r.singular),
            "es": r.plural, "owner": r.owner}


def _answer(tool: Tool, args: dict[str, Any], output: Any) -> str:
    """The final-answer sentence for one call, from its real output."""
    r, action = tool.resource, tool.action
    e, rid = r.singular.capitalize(), args.get(tool.params.get("id", ""))
    if action == "get":
        return f'{e} {rid} is "{output["title"]}", status {output["status"]}.'
    if action == "get_status":
        return f"{e} {rid} is {output['status']}."
    if action == "get_history":
        latest = output["history"][0]
        changes = len(output["history"])
        return f"{e} {rid} has {changes} status changes; the latest: {latest['status']} on {latest['date']}."
    if action in ("list", "list_by_owner", "search"):
        ids = [item[tool.id_key] for item in output]
        noun = r.singular if len(ids) == 1 else r.plural
        return f"Found {len(ids)} {noun}: {', '.join(ids)}." if ids else f"There are no such {r.plural}."
    if action == "create":
        return f"Created {r.singular} {next(iter(output.values()))}."
    if action == "update":
        return f"{e} {rid} is now {output['status']}."
    if action == "cancel":
        return f"{e} {rid} is cancelled" + (f" and the {r.owner} was told." if output["notified"] else ".")
    return f"There are {output['count']} {output['status']} {r.plural}."


def _run(world: World, tool: Tool, args: dict[str, Any]) -> tuple[ToolCall, str, Any]:
    """Execute a gold call (it must succeed): the call, its output text and the parsed output."""
    call = ToolCall(tool.name, args)
    result = world.execute(call, [tool.name])
    if result.failed:
        raise RuntimeError(f"a gold call of the synthetic world failed: {call} -> {result.output}")
    return call, result.output, json.loads(result.output)


def _values(tool: Tool, rng: random.Random, fixed: dict[str, Any], optional_rate: float
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sampled values (role -> value) of the required roles (``fixed`` ones given) and of the
    optional roles the query will set."""
    r = tool.resource
    required = {role: fixed[role] if role in fixed else _required_value(role, r, rng)
                for role in ACTIONS[tool.action].required}
    optional = {role: _optional_value(role, r, rng) for role in tool.params
                if role not in required and rng.random() < optional_rate}
    return required, optional


def _intent(world: World, tool: Tool, rng: random.Random, heldout_templates: bool) -> _Intent:
    """A gold call of ``tool`` with sampled values, its query (a template of its action) and answer."""
    r = tool.resource
    required, optional = _values(tool, rng, {}, OPTIONAL_RATE)
    changes = required.get("changes", {})
    mods = {**optional, **({"note": changes["note"]} if "note" in changes else {})}
    tid, text = queries.choose_template(tool.action, heldout_templates, world.seed, rng)
    query = text.format(**_slots(r), id=required.get("id"), name=required.get("owner"), kw=required.get("query"),
                        status=required.get("status") or changes.get("status"), title=required.get("title"),
                        measure=r.measure_phrase.format(x=required.get("measure")),
                        mods=queries.modifiers(mods, r.owner, rng))
    call, output, parsed = _run(world, tool, _arguments(tool, {**required, **optional}))
    return _Intent(call, tool, output, query, tid, _answer(tool, call.arguments, parsed))


def _arguments(tool: Tool, values: dict[str, Any]) -> dict[str, Any]:
    """Role values as call arguments, in the schema's parameter order."""
    by_name = {tool.params[role]: v for role, v in values.items()}
    return {name: by_name[name] for name in tool.spec.properties if name in by_name}


# ---------------------------------------------------------------- alternatives and tool lists


def default_alternatives(call: ToolCall, spec: ToolSpec) -> list[ToolCall]:
    """The call with every non-empty subset of its omitted optional arguments given explicitly at
    their defaults: equally correct calls."""
    omitted = [k for k, s in spec.properties.items() if k not in call.arguments and "default" in s]
    out = []
    for size in range(1, len(omitted) + 1):
        for keys in itertools.combinations(omitted, size):
            extra = {k: spec.properties[k]["default"] for k in keys}
            out.append(ToolCall(call.name, {k: v for k, v in {**call.arguments, **extra}.items()}))
    return out


def call_set_alternatives(calls: tuple[ToolCall, ...], specs: dict[str, ToolSpec]
                          ) -> tuple[tuple[ToolCall, ...], ...]:
    """Every other correct call set for ``calls``: each call or its default variants, in either
    order for two parallel calls."""
    options = [[c] + default_alternatives(c, specs[c.name]) for c in calls]
    sets = [tuple(p) for p in itertools.product(*options)]
    if len(calls) == 2:
        sets += [tuple(reversed(s)) for s in sets]
    return tuple(s for s in sets if s != calls)


def _common_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def offered_tools(gold: list[Tool], domain: Domain, pool: tuple[Domain, ...], rng: random.Random
                  ) -> tuple[ToolSpec, ...]:
    """The gold tools, siblings sharing the longest name prefix with them and a distractor from
    another domain of ``pool``: 3-4 tools, shuffled (see the module docstring)."""
    names = {t.name for t in gold}
    others = [t for t in domain.tools if t.name not in names]
    rng.shuffle(others)  # ties in prefix length are broken at random
    others.sort(key=lambda t: -max(_common_prefix(t.name, g.name) for g in gold))
    if len(names) > 1:  # two gold tools: one sibling, and a distractor half of the time
        siblings, n_distractors = others[:1], int(rng.random() < 0.5)
    else:
        siblings, n_distractors = others[:1 + int(rng.random() < FOURTH_TOOL_RATE)], 1
    distractors = [rng.choice(d.tools) for d in rng.sample([d for d in pool if d is not domain], n_distractors)]
    unique_gold = list({t.name: t for t in gold}.values())
    tools = [t.spec for t in [*unique_gold, *siblings, *distractors]]
    rng.shuffle(tools)
    return tuple(tools)


# ---------------------------------------------------------------- tasks

SPLITS: dict[str, tuple[bool, bool]] = {
    "train": (False, False),
    "heldout_templates": (False, True),
    "heldout_domains": (True, False),
}
"""split -> (held-out domains?, held-out templates?)."""


def make_task(world: World, split: str, task_id: str, rng: random.Random) -> Task:
    """One task of ``split``: kind, domain, tools and values drawn from ``rng``."""
    heldout_domains, heldout_templates = SPLITS[split]
    pool = world.domains_of(heldout_domains)
    domain = rng.choice(pool)
    kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
    if kind == "two_step":
        steps, query, templates = _two_step(world, domain, rng, heldout_templates)
    else:
        steps, query, templates = _one_turn(world, domain, kind == "parallel", rng, heldout_templates)
    tools = offered_tools([i.tool for step in steps for i in step], domain, pool, rng)
    specs = {t.name: t for t in tools}
    calls = tuple(tuple(i.call for i in step) for step in steps)
    return Task(id=task_id, domain=domain.name, split=split, kind=kind, query=query, tools=tools, steps=calls,
                alternatives=tuple(call_set_alternatives(c, specs) for c in calls),
                outputs=tuple(tuple(i.output for i in step) for step in steps),
                answer=" ".join(i.answer for i in steps[-1]), templates=templates)


def _one_turn(world: World, domain: Domain, parallel: bool, rng: random.Random, heldout_templates: bool
              ) -> tuple[list[list[_Intent]], str, tuple[str, ...]]:
    """One call, or two different parallel calls (the same tool half of the time) whose queries a
    ``parallel`` template joins: the step, the query and the template ids."""
    first = _intent(world, rng.choice(domain.tools), rng, heldout_templates)
    if not parallel:
        return [[first]], first.query, (first.template,)
    same = rng.random() < 0.5
    while True:
        second = _intent(world, first.tool if same else rng.choice(domain.tools), rng, heldout_templates)
        if second.call != first.call:
            break
    tid, text = queries.choose_template("parallel", heldout_templates, world.seed, rng)
    return [[first, second]], text.format(q1=first.query, q2=second.query), (first.template, second.template, tid)


def _two_step(world: World, domain: Domain, rng: random.Random, heldout_templates: bool
              ) -> tuple[list[list[_Intent]], str, tuple[str, ...]]:
    """Search by a quoted keyword, then act on the first id found: the two steps, the query and
    the template id."""
    search = domain.tool("search")
    keyword = rng.choice(vocab.KEYWORDS)
    call, output, found = _run(world, search, _arguments(search, {"query": keyword}))
    first = _Intent(call, search, output)
    tool = rng.choice([t for t in domain.tools if t.action in queries.FOLLOWUPS])
    required, _ = _values(tool, rng, {"id": found[0][search.id_key]}, 0.0)
    if "changes" in required:  # the clause sets the status only
        required["changes"] = {"status": required["changes"]["status"]}
    call, output, parsed = _run(world, tool, _arguments(tool, required))
    second = _Intent(call, tool, output, answer=_answer(tool, call.arguments, parsed))
    clause = rng.choice(queries.FOLLOWUPS[tool.action]).format(status=required.get("changes", {}).get("status"))
    tid, text = queries.choose_template("two_step", heldout_templates, world.seed, rng)
    return [[first], [second]], text.format(**_slots(search.resource), kw=keyword, then=clause), (tid,)
