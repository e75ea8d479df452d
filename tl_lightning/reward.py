"""The IRM reward: a generated call scored by its error category (docs/design.md, "The IRM reward").

``classify_call`` names the category of a prediction against the gold call(s), ``irm_reward`` gives
its value from a ``RewardTable``. Definitions, for a prediction that calls the gold tool:

- hallucinated: a key that is neither in the tool schema's ``properties`` nor in the gold call
  (a key the gold uses is never a hallucination, even if the schema forgot it);
- redundant: a key in the schema but not in the gold call;
- missing: a key in the gold call but not in the prediction.

Value comparison (after ``normalize_value``, i.e. as JSON sees values; ``values_equal``):

- strings compare exactly (case and whitespace count);
- numbers compare numerically (``5 == 5.0``: JSON has one number type); booleans are not numbers
  (``true != 1``) and ``null`` equals only ``null``;
- a number or boolean equals a string only where the parameter's schema type is ``"string"`` and
  the string, read as JSON, is that value (``"5"`` for ``5``, ``"true"`` for ``true``): the model
  wrote the right value without quotes, or the data stored a string parameter as a number;
- lists compare element-wise in order (with the schema's ``items``), objects key-set and
  value-wise (with the schema's ``properties``).

Inputs: the prediction is generated text (all its calls, read with ``calls.parse_calls``), a
``ToolCall`` or a sequence of them (a turn's calls, already parsed). ``gold`` is a ``ToolCall``, a call text, or a list of acceptable alternatives; an
alternative is a call SET: a ``ToolCall``, a call text (all its calls) or a list of them (a
``Message.acceptable()`` entry). The best reward over the alternatives wins. An alternative with a
part that cannot be matched (a text that does not parse, arguments that are not an object) is
skipped, so a prediction never raises on any gold; with no usable alternative left, a parsed call
to a listed tool is ``wrong_tool``. ``tools`` are ``ToolSpec``s or OpenAI-style dicts (a malformed
dict is a data error: ``DataError``).

A turn against one call set (the paper's reward is one value per turn):

- a set of ONE call is the paper's single-call reward, and a prediction of one call is scored
  exactly as the paper scores it; extra calls beside it are not free (see below: REDUNDANT), so a
  policy cannot hedge by calling several tools;
- a set of several calls (parallel calls) needs all of them, in any order. Any predicted call to a
  tool that is not listed makes the turn ``unparsable_or_unknown_tool``. Otherwise predicted and
  gold calls are paired one to one, as many pairs as the smaller side has (so a wrong call in
  place of a gold one is a wrong tool, not a cheaper missing call plus an extra one), and the turn
  is classified like one call (``RewardTable``'s order: wrong tool, then the hallucinated /
  redundant / missing combinations, then values) over the union of what its parts show: a pair
  naming different tools is a wrong tool; a pair's hallucinated, redundant and missing keys and
  differing values count for the turn; a gold call left unpaired is MISSING (like a gold key the
  prediction lacks) and a predicted call left over is REDUNDANT (like a schema key the gold does
  not use). Of all pairings, the one with the best reward under the table counts. E.g. one call
  exact and the other lacking a key is ``redundant_or_missing``; a call missing and the other with
  a surplus key is ``redundant_and_missing``; one call of a two-call gold, exact, is
  ``redundant_or_missing``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any, Union

from tl_lightning.calls import ParseFailure, normalize_value, parse_calls
from tl_lightning.records import ToolCall, ToolSpec

Gold = Union[ToolCall, str, Sequence[Any]]


@dataclass(frozen=True)
class RewardTable:
    """Reward per error category (the paper's values); the field names are the category names, from the
    worst case to the best, in the order ``classify_call`` tests them."""

    unparsable_or_unknown_tool: float = -2.0
    wrong_tool: float = -1.5
    hallucinated_redundant_missing: float = -1.8
    hallucinated_and_redundant_or_missing: float = -1.3
    redundant_and_missing: float = -1.0
    hallucinated: float = -0.8
    redundant_or_missing: float = -0.5
    wrong_value: float = -0.25
    exact: float = 1.0

    def value(self, category: str) -> float:
        """The reward of ``category`` (one of ``CATEGORIES``)."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown reward category {category!r} (expected one of {CATEGORIES})")
        return getattr(self, category)

    def values(self) -> tuple[float, ...]:
        """All rewards, in ``CATEGORIES`` order."""
        return astuple(self)


