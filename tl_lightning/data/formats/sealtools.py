"""``sealtools``: Seal-Tools' ``{"id", "query", "calling"}`` records with the tool schemas of the
``tool.jsonl`` beside them: the query, then one assistant turn with every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tl_lightning.data.formats.fields import call_arguments, get_field, object_schema, schema_for_type, with_keys
from tl_lightning.data.formats.reading import Format, Origin, ReadOptions, find_side_file, jsonl_records, read_records
from tl_lightning.records import DataError, Message, ToolCall, ToolSpec, Trajectory


def _sealtools_catalog(tools_path: Path) -> dict[str, ToolSpec]:
    """Seal-Tools ``tool.jsonl``: ``{api_name, api_description, parameters{p: {type, description}},
    required}`` per line."""
    catalog = {}
    for index, rec in jsonl_records(tools_path):
        if isinstance(rec, DataError):
            raise rec
        try:
            name = get_field(rec, "api_name", str)
            properties = {}
            for p, info in get_field(rec, "parameters", dict).items():
                info = info if isinstance(info, dict) else {}
                properties[p] = dict(schema_for_type(str(info.get("type", ""))),
                                     description=str(info.get("description", "")))
            catalog[name] = ToolSpec(name, str(rec.get("api_description", "")),
                                     object_schema(properties, get_field(rec, "required", list, default=[])))
        except DataError as e:
            raise e.located(source=str(tools_path), index=index) from None
    return catalog


def _sealtools_record(rec: Any, origin: Origin, catalog: dict[str, ToolSpec]) -> Trajectory:
    rid = get_field(rec, "id", str)
    calls, tools = [], {}
    for j, c in enumerate(get_field(rec, "calling", list)):
        name = get_field(c, "api", str, f"calling[{j}]")
        if name not in catalog:
            raise DataError(f"API {name!r} is not in tool.jsonl", field=f"calling[{j}].api")
        tools.setdefault(name, catalog[name])
        calls.append(ToolCall(name, call_arguments(c.get("parameters", {}), f"calling[{j}].parameters")))
    messages = (Message("user", get_field(rec, "query", str)), Message("assistant", "", tuple(calls)))
    meta = origin.meta(responses=[c.get("responses") for c in rec["calling"]])
    return Trajectory(rid, tuple(tools.values()), messages, meta)


def read_sealtools(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """Seal-Tools ``{"id", "query", "calling": [{"api", "parameters", "responses"}]}``: the query and
    one assistant turn with every call (Seal-Tools scores the call list as a whole; a value
    ``"API_call_k"`` refers to an earlier call's output, kept as the string). Tools: the called APIs'
    schemas from ``tool.jsonl`` beside the file (or ``tools_path``)."""
    catalog = _sealtools_catalog(find_side_file([options.tools_path or path.parent / "tool.jsonl"],
                                                "Seal-Tools tool.jsonl", path))
    yield from read_records(path, "sealtools", lambda rec, origin: _sealtools_record(rec, origin, catalog))


FORMAT = Format(
    "sealtools", read_sealtools, matches_record=with_keys("query", "calling"),
    side_files={"tool.jsonl": "the Seal-Tools tool schemas (read dev.jsonl / test_*.jsonl), not trajectories"})
