"""What users say: paraphrased query templates per action, the clauses that set optional
arguments, and which templates are held out.

Each template group (one per action, plus ``two_step`` and ``parallel``) has five paraphrases; the
world seed holds one of each group out (``heldout_template_ids``): the ``heldout_templates`` split
asks only with those, the training data never uses them.

Slots: ``{e}`` / ``{E}`` / ``{a_e}`` / ``{es}`` the resource noun (singular, capitalised, with its
article, plural), ``{owner}``, and the values the gold call copies: ``{id}``, ``{name}``, ``{kw}``
(quoted in the text), ``{status}``, ``{title}``, ``{measure}`` (e.g. ``an amount of 120.5``).
``{mods}`` is where the clauses for optional arguments go (``, only the overdue ones, at most 3
results``); they map words to values the same way in every domain (``newest first`` ->
``sort_by="newest"``, ``and notify the customer`` -> ``notify_customer=true``, ``at most 3`` ->
``limit=3``), so a model can learn them once. ``two_step`` templates hold ``{then}``, a clause for
the second call (``tell me its status``); ``parallel`` templates join two single-call queries
``{q1}`` and ``{q2}``.
"""

from __future__ import annotations

import random
from typing import Any

TEMPLATES: dict[str, tuple[str, ...]] = {
    "get": (
        "Show me the details of {e} {id}{mods}.",
        "Pull up {e} {id} for me{mods}.",
        "What do we have on file for {e} {id}{mods}?",
        "I need the full record of {e} {id}{mods}.",
        "Look up {e} {id}{mods}.",
    ),
    "get_status": (
        "What's the status of {e} {id}?",
        "Where does {e} {id} stand right now?",
        "Check the current status of {e} {id}.",
        "Quick status check on {e} {id}, please.",
        "Tell me the status of {e} {id}.",
    ),
    "get_history": (
        "Show the status history of {e} {id}{mods}.",
        "How has the status of {e} {id} changed over time{mods}?",
        "List the past status changes of {e} {id}{mods}.",
        "Give me the change log of {e} {id}{mods}.",
        "When did {e} {id} change status{mods}?",
    ),
    "list": (
        "List the {status} {es}{mods}.",
        "Which {es} are {status} right now{mods}?",
        "Show me all {es} with status {status}{mods}.",
        "Give me the {es} that are currently {status}{mods}.",
        "I need a list of {status} {es}{mods}.",
    ),
    "list_by_owner": (
        "List the {es} of {owner} {name}{mods}.",
        "Which {es} belong to {owner} {name}{mods}?",
        "Show all {es} for the {owner} {name}{mods}.",
        "What {es} does {owner} {name} have{mods}?",
        "Get me every {e} held by {owner} {name}{mods}.",
    ),
    "search": (
        'Find {es} matching "{kw}"{mods}.',
        'Search the {es} for "{kw}"{mods}.',
        'Are there any {es} about "{kw}"{mods}?',
        'Look for {es} that mention "{kw}"{mods}.',
        'Which {es} match the keyword "{kw}"{mods}?',
    ),
    "create": (
        'Create {a_e} "{title}" for {owner} {name} with {measure}{mods}.',
        'Add a new {e} called "{title}" for the {owner} {name}, {measure}{mods}.',
        'Please set up {a_e} named "{title}" for {owner} {name} with {measure}{mods}.',
        'New {e}: "{title}", {owner} {name}, {measure}{mods}.',
        'Register {a_e} "{title}" under {owner} {name} with {measure}{mods}.',
    ),
    "update": (
        "Set {e} {id} to {status}{mods}.",
        "Change the status of {e} {id} to {status}{mods}.",
        "Mark {e} {id} as {status}{mods}.",
        "Update {e} {id}: it is {status} now{mods}.",
        "{E} {id} should be {status}; please update it{mods}.",
    ),
    "cancel": (
        "Cancel {e} {id}{mods}.",
        "Please call off {e} {id}{mods}.",
        "{E} {id} is no longer needed, cancel it{mods}.",
        "I want to cancel {e} {id}{mods}.",
        "Withdraw {e} {id}{mods}.",
    ),
    "count": (
        "How many {es} are {status}{mods}?",
        "Count the {status} {es}{mods}.",
        "Give me the number of {es} with status {status}{mods}.",
        "What is the total count of {status} {es}{mods}?",
        "Tell me how many {es} have status {status}{mods}.",
    ),
    "two_step": (
        'Find the {e} matching "{kw}" and {then}.',
        'Look up the {e} about "{kw}", then {then}.',
        'Search the {es} for "{kw}" and {then}.',
        'There is {a_e} that mentions "{kw}"; {then}.',
        'First find the {e} for "{kw}", then {then}.',
    ),
    "parallel": (
        "Two things. {q1} {q2}",
        "{q1} Also: {q2}",
        "Please do both: {q1} {q2}",
        "First: {q1} Second: {q2}",
        "{q1} Plus one more request. {q2}",
    ),
}

