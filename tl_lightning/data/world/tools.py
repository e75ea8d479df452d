"""Domains and their tools: every resource of ``vocabulary.RESOURCES`` becomes a domain whose
tools are the ``ACTIONS`` applied to it, named in the domain's style.

Tool names follow one scheme, so siblings share prefixes the way real APIs do (what PKT's key
tokens are for): ``get_invoice`` / ``get_invoice_status`` / ``get_invoice_history``,
``list_invoices`` / ``list_invoices_by_customer``; in the dotted style every tool of a domain
shares ``billing.invoices.``. Parameters are typed JSON schemas (string, integer, number, boolean,
enum, array, nested object; dates with ``format: date``), required or optional with a
``default``. The executor checks calls against exactly
these schemas.

Which actions a domain has, its naming style and which domains are held out are drawn from the
world seed, so a world is fully determined by it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tl_lightning.data.world.vocabulary import (
    PRIORITIES,
    RESOURCES,
    SORT_ORDERS,
    STYLES,
    Resource,
    article,
    parameter_name,
    styled,
)
from tl_lightning.records import ToolSpec


@dataclass(frozen=True)
class Action:
    """What a tool does to its domain's resource.

    ``verb`` + the resource noun (plural when ``plural``) + ``suffix`` make the name (``{owner}``
    in the suffix is the resource's owner noun); ``required`` / ``optional`` are parameter roles
    (see ``_parameter``); ``description`` may use ``{e}``, ``{a_e}`` (with its article), ``{es}``,
    ``{owner}``.
    """

    key: str
    verb: str
    plural: bool
    suffix: tuple[str, ...]
    description: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


ACTIONS: dict[str, Action] = {a.key: a for a in (
    Action("get", "get", False, (), "Get one {e} by its id.", ("id",), ("include_history",)),
    Action("get_status", "get", False, ("status",), "Get the current status of {a_e}.", ("id",)),
    Action("get_history", "get", False, ("history",), "Get the status changes of {a_e}, newest first.",
           ("id",), ("history_limit",)),
    Action("list", "list", True, (), "List the {es} that have a given status.", ("status",), ("limit",)),
    Action("list_by_owner", "list", True, ("by", "{owner}"), "List the {es} of one {owner}.",
           ("owner",), ("status_filter", "limit")),
    Action("search", "search", True, (), "Search {es} by keyword, best match first.", ("query",),
           ("search_limit", "sort")),
    Action("create", "create", False, (), "Create a new {e}.", ("title", "owner", "measure"),
           ("due_date", "tags", "priority")),
    Action("update", "update", False, (), "Change the status or the note of {a_e}.", ("id", "changes")),
    Action("cancel", "cancel", False, (), "Cancel {a_e}.", ("id",), ("reason", "notify")),
    Action("count", "count", True, (), "Count the {es} that have a given status.", ("status",), ("since",)),
)}

CORE_ACTIONS = ("get", "get_status", "search", "list_by_owner")
"""Every domain has these; 2-4 of the others are drawn per domain."""

OPTIONAL_KEEP = 0.6
"""The chance that a domain's tool has each optional parameter of its action."""

HELDOUT_DOMAIN_SHARE = 0.25
"""The share of domains held out: their tools never appear in training data."""


@dataclass(frozen=True)
class Tool:
    """A tool of the world: its spec (what a model sees), the domain and action it implements,
    ``params``: parameter role -> parameter name in the spec (``"id"`` -> ``"invoiceId"``), and
    ``id_key``: how its domain names resource ids (in parameters and in outputs)."""

    spec: ToolSpec
    domain: str
    action: str
    resource: Resource
    params: dict[str, str]
    id_key: str

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Domain:
    """One domain: its resource, naming style and tools (in ``ACTIONS`` order)."""

    name: str
    resource: Resource
    style: str
    tools: tuple[Tool, ...]

    def tool(self, action: str) -> Tool | None:
        return next((t for t in self.tools if t.action == action), None)


def _text(template: str, r: Resource) -> str:
    return template.format(e=r.singular, a_e=article(r.singular), es=r.plural, owner=r.owner)


def _one_of(values: list[str]) -> str:
    """``"a, b or c."``: how a description lists an enum (the paper's prompt format shows no enums)."""
    return ", ".join(values[:-1]) + " or " + values[-1] + "."


def _parameter(role: str, r: Resource, style: str) -> tuple[str, dict[str, Any]]:
    """The name and JSON schema of the parameter that plays ``role`` for resource ``r``. Only
    parameters whose name does not say it all get a description (enums list their values there):
    the tool list is most of a prompt's tokens."""
    p = lambda *words: parameter_name(list(words), style)  # noqa: E731
    statuses = list(r.statuses)
    if role == "id":
        return p(r.singular, "id"), {"type": "string"}
    if role == "owner":
        return p(r.owner, "name"), {"type": "string"}
    if role == "query":
        return "query", {"type": "string"}
    if role in ("limit", "history_limit", "search_limit"):
        default = 5 if role == "search_limit" else 10
        return "limit", {"type": "integer", "default": default}
    if role == "sort":
        return p("sort", "by"), {"type": "string", "enum": list(SORT_ORDERS), "default": SORT_ORDERS[0],
                                 "description": _one_of(list(SORT_ORDERS))}
    if role in ("status", "status_filter"):
        return "status", {"type": "string", "enum": statuses, "description": _one_of(statuses)}
    if role == "include_history":
        return p("include", "history"), {"type": "boolean", "default": False, "description": "Add the status history."}
    if role == "title":
        return "title", {"type": "string"}
    if role == "measure":
        return p(r.measure), {"type": "number"}
    if role in ("due_date", "since"):
        return p("due", "date") if role == "due_date" else "since", {"type": "string", "format": "date"}
    if role == "tags":
        return "tags", {"type": "array", "items": {"type": "string"}}
    if role == "priority":
        return "priority", {"type": "string", "enum": list(PRIORITIES), "default": "normal",
                            "description": _one_of(list(PRIORITIES))}
    if role == "changes":
        return "changes", {"type": "object", "description": f"status ({_one_of(statuses)[:-1]}) and an optional note.",
                           "properties": {"status": {"type": "string", "enum": statuses},
                                          "note": {"type": "string"}},
                           "required": ["status"]}
    if role == "reason":
        return "reason", {"type": "string"}
    if role == "notify":
        return p("notify", r.owner), {"type": "boolean", "default": False, "description": "Send an email."}
    raise ValueError(f"unknown parameter role {role!r}")


def tool_name(action: Action, r: Resource, style: str, namespace: str) -> str:
    """``get_invoice_status`` / ``getInvoiceStatus`` / ``GetInvoiceStatus`` / ``billing.invoices.get_status``."""
    suffix = [w.format(owner=r.owner) for w in action.suffix]
    if style == "dotted":
        return f"{namespace}.{r.plural}.{styled([action.verb, *suffix], 'snake')}"
    return styled([action.verb, r.plural if action.plural else r.singular, *suffix], style)


def make_tool(action: Action, r: Resource, style: str, optional: tuple[str, ...]) -> Tool:
    """The tool for ``action`` on ``r`` with the optional parameter roles ``optional``."""
    params: dict[str, str] = {}
    properties: dict[str, Any] = {}
    for role in action.required + optional:
        name, schema = _parameter(role, r, style)
        params[role], properties[name] = name, schema
    required = [params[role] for role in action.required]
    spec = ToolSpec(name=tool_name(action, r, style, r.namespace), description=_text(action.description, r),
                    parameters={"type": "object", "properties": properties, "required": required})
    return Tool(spec=spec, domain=r.namespace, action=action.key, resource=r, params=params,
                id_key=_parameter("id", r, style)[0])


def build_domains(world_seed: int = 0) -> tuple[Domain, ...]:
    """Every domain of the world: styles dealt round-robin over a seeded order of the resources
    (so each style has a quarter of the domains), core actions plus 2-4 drawn ones, each optional
    parameter kept with ``OPTIONAL_KEEP`` (at most one for ``create``)."""
    rng = random.Random(f"world|{world_seed}")
    order = list(RESOURCES)
    rng.shuffle(order)
    style_of = {r.namespace: STYLES[i % len(STYLES)] for i, r in enumerate(order)}
    extra = [a for a in ACTIONS if a not in CORE_ACTIONS]
    domains = []
    for r in RESOURCES:
        style = style_of[r.namespace]
        chosen = set(CORE_ACTIONS) | set(rng.sample(extra, rng.randint(2, 4)))
        tools = []
        for key in (k for k in ACTIONS if k in chosen):
            action = ACTIONS[key]
            optional = tuple(o for o in action.optional if rng.random() < OPTIONAL_KEEP)
            if key == "create":  # it has three required parameters already
                optional = optional[:1]
            tools.append(make_tool(action, r, style, optional))
        domains.append(Domain(r.namespace, r, style, tuple(tools)))
    return tuple(domains)


def heldout_domain_names(domains: tuple[Domain, ...], world_seed: int = 0) -> frozenset[str]:
    """The held-out domains: ``HELDOUT_DOMAIN_SHARE`` of them, the same number of each naming
    style (so held-out evaluation covers every style), drawn from the world seed."""
    rng = random.Random(f"heldout|{world_seed}")
    per_style = round(len(domains) * HELDOUT_DOMAIN_SHARE / len(STYLES))
    held = []
    for style in STYLES:
        names = sorted(d.name for d in domains if d.style == style)
        held += rng.sample(names, per_style)
    return frozenset(held)
