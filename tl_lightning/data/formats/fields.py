"""Checks and conversions the readers share: field access that names the field, tool lists, call
arguments, assistant turns whose calls are written as text (python form, ReAct, JSON,
``<tool_call>``, parsed with ``tl_lightning.calls``), JSON-schema fragments for the type names the
sources use, and the shapes ``Format.matches_record`` looks for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from tl_lightning.calls import ParseFailure, parse_calls, split_top_level
from tl_lightning.records import DataError, Message, ToolCall, ToolSpec


def get_field(obj: Any, key: str, kind: type | tuple[type, ...], where: str = "", default: Any = ...) -> Any:
    """``obj[key]`` checked to be a ``kind``; ``DataError`` with field ``where.key`` otherwise."""
    path = f"{where}.{key}" if where else key
    if not isinstance(obj, dict):
        raise DataError(f"expected an object, got {type(obj).__name__}", field=where or None)
    if key not in obj or obj[key] is None:
        if default is not ...:
            return default
        raise DataError(f"missing field {key!r}", field=path)
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _as_tuple(kind):
        names = "/".join(k.__name__ for k in _as_tuple(kind))
        raise DataError(f"expected {names}, got {type(value).__name__}", field=path)
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def tools_from_list(raw: Any, where: str) -> tuple[ToolSpec, ...]:
    """ToolSpecs from a list of ``{"name", "description", "parameters"}`` / OpenAI tool dicts."""
    if isinstance(raw, str):  # some ShareGPT exports store the tool list as a JSON string
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"tool list is not valid JSON ({e.msg})", field=where) from None
    if not isinstance(raw, list):
        raise DataError(f"tool list must be a list, got {type(raw).__name__}", field=where)
    tools = []
    for i, spec in enumerate(raw):
        try:
            tools.append(ToolSpec.from_dict(spec))
        except DataError as e:
            raise e.located(field_prefix=f"{where}[{i}]") from None
    return tuple(tools)


def first_of_each_name(tools: tuple[ToolSpec, ...], meta: dict[str, Any]) -> tuple[ToolSpec, ...]:
    """Keep the first tool of each name. Benchmark prompts sometimes declare a name twice (RoTBench's
    Formula-1 tools list a second ``drivers`` that describes teams); the model sees the prompt's first
    one under that name, and the later ones are kept in ``meta["duplicate_tools"]``."""
    kept: dict[str, ToolSpec] = {}
    for t in tools:
        if t.name in kept:
            meta.setdefault("duplicate_tools", []).append(t.to_openai()["function"])
        else:
            kept[t.name] = t
    return tuple(kept.values())


def require_tools(tools: tuple[ToolSpec, ...] | None, messages: Iterable[Message],
                  where: str) -> tuple[ToolSpec, ...]:
    """A record that calls tools must say which tools exist."""
    if tools is None:
        if any(m.calls for m in messages):
            raise DataError("the record makes tool calls but has no tool list", field=where)
        return ()
    return tools


def call_arguments(raw: Any, where: str) -> dict[str, Any]:
    """Call arguments given as a dict or a JSON-encoded string."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as e:
            raise DataError(f"arguments are not valid JSON ({e.msg})", field=where) from None
    if not isinstance(raw, dict):
        raise DataError(f"arguments must be an object, got {type(raw).__name__}", field=where)
    return raw


def split_params(text: str) -> list[str]:
    """A signature's parameters, split at top-level commas (types may be ``Dict[str, int]``)."""
    return [p.strip() for p in split_top_level(text) if p.strip()]


# Text that is meant as a call: it starts with ``name(`` (or ``[name(``) or a JSON call object, has a
# ``<tool_call>`` block, or a ReAct ``Action:`` line followed by ``Action Input:``. Prose such as
# "Paris (the capital)" or an answer quoting JSON further down is not.
_CALL_LIKE = re.compile(r'\A\s*(\[\s*)?[A-Za-z_][\w.\-]*\(|\A\s*\[?\s*\{\s*"(name|function|tool_calls)"'
                        r"|<tool_call>|^\s*Action\s*:.*\n\s*Action\s*Input\s*:", re.M)
