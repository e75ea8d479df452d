"""``openai``: ``{"messages": [...], "tools": [...]}`` chat records with assistant ``tool_calls``
and role ``tool`` (a JSON list or JSONL). Also the project's normalized format: ``data.sources.write_jsonl``
writes it, adding ``id``, ``meta`` and, on assistant messages, ``alternatives`` (other correct
call sets, encoded as ``tool_calls``); reading it back gives equal records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tl_lightning.data.formats.fields import call_arguments, chat_turns, get_field, require_tools, tools_from_list
from tl_lightning.data.formats.reading import Format, Origin, ReadOptions, read_records
from tl_lightning.records import DataError, Message, ToolCall, Trajectory


def _content_text(raw: Any, where: str) -> str:
    """Message content: a string, None, or OpenAI's list of ``{"type": "text", "text"}`` parts."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in raw):
        return "".join(p["text"] for p in raw)
    raise DataError(f"content must be a string, got {type(raw).__name__}", field=where)


def _openai_call(raw: Any, where: str) -> ToolCall:
    fn = get_field(raw, "function", dict, where) if isinstance(raw, dict) and "function" in raw else raw
    fwhere = f"{where}.function" if fn is not raw else where
    name = get_field(fn, "name", str, fwhere)
    return ToolCall(name, call_arguments(fn.get("arguments", {}), f"{fwhere}.arguments"))


def _openai_calls(raw: Any, where: str) -> tuple[ToolCall, ...]:
    if not isinstance(raw, list):
        raise DataError(f"expected a list of tool calls, got {type(raw).__name__}", field=where)
    return tuple(_openai_call(c, f"{where}[{j}]") for j, c in enumerate(raw))


_OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
                 "tool": "tool", "function": "tool"}


def openai_messages(raw: Any, where: str) -> tuple[Message, ...]:
    """OpenAI chat messages -> Messages. A tool message without a ``name`` takes it from the call
    its ``tool_call_id`` answers."""
    if not isinstance(raw, list):
        raise DataError(f"expected a list of messages, got {type(raw).__name__}", field=where)
    names_by_call_id: dict[str, str] = {}
    messages = []
    for i, m in enumerate(raw):
        mw = f"{where}[{i}]"
        role = _OPENAI_ROLES.get(get_field(m, "role", str, mw))
        if role is None:
            raise DataError(f"unknown role {m['role']!r}", field=f"{mw}.role")
        content = _content_text(m.get("content"), f"{mw}.content")
        if role == "assistant":
            calls = _openai_calls(m["tool_calls"], f"{mw}.tool_calls") if m.get("tool_calls") else ()
            if m.get("function_call"):  # the pre-tools OpenAI API: one call per message
                calls += (_openai_call(m["function_call"], f"{mw}.function_call"),)
            for j, c in enumerate(m.get("tool_calls") or []):
                if isinstance(c, dict) and isinstance(c.get("id"), str):
                    names_by_call_id[c["id"]] = calls[j].name
            alternatives = tuple(_openai_calls(alt, f"{mw}.alternatives[{a}]")
                                 for a, alt in enumerate(get_field(m, "alternatives", list, mw, [])))
            messages.append(Message("assistant", content, calls, alternatives))
        elif role == "tool":
            name = m.get("name") or names_by_call_id.get(m.get("tool_call_id") or "")
            if name is not None and not isinstance(name, str):
                raise DataError(f"expected str, got {type(name).__name__}", field=f"{mw}.name")
            messages.append(Message("tool", content, name=name))
        else:
            messages.append(Message(role, content))
    return tuple(messages)


def _openai_record(rec: Any, origin: Origin) -> Trajectory:
    messages = openai_messages(get_field(rec, "messages", list), "messages")
    tools = require_tools(tools_from_list(rec["tools"], "tools") if rec.get("tools") is not None else None,
                          messages, "tools")
    meta = dict(get_field(rec, "meta", dict, default={}))
    for key, value in origin.meta().items():
        meta.setdefault(key, value)  # a normalized file keeps the provenance of the original
    return Trajectory(origin.record_id(rec), tools, messages, meta)


def read_openai(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """OpenAI chat records (JSON list or JSONL), also the project's normalized JSONL."""
    yield from read_records(path, "openai", _openai_record)


def _is_openai_record(record: Any) -> bool:
    """Chat turns with a ``role`` (the ``tl`` entry, registered before, takes the TL role names)."""
    turns = chat_turns(record)
    return turns is not None and "role" in turns[0]


FORMAT = Format("openai", read_openai, matches_record=_is_openai_record)
