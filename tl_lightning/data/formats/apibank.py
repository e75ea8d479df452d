"""``apibank``: API-Bank's level-1 / level-2 dialogue files (one message per line, ``User`` /
``AI`` / ``API``), a file or a folder of them, with the tool schemas of ``data/all_apis.csv`` in the
API-Bank folder (or ``tools_path``). Each file is one record.
"""

from __future__ import annotations

import ast
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tl_lightning.data.formats.fields import call_arguments, get_field, object_schema, schema_for_type, split_params
from tl_lightning.data.formats.reading import (
    EmptyFile,
    Format,
    Origin,
    ReadOptions,
    build_trajectory,
    find_side_file,
    first_record,
    jsonl_records,
    read_text,
)
from tl_lightning.records import DataError, Message, ToolCall, ToolSpec, Trajectory


# API-Bank's level-2 tool-retrieval API, which all_apis.csv does not list (api-bank/apis/tool_search.py).
APIBANK_TOOL_SEARCHER = ToolSpec(
    "ToolSearcher", "Searches for relevant tools in library based on the keywords.",
    object_schema({"keywords": {"type": "string", "description": "The keyword to search for."}}, ["keywords"]),
)


def _apibank_spec(name: str, description: str, inputs: Any) -> ToolSpec:
    """API-Bank's ``input_parameters`` (``{p: {"type": "str", "description"}}``) -> ToolSpec."""
    properties, required = {}, []
    for p, info in (inputs if isinstance(inputs, dict) else {}).items():
        info = info if isinstance(info, dict) else {}
        schema = dict(schema_for_type(str(info.get("type", ""))))
        schema["description"] = str(info.get("description", ""))
        properties[p] = schema
        if info.get("required") is True:
            required.append(p)
    return ToolSpec(name, description, object_schema(properties, required))


def _apibank_csv_tools(csv_path: Path) -> dict[str, ToolSpec]:
    """``all_apis.csv``: the ``api_info`` column holds ``description = ...`` and
    ``input_parameters = {...}`` Python assignments (read with ``ast.literal_eval``); one row
    (ImageCaption) has no api_info, its ``input_parameters`` column ``(image: str)`` is used."""
    tools = {}
    with io.StringIO(read_text(csv_path)) as f:
        for row in csv.DictReader(f):
            name = row.get("类名") or ""
            if not name:
                continue
            info: dict[str, Any] = {}
            try:
                for stmt in ast.parse(row.get("api_info") or "").body:
                    if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                        info[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except (SyntaxError, ValueError):
                info = {}
            if "input_parameters" not in info:
                signature = (row.get("input_parameters") or "").strip("() ")
                info["input_parameters"] = {p.split(":")[0].strip(): {"type": p.partition(":")[2].strip()}
                                            for p in split_params(signature)}
            tools[name] = _apibank_spec(name, str(info.get("description") or ""), info["input_parameters"])
    return tools


def _apibank_csv_path(path: Path, options: ReadOptions) -> Path:
    """``tools_path``, else ``data/all_apis.csv`` in the API-Bank folder: the nearest ancestor of
    ``path`` (itself included) that has one."""
    if options.tools_path is not None:
        return find_side_file([options.tools_path], "API-Bank all_apis.csv", path)
    return find_side_file([p / "data" / "all_apis.csv" for p in (path, *path.parents)][:4],
                          "API-Bank all_apis.csv", path)


def _apibank_dialogue(lines: list[Any], origin: Origin, csv_tools: dict[str, ToolSpec]) -> Trajectory:
    """One dialogue file. ``User`` -> user, ``AI`` -> assistant text, ``API`` -> an assistant call
    (arguments = ``result.input``, the typed values the API received; ``param_dict`` where that is
    empty) and a tool message (``result.output``, JSON-encoded unless a string, or the exception).
    Tools: the APIs the dialogue calls, described as its own ToolSearcher results describe them,
    else as all_apis.csv does (whose parameter names differ from the dialogues' for many APIs)."""
    messages, tools, searched = [], {}, {}
    for i, line in enumerate(lines):
        where = f"line[{i}]"
        if isinstance(line, DataError):  # the dialogue is the record: name the line as its field
            raise DataError(line.reason, field=where)
        role = get_field(line, "role", str, where)
        if role == "User":
            messages.append(Message("user", get_field(line, "text", str, where)))
        elif role == "AI":
            messages.append(Message("assistant", get_field(line, "text", str, where)))
        elif role == "API":
            name = get_field(line, "api_name", str, where)
            result = get_field(line, "result", dict, where)
            typed = isinstance(result.get("input"), dict)
            arguments = call_arguments(result["input"] if typed else line.get("param_dict", {}),
                                       f"{where}.result.input" if typed else f"{where}.param_dict")
            messages.append(Message("assistant", "", (ToolCall(name, arguments),)))
            exception = result.get("exception")
            output = result.get("output")
            content = f"Exception: {exception}" if exception else output if isinstance(output, str) \
                else json.dumps(output, ensure_ascii=False)
            messages.append(Message("tool", content, name=name))
            if name == APIBANK_TOOL_SEARCHER.name:
                for found in output if isinstance(output, list) else [output]:
                    if isinstance(found, dict) and isinstance(found.get("name"), str):
                        searched[found["name"]] = _apibank_spec(found["name"], str(found.get("description", "")),
                                                                found.get("input_parameters"))
            spec = (APIBANK_TOOL_SEARCHER if name == APIBANK_TOOL_SEARCHER.name
                    else searched.get(name) or csv_tools.get(name))
            if spec is None:
                raise DataError(f"API {name!r} is in neither all_apis.csv nor a ToolSearcher result",
                                field=f"{where}.api_name")
            tools.setdefault(name, spec)
        else:
            raise DataError(f"unknown role {role!r} (expected User, AI or API)", field=f"{where}.role")
    folder, name = origin.path.parent.name, origin.path.stem
    return Trajectory(f"{folder}/{name}", tuple(tools.values()), tuple(messages), origin.meta(level=folder))


def read_apibank(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError | EmptyFile]:
    """API-Bank dialogue files (one message per line); a directory reads every ``*.jsonl`` below it.
    Each file is one record, so with ``on_error="skip"`` a broken file is skipped and counted."""
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    csv_tools = _apibank_csv_tools(_apibank_csv_path(path, options))
    for index, file in enumerate(files):
        try:
            lines = [line for _, line in jsonl_records(file)]
        except DataError as e:
            yield e.located(index=index)
            continue
        if not lines:
            yield EmptyFile(str(file))
            continue
        origin = Origin(file, index, "apibank")
        yield build_trajectory(file, index, lines, lambda: _apibank_dialogue(lines, origin, csv_tools),
                               record_id=f"{file.parent.name}/{file.stem}")


def _is_apibank_line(record: Any) -> bool:
    return isinstance(record, dict) and record.get("role") in ("User", "AI", "API")


def _is_apibank_folder(path: Path) -> bool:
    """A folder whose first ``*.jsonl`` (below it, sorted) starts with an API-Bank line."""
    first = next(iter(sorted(path.rglob("*.jsonl"))), None) if path.is_dir() else None
    return first is not None and _is_apibank_line(first_record(first))


FORMAT = Format(
    "apibank", read_apibank, matches_record=_is_apibank_line, matches_file=_is_apibank_folder,
    folder="API-Bank *.jsonl dialogues",
    side_files={
        "all_apis.csv": "the API-Bank tool schemas (read the lv1-lv2-samples dialogues), not trajectories",
        "exceptions.json": "API-Bank's exception messages (read the lv1-lv2-samples dialogues), not trajectories",
    })
