"""``sgd``: Schema-Guided Dialogue ``dialogues_*.json`` files (a folder reads all of them) with the
service schemas of ``schema.json`` beside them: each service intent is a tool, each
``service_call`` an assistant call turn answered by its ``service_results``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tl_lightning.data.formats.fields import call_arguments, get_field, object_schema, with_keys
from tl_lightning.data.formats.reading import Format, Origin, ReadOptions, find_side_file, load_json, read_records
from tl_lightning.records import DataError, Message, ToolCall, ToolSpec, Trajectory


def _sgd_intent_tools(service: dict[str, Any]) -> list[ToolSpec]:
    """One tool per intent: its required and optional slots as parameters (slot description,
    categorical ``possible_values`` as ``enum``, an optional slot's default as ``default``)."""
    slots = {s["name"]: s for s in service.get("slots", [])}
    tools = []
    for intent in service.get("intents", []):
        properties = {}
        optional = intent.get("optional_slots") or {}
        for name in list(intent.get("required_slots", [])) + list(optional):
            slot = slots.get(name, {})
            schema: dict[str, Any] = {"type": "string", "description": slot.get("description", "")}
            if slot.get("is_categorical") and slot.get("possible_values"):
                schema["enum"] = list(slot["possible_values"])
            if name in optional and optional[name] != "dontcare":
                schema["default"] = optional[name]
            properties[name] = schema
        tools.append(ToolSpec(intent["name"], intent.get("description", ""),
                              object_schema(properties, intent.get("required_slots", []))))
    return tools


def _sgd_dialogue(rec: Any, origin: Origin, services: dict[str, dict[str, Any]]) -> Trajectory:
    """A dialogue. A call outside its services' intents is an error here (not agent history, as
    in tau-bench): SGD's calls come from the schema, so such a call means a broken record."""
    rid = get_field(rec, "dialogue_id", str)
    tools: list[ToolSpec] = []
    for s, name in enumerate(get_field(rec, "services", list)):
        if name not in services:
            raise DataError(f"service {name!r} is not in schema.json", field=f"services[{s}]")
        tools += _sgd_intent_tools(services[name])
    intents = {t.name for t in tools}
    messages = []
    for t, turn in enumerate(get_field(rec, "turns", list)):
        tw = f"turns[{t}]"
        speaker, text = get_field(turn, "speaker", str, tw), get_field(turn, "utterance", str, tw)
        if speaker == "USER":
            messages.append(Message("user", text))
            continue
        if speaker != "SYSTEM":
            raise DataError(f"unknown speaker {speaker!r}", field=f"{tw}.speaker")
        frames = [(f, fr) for f, fr in enumerate(get_field(turn, "frames", list, tw)) if "service_call" in fr]
        calls = tuple(ToolCall(get_field(fr["service_call"], "method", str, f"{tw}.frames[{f}].service_call"),
                               call_arguments(fr["service_call"].get("parameters", {}),
                                              f"{tw}.frames[{f}].service_call.parameters"))
                      for f, fr in frames)
        for (f, _), call in zip(frames, calls):
            if call.name not in intents:
                raise DataError(f"calls {call.name!r}, which is not an intent of {rec['services']}",
                                field=f"{tw}.frames[{f}].service_call.method")
        if calls:
            messages.append(Message("assistant", "", calls))
            messages += [Message("tool", json.dumps(fr.get("service_results", []), ensure_ascii=False),
                                 name=c.name) for (_, fr), c in zip(frames, calls)]
        messages.append(Message("assistant", text))
    return Trajectory(rid, tuple(tools), tuple(messages), origin.meta(services=rec["services"]))


def read_sgd(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """Schema-Guided Dialogue ``dialogues_*.json`` (a directory reads all of them) with the
    ``schema.json`` beside them (or ``tools_path``). Each ``service_call`` is an assistant call
    turn followed by a tool message with its ``service_results`` (JSON); the SYSTEM utterance
    follows as an assistant text turn. Tools: the intents of the dialogue's services."""
    files = sorted(path.glob("dialogues_*.json")) if path.is_dir() else [path]
    folder = path if path.is_dir() else path.parent
    schema_path = find_side_file([options.tools_path or folder / "schema.json"], "SGD schema.json", path)
    schema = load_json(schema_path)
    if not isinstance(schema, list):
        raise DataError("schema.json must be a list of services", source=str(schema_path))
    services = {s["service_name"]: s for s in schema if isinstance(s, dict) and "service_name" in s}
    for file in files:
        yield from read_records(file, "sgd", lambda rec, origin: _sgd_dialogue(rec, origin, services))


def _is_sgd_path(path: Path) -> bool:
    """A folder holding ``dialogues_*.json``, or a file named ``dialogues_<n>.json``."""
    if path.is_dir():
        return any(path.glob("dialogues_*.json"))
    return re.fullmatch(r"dialogues_\d+\.json", path.name) is not None


FORMAT = Format(
    "sgd", read_sgd, matches_record=with_keys("dialogue_id", "turns"), matches_file=_is_sgd_path,
    folder="SGD dialogues_*.json",
    side_files={"schema.json": "the SGD service schemas (read the dialogues_*.json files), not trajectories"})