# The second call of a two-step task, said about the resource step 1 found ("it").
FOLLOWUPS: dict[str, tuple[str, ...]] = {
    "get": ("show me its details", "pull up its full record"),
    "get_status": ("tell me its status", "check its current status"),
    "get_history": ("show its status history", "tell me how its status changed"),
    "update": ("mark it as {status}", "set its status to {status}"),
    "cancel": ("cancel it", "call it off"),
}

# Clauses for optional arguments; {v} is the value, {owner} the owner noun.
MODIFIERS: dict[str, tuple[str, ...]] = {
    "include_history": ("including its history", "with the full status history"),
    "limit": ("at most {v} results", "only the top {v}", "limit it to {v}"),
    "sort": ("{v} first", "sorted {v} first"),
    "status_filter": ("only the {v} ones", "with status {v}"),
    "due_date": ("due {v}", "with a due date of {v}"),
    "since": ("since {v}", "created on or after {v}"),
    "tags": ("tagged {v}", "with the tags {v}"),
    "priority": ("with {v} priority", "as {v} priority"),
    "reason": ('because of "{v}"', 'with the reason "{v}"'),
    "notify": ("and notify the {owner}", "and let the {owner} know by email"),
    "note": ('with the note "{v}"', 'and add the note "{v}"'),
}
LIMIT_ROLES = ("limit", "history_limit", "search_limit")


def template_id(group: str, index: int) -> str:
    return f"{group}/{index}"


def heldout_template_ids(world_seed: int = 0) -> frozenset[str]:
    """One template per group, drawn from the world seed: never used in training data."""
    rng = random.Random(f"templates|{world_seed}")
    return frozenset(template_id(g, rng.randrange(len(texts))) for g, texts in TEMPLATES.items())


def choose_template(group: str, heldout: bool, world_seed: int, rng: random.Random) -> tuple[str, str]:
    """A template of ``group`` (id, text): a held-out one when ``heldout``, else a training one."""
    held = heldout_template_ids(world_seed)
    ids = [template_id(group, i) for i in range(len(TEMPLATES[group]))]
    tid = rng.choice([t for t in ids if (t in held) == heldout])
    return tid, TEMPLATES[group][int(tid.split("/")[1])]


def _spoken(role: str, value: Any) -> str:
    """How a query says an argument value."""
    if role == "tags":
        return " and ".join(value)
    return str(value)


def modifiers(values: dict[str, Any], owner: str, rng: random.Random) -> str:
    """The ``{mods}`` text for the optional arguments in ``values`` (role -> value), e.g.
    ``", only the overdue ones, at most 3 results"``; empty when there are none."""
    phrases = []
    for role, value in values.items():
        key = "limit" if role in LIMIT_ROLES else role
        phrases.append(rng.choice(MODIFIERS[key]).format(v=_spoken(role, value), owner=owner))
    return "".join(", " + p for p in phrases)