CATEGORIES: tuple[str, ...] = tuple(f.name for f in fields(RewardTable))
DEFAULT_TABLE = RewardTable()


# ---------------------------------------------------------------------------------------------
# values


def _schema_type_is_string(schema: Any) -> bool:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scalar_of_string(text: str) -> Any:
    """What a string holds when read as a JSON scalar (``"5"`` → 5, ``"true"`` → True), else the
    string itself."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if (_is_number(value) and math.isfinite(value)) or isinstance(value, bool):
        return value
    return text


def _same(a: Any, b: Any, schema: Any) -> bool:
    """Equality of two normalized JSON values under the rules of the module docstring."""
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, str) != isinstance(b, str):
        if not _schema_type_is_string(schema):
            return False
        text, other = (a, b) if isinstance(a, str) else (b, a)
        if not (_is_number(other) or isinstance(other, bool)):
            return False
        return _same(_scalar_of_string(text), other, {})
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        items = schema.get("items") if isinstance(schema, dict) else None
        return len(a) == len(b) and all(_same(x, y, items) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        props = schema.get("properties") if isinstance(schema, dict) else None
        props = props if isinstance(props, dict) else {}
        return a.keys() == b.keys() and all(_same(a[k], b[k], props.get(k)) for k in a)
    return a is None and b is None


def values_equal(predicted: Any, gold: Any, schema: dict[str, Any] | None = None) -> bool:
    """Whether an argument value matches the gold value of a parameter whose JSON schema is
    ``schema`` (rules in the module docstring)."""
    return _same(normalize_value(predicted), normalize_value(gold), schema or {})


# ---------------------------------------------------------------------------------------------
# inputs


def _tool_properties(tools: Iterable[ToolSpec | dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tool name → schema ``properties`` (the first tool of a name wins)."""
    by_name: dict[str, dict[str, Any]] = {}
    for tool in tools:
        spec = tool if isinstance(tool, ToolSpec) else ToolSpec.from_dict(tool)
        props = spec.properties
        by_name.setdefault(spec.name, props if isinstance(props, dict) else {})
    return by_name


def _predicted_calls(prediction: str | ToolCall | Sequence[ToolCall]) -> list[ToolCall] | None:
    """The calls of a prediction, in order; None when it holds none."""
    if isinstance(prediction, ToolCall):
        prediction = [prediction]
    if not isinstance(prediction, str):
        calls = list(prediction)
        return calls if calls and all(isinstance(c.arguments, dict) for c in calls) else None
    calls = parse_calls(prediction)
    return None if isinstance(calls, ParseFailure) else calls


def _call_set(alternative: Any) -> tuple[ToolCall, ...] | None:
    """The calls of one gold alternative (a call, a call text, or a list of them); None when a
    part of it cannot be matched."""
    if isinstance(alternative, ToolCall):
        return (alternative,) if isinstance(alternative.arguments, dict) else None
    if isinstance(alternative, str):
        calls = parse_calls(alternative)
        return None if isinstance(calls, ParseFailure) else tuple(calls)
    if isinstance(alternative, Sequence):
        parts = [_call_set(part) for part in alternative]
        return None if not parts or None in parts else tuple(call for part in parts for call in part)
    raise TypeError(f"gold must be a ToolCall, a call text or a list of them, got {type(alternative).__name__}")


def _gold_sets(gold: Gold) -> list[tuple[ToolCall, ...]]:
    """The usable acceptable call sets of ``gold`` (module docstring)."""
    alternatives = [gold] if isinstance(gold, (ToolCall, str)) else gold
    if not isinstance(alternatives, Sequence):
        raise TypeError(f"gold must be a ToolCall, a call text or a list of them, got {type(gold).__name__}")
    return [calls for calls in map(_call_set, alternatives) if calls is not None]


# ---------------------------------------------------------------------------------------------
# categories


