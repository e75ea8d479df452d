"""The IRM reward: a generated call scored by its error category (DESIGN §2).

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

Inputs: the prediction is generated text (parsed with ``calls.parse_calls``; the IRM reward is
defined for one call, so when the text holds several calls the first is scored) or a ``ToolCall``.
``gold`` is a ``ToolCall``, a call text, or a list of acceptable alternatives (each may itself be a
call set, e.g. a ``Message.acceptable()`` entry, whose calls all count as acceptable); the best
reward wins. A gold text that does not parse cannot be matched and is skipped, so a prediction
never raises on any gold; with no usable gold left, a parsed call to a listed tool is
``wrong_tool``. ``tools`` are ``ToolSpec``s or OpenAI-style dicts (a malformed dict is a data
error: ``DataError``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any, Union

from tl_lightning.calls import ParseFailure, normalize_value, parse_call, parse_calls
from tl_lightning.data.records import ToolCall, ToolSpec

Gold = Union[ToolCall, str, Sequence[Any]]


@dataclass(frozen=True)
class RewardTable:
    """Reward per error category (DESIGN §2); the field names are the category names, from the
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


def _predicted_call(prediction: str | ToolCall) -> ToolCall | None:
    if isinstance(prediction, ToolCall):
        return prediction if isinstance(prediction.arguments, dict) else None
    calls = parse_calls(prediction)
    return None if isinstance(calls, ParseFailure) else calls[0]


def _gold_calls(gold: Gold) -> list[ToolCall]:
    """Every acceptable gold call, flattened from a call, a call text or (nested) lists of them."""
    if isinstance(gold, ToolCall):
        return [gold] if isinstance(gold.arguments, dict) else []
    if isinstance(gold, str):
        call = parse_call(gold)
        return [call] if isinstance(call, ToolCall) else []
    if isinstance(gold, Sequence):
        return [call for alternative in gold for call in _gold_calls(alternative)]
    raise TypeError(f"gold must be a ToolCall, a call text or a list of them, got {type(gold).__name__}")


# ---------------------------------------------------------------------------------------------
# categories


def _category_against(call: ToolCall, gold: ToolCall, properties: dict[str, Any]) -> str:
    """The category of ``call`` (to a listed tool, schema ``properties``) against one gold call."""
    if call.name != gold.name:
        return "wrong_tool"
    predicted, expected = set(call.arguments), set(gold.arguments)
    hallucinated = bool(predicted - set(properties) - expected)
    redundant = bool((predicted & set(properties)) - expected)
    missing = bool(expected - predicted)
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
    same = all(values_equal(call.arguments[k], gold.arguments[k], properties.get(k)) for k in expected)
    return "exact" if same else "wrong_value"


def classify_call(prediction: str | ToolCall, gold: Gold, tools: Iterable[ToolSpec | dict[str, Any]],
                  table: RewardTable | None = None) -> str:
    """The IRM category (one of ``CATEGORIES``) of ``prediction``: the best, under ``table``'s
    rewards, over the acceptable gold calls. Never raises on any prediction text."""
    table = table or DEFAULT_TABLE
    call = _predicted_call(prediction)
    properties = _tool_properties(tools)
    if call is None or call.name not in properties:
        return "unparsable_or_unknown_tool"
    categories = [_category_against(call, g, properties[call.name]) for g in _gold_calls(gold)]
    return max(categories, key=table.value, default="wrong_tool")


def irm_reward(prediction: str | ToolCall, gold: Gold, tools: Iterable[ToolSpec | dict[str, Any]],
               table: RewardTable | None = None) -> float:
    """The IRM reward of ``prediction`` (DESIGN §2 table; ``table`` overrides the values)."""
    table = table or DEFAULT_TABLE
    return table.value(classify_call(prediction, gold, tools, table))
