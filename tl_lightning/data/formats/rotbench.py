"""``rotbench`` (= ``tooleyes``): RoTBench's and ToolEyes' ShareGPT-shaped ReAct records, whose
tool list is JSON inside the system prompt; the last assistant value may be a list of acceptable
calls. ToolEyes' raw ``{"query", "path"}`` records take their tools from
``<path>/config_gpt4.json`` in its tool library.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tl_lightning.data.formats.fields import chat_turns, first_of_each_name, get_field, has_keys, tools_from_list
from tl_lightning.data.formats.reading import Format, Origin, ReadOptions, load_json, read_records
from tl_lightning.data.formats.sharegpt import sharegpt_record, tool_list_in_prompt
from tl_lightning.records import DataError, Message, Trajectory


def _tooleyes_root(path: Path, tool_path: str) -> Path:
    """The folder that ToolEyes' ``path`` values (``ToolEyes/Tool_Library/...``) are relative to."""
    for parent in path.resolve().parents:
        if (parent / tool_path).is_dir():
            return parent
    raise DataError(f"tool folder {tool_path!r} not found above {path}", field="path")


def _tooleyes_raw_record(rec: Any, origin: Origin, options: ReadOptions) -> Trajectory:
    """ToolEyes ``{"query", "path", "scenario"}``: the query, tools from ``<path>/config_gpt4.json``."""
    query, tool_path = get_field(rec, "query", str), get_field(rec, "path", str)
    config = (options.tools_path or _tooleyes_root(origin.path, tool_path)) / tool_path / "config_gpt4.json"
    meta = origin.meta(path=tool_path, scenario=rec.get("scenario"))
    tools = first_of_each_name(tools_from_list(load_json(config), "path"), meta)
    return Trajectory(origin.default_id, tools, (Message("user", query),), meta)


def _rotbench_record(rec: Any, origin: Origin, options: ReadOptions) -> Trajectory:
    if isinstance(rec, dict) and "conversations" not in rec and "query" in rec:
        return _tooleyes_raw_record(rec, origin, options)
    return sharegpt_record(rec, origin)


def read_rotbench(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """RoTBench and ToolEyes: ShareGPT-shaped ReAct conversations whose tool list is JSON in the
    system prompt; a last assistant value that is a list holds every acceptable call (``calls`` =
    the first, ``alternatives`` = the rest). ``meta`` keeps ``scenario`` (and ToolEyes' ``path``).
    ToolEyes has no gold: its records end with the user query."""
    yield from read_records(path, "rotbench", lambda rec, origin: _rotbench_record(rec, origin, options))


def _is_rotbench_record(record: Any) -> bool:
    """A raw ToolEyes record, or ShareGPT turns whose system prompt is a ReAct prompt with a JSON
    tool list (and no ``tools`` key beside them)."""
    if has_keys(record, "query", "path"):
        return True
    turns = chat_turns(record)
    if turns is None or "from" not in turns[0] or "tools" in record:
        return False
    system = turns[0].get("value") if turns[0].get("from") == "system" else None
    return isinstance(system, str) and "Action Input" in system and bool(tool_list_in_prompt(system))


FORMAT = Format(
    "rotbench", read_rotbench, matches_record=_is_rotbench_record, aliases=("tooleyes",),
    side_files={"config_gpt4.json": "a ToolEyes tool list (read ToolEyes/Test_Data/*.json), not trajectories"})