_REACT_ACTION = re.compile(r"^\s*Action\s*:", re.M)


def _react_thought(text: str) -> str:
    """The free text before a ReAct ``Action:`` (without its ``Thought:`` label); "" for other
    renderings, whose call is the whole text."""
    if not _REACT_ACTION.search(text):
        return ""
    before = _REACT_ACTION.split(text, maxsplit=1)[0]
    return re.sub(r"^\s*Thought\s*:\s*", "", before).strip()


def calls_from_text(text: str, where: str) -> tuple[ToolCall, ...]:
    calls = parse_calls(text)
    if isinstance(calls, ParseFailure):
        raise DataError(f"cannot parse the call ({calls.reason}): {text[:120]!r}", field=where)
    return tuple(calls)


def assistant_from_text(text: str, where: str) -> Message:
    """An assistant turn whose calls are written in its text (python form, ReAct, JSON,
    ``<tool_call>``). Text that does not look like a call is a plain answer; text that looks like
    one must parse."""
    if not _CALL_LIKE.search(text):
        return Message("assistant", text)
    return Message("assistant", _react_thought(text), calls_from_text(text, where))


def assistant_from_candidates(candidates: list[Any], where: str) -> Message:
    """A gold turn given as a list of acceptable call texts: the first is ``calls``, the rest
    ``alternatives``."""
    if not candidates:
        raise DataError("empty list of candidate answers", field=where)
    sets = []
    for i, text in enumerate(candidates):
        if not isinstance(text, str):
            raise DataError(f"a candidate must be a string, got {type(text).__name__}", field=f"{where}[{i}]")
        sets.append(calls_from_text(text, f"{where}[{i}]"))
    return Message("assistant", _react_thought(candidates[0]), sets[0], tuple(sets[1:]))


# JSON-schema types for the type names the sources use (Python names, BFCL's, ToolAlpaca's).
_TYPE_NAMES = {
    "str": "string", "string": "string", "datetime": "string", "date": "string",
    "int": "integer", "integer": "integer", "float": "number", "number": "number", "double": "number",
    "bool": "boolean", "boolean": "boolean", "list": "array", "array": "array", "tuple": "array",
    "dict": "object", "object": "object",
}


def schema_for_type(name: str) -> dict[str, Any]:
    """A JSON-schema fragment for a type name such as ``str``, ``List[str]``, ``Array[string]``;
    ``{}`` (any value) for names we do not know."""
    name = name.strip()
    generic = re.fullmatch(r"(?i)(list|array|tuple)\s*\[\s*(\w+)\s*\]", name)
    if generic:
        return {"type": "array", "items": schema_for_type(generic.group(2))}
    kind = _TYPE_NAMES.get(name) or _TYPE_NAMES.get(name.lower())
    return {"type": kind} if kind else {}


def object_schema(properties: dict[str, dict[str, Any]], required: Iterable[str] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


def has_keys(record: Any, *keys: str) -> bool:
    """Whether ``record`` is an object with every key of ``keys``."""
    return isinstance(record, dict) and all(key in record for key in keys)


def with_keys(*keys: str) -> Callable[[Any], bool]:
    """A ``Format.matches_record`` for the formats whose records have keys of their own."""
    return lambda record: has_keys(record, *keys)


def chat_turns(record: Any) -> list[dict[str, Any]] | None:
    """The turns of a chat-shaped record (``conversations``, else ``messages``) when they are a
    list whose first turn is an object; else None."""
    turns = record.get("conversations", record.get("messages")) if isinstance(record, dict) else None
    return turns if isinstance(turns, list) and turns and isinstance(turns[0], dict) else None