def _pair_facts(call: ToolCall, gold: ToolCall, properties: dict[str, Any]) -> frozenset[str]:
    """What pairing ``call`` (to a listed tool, schema ``properties``) with one gold call shows:
    ``wrong_tool``, or any of ``hallucinated``, ``redundant``, ``missing``, ``wrong_value``."""
    if call.name != gold.name:
        return frozenset({"wrong_tool"})
    predicted, expected = set(call.arguments), set(gold.arguments)
    facts = set()
    if predicted - set(properties) - expected:
        facts.add("hallucinated")
    if (predicted & set(properties)) - expected:
        facts.add("redundant")
    if expected - predicted:
        facts.add("missing")
    if not all(values_equal(call.arguments[k], gold.arguments[k], properties.get(k)) for k in expected & predicted):
        facts.add("wrong_value")
    return frozenset(facts)


def _category_of(facts: frozenset[str]) -> str:
    """The category of a call or turn that shows ``facts`` (``_pair_facts``), tested in
    ``RewardTable`` order."""
    if "wrong_tool" in facts:
        return "wrong_tool"
    hallucinated, redundant, missing = ("hallucinated" in facts, "redundant" in facts, "missing" in facts)
    if hallucinated and redundant and missing:
        return "hallucinated_redundant_missing"
    if hallucinated and (redundant or missing):
        return "hallucinated_and_redundant_or_missing"
    if redundant and missing:
        return "redundant_and_missing"
    if hallucinated:
        return "hallucinated"
    if redundant or missing:
        return "redundant_or_missing"
    return "wrong_value" if "wrong_value" in facts else "exact"


def _pairing_facts(pair_facts: list[list[frozenset[str]]]) -> set[frozenset[str]]:
    """The union of pair facts of every one-to-one pairing of m predicted with n gold calls that
    pairs min(m, n) of them; ``pair_facts[i][j]`` is the facts of predicted i with gold j.

    Predicted calls are placed one at a time, keeping each reachable (gold calls used, facts)
    state: at most 2**n * 32 states per step, so a prediction with many calls stays cheap."""
    m, n = len(pair_facts), len(pair_facts[0])
    pairs = min(m, n)
    states = {(0, frozenset())}  # (bitmask of the gold calls used, facts so far)
    for i, row in enumerate(pair_facts):
        placed = set()
        for used, facts in states:
            if i - used.bit_count() < m - pairs:  # call i may stay unpaired
                placed.add((used, facts))
            placed.update((used | 1 << j, facts | row[j]) for j in range(n) if not used & 1 << j)
        states = placed
    return {facts for used, facts in states if used.bit_count() == pairs}


def _turn_categories(calls: list[ToolCall], gold_set: tuple[ToolCall, ...],
                     properties: dict[str, dict[str, Any]]) -> set[str]:
    """Every category the predicted ``calls`` can get against one gold call set, one per pairing
    (module docstring); ``properties``: listed tool name -> schema properties."""
    if any(call.name not in properties for call in calls):
        return {"unparsable_or_unknown_tool"}
    surplus = frozenset({"missing"} if len(calls) < len(gold_set) else {"redundant"} if len(calls) > len(gold_set)
                        else ())
    pair_facts = [[_pair_facts(call, g, properties[call.name]) for g in gold_set] for call in calls]
    return {_category_of(facts | surplus) for facts in _pairing_facts(pair_facts)}


def classify_call(prediction: str | ToolCall | Sequence[ToolCall], gold: Gold, tools: Iterable[ToolSpec | dict[str, Any]],
                  table: RewardTable | None = None) -> str:
    """The IRM category (one of ``CATEGORIES``) of ``prediction``: the best, under ``table``'s
    rewards, over the acceptable gold call sets. Never raises on any prediction text."""
    table = table or DEFAULT_TABLE
    gold_sets = _gold_sets(gold)
    calls = _predicted_calls(prediction)
    properties = _tool_properties(tools)
    if calls is None or calls[0].name not in properties:
        return "unparsable_or_unknown_tool"
    categories = set().union(*(_turn_categories(calls, s, properties) for s in gold_sets))
    return max(categories, key=table.value, default="wrong_tool")


def irm_reward(prediction: str | ToolCall, gold: Gold, tools: Iterable[ToolSpec | dict[str, Any]],
               table: RewardTable | None = None) -> float:
    """The IRM reward of ``prediction`` (docs/design.md, "The IRM reward"; ``table`` overrides the values)."""
    table = table or DEFAULT_TABLE
    return table.value(classify_call(prediction, gold, tools, table))
