"""The world's executable tools: one generic executor driven by the tool schemas.

``World.execute(call, offered)`` checks a call the way a Python tool server would, then answers:

- a tool that is not offered (or does not exist): ``NameError: name 'x' is not defined``;
- an argument the schema does not have: ``TypeError: x() got an unexpected keyword argument 'y'``
  (checked first, as Python does);
- a required argument left out: ``TypeError: x() missing 1 required positional argument: 'y'``;
- a value of the wrong type, outside its ``enum`` or ``format: date``, or a nested object with an
  unknown or missing key: ``Error: <what is wrong>``;
- an id that is not of the domain's form (``INV-4821``): ``Error: no invoice with id '4821'``;
- otherwise a JSON output derived deterministically from the world seed and the arguments.

Every failure text reads as an error under the authors' MAE phrases (``is not defined``,
``unexpected keyword``, ``positional argument``, and "error", which ``TypeError`` / ``NameError``
/ ``Error:`` contain after normalisation); successful outputs are built from ``vocabulary`` words
and never do. Arguments are only compared and hashed, never evaluated.

Facts about a resource (its title, status, measure) depend only on the world seed, the domain and
the id, so ``get`` and ``get_status`` agree about ``INV-4821``, and an id found by ``search`` can
be looked up by a second call.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from dataclasses import dataclass
from typing import Any, Iterable

from tl_lightning.data.world.tools import Domain, Tool, build_domains, heldout_domain_names
from tl_lightning.data.world.vocabulary import DATE_PATTERN, TITLES, Resource, date, measure_value
from tl_lightning.records import ToolCall, ToolSpec

ERROR_KINDS = ("unknown_tool", "unexpected_argument", "missing_argument", "bad_value", "transient")
"""How a call can fail: the first four are the caller's fault, ``transient`` is the service's."""

_JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
               "array": (list,), "object": (dict,)}
_ARTICLE = {"integer": "an integer", "array": "an array", "object": "an object"}


@dataclass(frozen=True)
class Result:
    """What executing one call gave: the output text, whether it failed, and how (one of
    ``ERROR_KINDS``, None on success)."""

    output: str
    failed: bool
    error_kind: str | None = None


# ---------------------------------------------------------------- schema checks


def _is_date(value: str) -> bool:
    if not DATE_PATTERN.fullmatch(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def value_problem(name: str, value: Any, schema: dict[str, Any]) -> str | None:
    """What is wrong with ``value`` for the parameter ``name`` with JSON ``schema``, or None."""
    kind = schema.get("type")
    types = _JSON_TYPES.get(kind, (object,))
    if not isinstance(value, types) or (isinstance(value, bool) and kind in ("integer", "number")):
        return f"{name} must be {_ARTICLE.get(kind, 'a ' + str(kind))}, got {json.dumps(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{name} {json.dumps(value)} is not supported; use one of {', '.join(schema['enum'])}"
    if schema.get("format") == "date" and not _is_date(value):
        return f"invalid date {json.dumps(value)} for {name}, expected YYYY-MM-DD"
    if kind == "array":
        for i, item in enumerate(value):
            problem = value_problem(f"{name}[{i}]", item, schema.get("items", {}))
            if problem:
                return problem
    if kind == "object":
        properties = schema.get("properties", {})
        for key in value:
            if key not in properties:
                return f"{name} has no field {json.dumps(key)}; its fields are {', '.join(properties)}"
        for key in schema.get("required", []):
            if key not in value:
                return f"{name} needs the field {json.dumps(key)}"
        for key, item in value.items():
            problem = value_problem(f"{name}.{key}", item, properties[key])
            if problem:
                return problem
    return None


def check_call(spec: ToolSpec, arguments: dict[str, Any]) -> Result | None:
    """The failure ``arguments`` cause for the tool ``spec`` (Python's order: unexpected keyword,
    then missing arguments, then values), or None when the call is valid."""
    properties = spec.properties
    for key in arguments:
        if key not in properties:
            return Result(f"TypeError: {spec.name}() got an unexpected keyword argument '{key}'", True,
                          "unexpected_argument")
    missing = [k for k in spec.required if k not in arguments]
    if missing:
        quoted = [f"'{k}'" for k in missing]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
        plural = "s" if len(missing) > 1 else ""
        return Result(f"TypeError: {spec.name}() missing {len(missing)} required positional argument{plural}: "
                      f"{listed}", True, "missing_argument")
    for key, value in arguments.items():
        problem = value_problem(key, value, properties[key])
        if problem:
            return Result(f"Error: {problem}", True, "bad_value")
    return None


def unknown_id(tool: Tool, arguments: dict[str, Any]) -> Result | None:
    """The failure for an id argument that names no resource (not of the form ``INV-4821``)."""
    rid = arguments.get(tool.params.get("id", ""))
    r = tool.resource
    if rid is None or re.fullmatch(rf"{r.id_prefix}-\d{{4}}", rid):
        return None
    return Result(f"Error: no {r.singular} with id {json.dumps(rid)}", True, "bad_value")


# ---------------------------------------------------------------- outputs


def _rng(*parts: Any) -> random.Random:
    return random.Random("|".join(json.dumps(p, sort_keys=True) for p in parts))


def facts(r: Resource, rid: str, seed: int) -> dict[str, Any]:
    """What the world knows about resource ``rid``: the same for every tool that looks at it."""
    rng = _rng(seed, r.namespace, rid)
    return {"title": rng.choice(TITLES), "status": rng.choice(r.statuses), r.measure: measure_value(rng),
            "created": date(rng)}


def _ids(r: Resource, rng: random.Random, n: int) -> list[str]:
    return [f"{r.id_prefix}-{k}" for k in sorted(rng.sample(range(1000, 10000), n))]


def _history(r: Resource, rid: str, seed: int, limit: int) -> list[dict[str, str]]:
    """Status changes of ``rid``, newest first, ending in its current status."""
    f = facts(r, rid, seed)
    rng = _rng(seed, r.namespace, rid, "history")
    days = sorted((date(rng) for _ in range(rng.randint(2, 4))), reverse=True)
    statuses = [f["status"]] + [rng.choice(r.statuses) for _ in days[1:]]
    return [{"date": d, "status": s} for d, s in zip(days, statuses)][:limit]


def respond(tool: Tool, args: dict[str, Any], seed: int) -> Any:
    """The output of a valid call of ``tool`` (a JSON-able value)."""
    r, arg = tool.resource, {role: args.get(name) for role, name in tool.params.items()}  # by role
    id_key = tool.id_key
    if tool.action in ("get", "get_status", "get_history", "update", "cancel"):
        rid = arg["id"]
        f = facts(r, rid, seed)
        if tool.action == "get":
            out = {id_key: rid, **f}
            if arg.get("include_history"):
                out["history"] = _history(r, rid, seed, 10)
            return out
        if tool.action == "get_status":
            return {id_key: rid, "status": f["status"]}
        if tool.action == "get_history":
            return {id_key: rid, "history": _history(r, rid, seed, arg.get("history_limit") or 10)}
        if tool.action == "update":
            return {id_key: rid, "updated": True, **arg["changes"]}
        return {id_key: rid, "status": "cancelled", "notified": bool(arg.get("notify"))}
    if tool.action == "search":
        rng = _rng(seed, r.namespace, "search", arg["query"])
        found = _ids(r, rng, min(rng.randint(1, 3), arg.get("search_limit") or 5))
        return [{id_key: i, "title": facts(r, i, seed)["title"]} for i in found]
    if tool.action in ("list", "list_by_owner"):
        key = arg.get("status") or arg.get("status_filter")
        rng = _rng(seed, r.namespace, tool.action, arg.get("owner"), key)
        found = [i for i in _ids(r, rng, 12) if key is None or facts(r, i, seed)["status"] == key]
        return [{id_key: i, "status": facts(r, i, seed)["status"]} for i in found[:min(3, arg.get("limit") or 10)]]
    if tool.action == "create":
        rng = _rng(seed, r.namespace, "create", arg["title"], arg["owner"])
        return {id_key: _ids(r, rng, 1)[0], "title": arg["title"], "status": r.statuses[0], "created": True}
    if tool.action == "count":
        rng = _rng(seed, r.namespace, "count", arg["status"], arg.get("since"))
        return {"status": arg["status"], "count": rng.randint(0, 60)}
    raise ValueError(f"unknown action {tool.action!r}")


# ---------------------------------------------------------------- the world


class World:
    """The world of ``world_seed``: its domains and tools, which domains are held out, and the
    executor. Everything is a pure function of the seed."""

    def __init__(self, world_seed: int = 0) -> None:
        self.seed = world_seed
        self.domains: tuple[Domain, ...] = build_domains(world_seed)
        self.heldout_domains = heldout_domain_names(self.domains, world_seed)
        self.tools: dict[str, Tool] = {t.name: t for d in self.domains for t in d.tools}

    def domain(self, name: str) -> Domain:
        return next(d for d in self.domains if d.name == name)

    def domains_of(self, heldout: bool) -> tuple[Domain, ...]:
        """The held-out domains, or the training ones."""
        return tuple(d for d in self.domains if (d.name in self.heldout_domains) == heldout)

    def execute(self, call: ToolCall, offered: Iterable[ToolSpec | str]) -> Result:
        """Run ``call`` against the tools ``offered`` (specs or names); see the module docstring."""
        names = {o.name if isinstance(o, ToolSpec) else o for o in offered}
        tool = self.tools.get(call.name)
        if tool is None or call.name not in names:
            return Result(f"NameError: name '{call.name}' is not defined", True, "unknown_tool")
        if not isinstance(call.arguments, dict):
            return Result(f"TypeError: {call.name}() argument after ** must be a mapping", True, "bad_value")
        failure = check_call(tool.spec, call.arguments) or unknown_id(tool, call.arguments)
        if failure is not None:
            return failure
        return Result(json.dumps(respond(tool, call.arguments, self.seed), ensure_ascii=False), False)

    def transient_failure(self, call: ToolCall) -> Result:
        """What a service that did not answer gives (the same call may succeed when retried)."""
        domain = self.tools[call.name].domain if call.name in self.tools else "tool"
        return Result(f"ConnectionError: the {domain} service did not answer in time; retry later", True,
                      "transient")
