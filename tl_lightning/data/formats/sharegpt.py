"""``sharegpt``: ``{"conversations": [{"from", "value"}], "tools": ...}`` records. Without a
``tools`` key the tool list is taken from the system prompt when it holds one as JSON; the prompt
then moves to ``meta["system_prompt"]`` (the renderer writes the tool list itself), and a tool name
the prompt declares twice keeps its first declaration (``meta["duplicate_tools"]``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tl_lightning.data.formats.fields import (
    assistant_from_candidates,
    assistant_from_text,
    calls_from_text,
    chat_turns,
    first_of_each_name,
    get_field,
    require_tools,
    tools_from_list,
)
from tl_lightning.data.formats.reading import Format, Origin, ReadOptions, read_records
from tl_lightning.records import DataError, Message, Trajectory


_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                   "assistant": "assistant", "function_call": "assistant", "function": "tool",
                   "observation": "tool", "tool": "tool"}


def _sharegpt_messages(raw: Any, where: str) -> tuple[list[Message], str | None]:
    """ShareGPT turns -> Messages, plus the system prompt (kept out of the messages when it
    carries the tool list; the caller decides)."""
    if not isinstance(raw, list):
        raise DataError(f"expected a list of turns, got {type(raw).__name__}", field=where)
    messages, system = [], None
    for i, turn in enumerate(raw):
        tw = f"{where}[{i}]"
        speaker = get_field(turn, "from", str, tw)
        role = _SHAREGPT_ROLES.get(speaker.lower())
        if role is None:
            raise DataError(f"unknown speaker {speaker!r}", field=f"{tw}.from")
        value = get_field(turn, "value", (str, list), tw)
        if isinstance(value, list):
            if role != "assistant":
                raise DataError("only an assistant turn may list candidate answers", field=f"{tw}.value")
            messages.append(assistant_from_candidates(value, f"{tw}.value"))
        elif speaker.lower() == "function_call":
            messages.append(Message("assistant", "", calls_from_text(value, f"{tw}.value")))
        elif role == "assistant":
            messages.append(assistant_from_text(value, f"{tw}.value"))
        elif role == "system" and i == 0:
            system = value
        else:
            messages.append(Message(role, value))
    return messages, system


def tool_list_in_prompt(prompt: str) -> list[Any] | None:
    """The JSON tool list written inside a system prompt (RoTBench/ToolEyes), or None."""
    start = prompt.find("[{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(prompt, start)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def sharegpt_record(rec: Any, origin: Origin) -> Trajectory:
    """One ShareGPT record (also RoTBench's, read as format ``rotbench``, which needs the tool list
    in its system prompt)."""
    messages, system = _sharegpt_messages(get_field(rec, "conversations", list), "conversations")
    meta = origin.meta()
    for key in ("scenario", "path"):
        if key in rec:
            meta[key] = rec[key]
    tools = None
    if rec.get("tools") is not None:
        tools = tools_from_list(rec["tools"], "tools")
    elif system is not None and (listed := tool_list_in_prompt(system)) is not None:
        tools = first_of_each_name(tools_from_list(listed, "conversations[0].value"), meta)
    if system is not None:
        if tools is not None and rec.get("tools") is None:
            meta["system_prompt"] = system
        else:
            messages.insert(0, Message("system", system))
    if origin.format == "rotbench" and tools is None:
        raise DataError("no tool list in the system prompt", field="conversations[0].value")
    tools = require_tools(tools, messages, "tools")
    return Trajectory(origin.record_id(rec), tools, tuple(messages), meta)


def read_sharegpt(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """ShareGPT ``{"conversations": [{"from", "value"}], "tools": ...}`` records. Without a ``tools``
    key the tool list is taken from the system prompt when it holds one as JSON."""
    yield from read_records(path, "sharegpt", sharegpt_record)


def _is_sharegpt_record(record: Any) -> bool:
    """Chat turns with a ``from`` (the ``rotbench`` entry, registered before, takes the ReAct ones)."""
    turns = chat_turns(record)
    return turns is not None and "from" in turns[0]


FORMAT = Format("sharegpt", read_sharegpt, matches_record=_is_sharegpt_record)
