"""``toolalpaca``: ToolAlpaca's API records (``Function_Description``, ``Instructions``,
``Golden_Answers``, the OpenAPI ``Documentation``): one trajectory per instruction, scored at its
FIRST assistant turn (the first gold step). Gold inputs that are not JSON are repaired where the
intent is unambiguous, and every repair is recorded in ``meta["repaired_inputs"]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tl_lightning.data.formats.fields import call_arguments, get_field, object_schema, schema_for_type, with_keys
from tl_lightning.data.formats.reading import Format, Origin, ReadOptions, build_trajectory, file_records
from tl_lightning.records import DataError, Message, ToolCall, ToolSpec, Trajectory


# ToolAlpaca's agent can offer this tool besides the API's functions (its agent/tools.py
# GetDetailsTool; the description is shortened). The simulated set's gold calls it (6 first steps),
# so every ToolAlpaca trajectory lists it.
TOOLALPACA_GET_DETAILS = ToolSpec(
    "getDetails",
    "If the user's question lacks the essential information needed to answer it effectively, or "
    "contains vague terms or pronouns without sufficient context, ask the user for the missing "
    "critical details.",
    object_schema({"Question": {"type": "string",
                                 "description": "The question to prompt user to provide sufficient information."}},
                   ["Question"]),
)
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _toolalpaca_param(text: str) -> tuple[dict[str, Any], bool]:
    """``"Required. string. One of: [a, b]. desc"`` -> (schema, required)."""
    required = text.startswith("Required.")
    rest = text[len("Required."):].strip() if required else text.strip()
    kind = re.match(r"(Array\[(\w+)\]|\w+)", rest)
    schema = schema_for_type(kind.group(1)) if kind else {}
    one_of = re.search(r"One of: \[([^\]]*)\]", rest)
    if one_of and schema.get("type") == "string":
        schema["enum"] = [v.strip() for v in one_of.group(1).split(",")]
    schema["description"] = rest
    return schema, required


def _toolalpaca_function(name: str, text: str, where: str) -> ToolSpec:
    """``"desc\\nParameters: {json}\\nOutput: ..."`` -> ToolSpec."""
    m = re.match(r"(?P<desc>.*?)(?:^|\n)Parameters: (?P<params>\{.*?\})\nOutput:", text, re.S)
    if not m:
        raise DataError("expected 'description\\nParameters: {...}\\nOutput: ...'", field=where)
    try:
        params = json.loads(m.group("params"))
    except json.JSONDecodeError as e:
        raise DataError(f"Parameters are not valid JSON ({e.msg})", field=where) from None
    properties, required = {}, []
    for pname, ptext in params.items():
        properties[pname], is_required = _toolalpaca_param(str(ptext))
        if is_required:
            required.append(pname)
    return ToolSpec(name, m.group("desc").strip(), object_schema(properties, required))


def _openapi_operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(path, method, operation)`` of an OpenAPI document. AviationAPI's document nests its later
    paths inside ``/preferred-routes``; those count as paths too."""
    for path, item in (doc.get("paths") or {}).items():
        for key, value in (item or {}).items():
            if key.startswith("/") and isinstance(value, dict):
                yield from ((key, m, op) for m, op in value.items() if m in _HTTP_METHODS)
            elif key in _HTTP_METHODS and isinstance(value, dict):
                yield path, key, value


def _toolalpaca_undescribed_tools(rec: dict[str, Any]) -> list[ToolSpec]:
    """Operations of the API's OpenAPI ``Documentation`` that ``Function_Projection`` (the
    functions ``Function_Description`` describes) leaves out, named as ToolAlpaca names functions
    (``path_with_underscores_method``). Only AviationAPI has any: it describes 5 of its 10
    operations, yet 6 of its gold answers call the other 5."""
    try:
        doc = json.loads(rec.get("Documentation") or "{}")
    except json.JSONDecodeError:
        return []
    projected = {tuple(v) for v in (rec.get("Function_Projection") or {}).values() if isinstance(v, list)}
    tools = []
    for path, method, op in _openapi_operations(doc):
        if (path, method) in projected:
            continue
        properties, required = {}, []
        for p in op.get("parameters") or []:
            if isinstance(p, dict) and isinstance(p.get("name"), str):
                schema = dict(schema_for_type(str((p.get("schema") or {}).get("type", ""))))
                schema["description"] = p.get("description") or ""
                properties[p["name"]] = schema
                if p.get("required"):
                    required.append(p["name"])
        tools.append(ToolSpec(f"{path.strip('/').replace('/', '_')}_{method}",
                              op.get("summary") or op.get("description") or "",
                              object_schema(properties, required)))
    return tools


_PLACEHOLDER = re.compile(r"\$\{[^}\",]*\}?\"?")
_DOUBLED_KEY = re.compile(r"(\"[^\"]+\"):\s*\1:")


def _toolalpaca_input(raw: Any, where: str) -> tuple[dict[str, Any], bool]:
    """A gold ``Action_Input`` JSON string -> (arguments, repaired).

    36 of ToolAlpaca's gold inputs are not JSON. Two repairs make all of them load, and the trajectory
    records which steps were repaired (``meta["repaired_inputs"]``, with the raw strings):
    unquoted placeholders for a value the step cannot know yet (``${animeId from searchAnime}``,
    sometimes missing its ``}`` or followed by a stray quote) become that placeholder as a string;
    a doubled key (``"symbols": "symbols": [...]``) is written once.
    """
    if not isinstance(raw, str):
        raise DataError(f"expected a JSON string, got {type(raw).__name__}", field=where)
    try:
        return call_arguments(raw, where), False
    except DataError:
        fixed = _DOUBLED_KEY.sub(r"\1:", raw)
        fixed = _PLACEHOLDER.sub(lambda m: json.dumps(m.group(0).rstrip('"').rstrip("}") + "}"), fixed)
        return call_arguments(fixed, where), True


def _toolalpaca_tools(rec: dict[str, Any]) -> tuple[ToolSpec, ...]:
    described = get_field(rec, "Function_Description", dict)
    tools = [_toolalpaca_function(name, get_field(described, name, str, "Function_Description"),
                                  f"Function_Description.{name}")
             for name in described if name != "components"]
    tools += _toolalpaca_undescribed_tools(rec)
    if all(t.name != TOOLALPACA_GET_DETAILS.name for t in tools):
        tools.append(TOOLALPACA_GET_DETAILS)
    return tuple(tools)


def _toolalpaca_instruction(rec: dict[str, Any], origin: Origin, tools: tuple[ToolSpec, ...], i: int) -> Trajectory:
    instruction = get_field(rec, "Instructions", list)[i]
    if not isinstance(instruction, str):
        raise DataError(f"expected str, got {type(instruction).__name__}", field=f"Instructions[{i}]")
    answers = get_field(rec, "Golden_Answers", list)
    if i >= len(answers) or not isinstance(answers[i], list) or not answers[i]:
        raise DataError("no gold steps for this instruction", field=f"Golden_Answers[{i}]")
    steps, repaired = [], []
    for s, step in enumerate(answers[i]):
        sw = f"Golden_Answers[{i}][{s}]"
        action = get_field(step, "Action", str, sw)
        optional = action.startswith("[Optional]")  # one simulated answer marks a step optional
        arguments, was_repaired = _toolalpaca_input(step.get("Action_Input"), f"{sw}.Action_Input")
        if was_repaired:
            repaired.append({"step": s, "action_input": step["Action_Input"]})
        steps.append({"name": action.removeprefix("[Optional]"), "arguments": arguments, "optional": optional})
    first = ToolCall(steps[0]["name"], steps[0]["arguments"])
    meta = origin.meta(api=rec.get("Name"), instruction_index=i, gold_steps=steps, repaired_inputs=repaired)
    messages = (Message("user", instruction), Message("assistant", "", (first,)))
    return Trajectory(f"{rec.get('Name', origin.path.stem)}-{i}", tools, messages, meta)


def read_toolalpaca(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """ToolAlpaca API records -> one trajectory per instruction: the instruction, then one assistant
    turn with the FIRST gold step (later steps need the outputs of earlier ones, which the data
    lacks; all steps are in ``meta["gold_steps"]``). Tools: the API's ``Function_Description``,
    operations its ``Documentation`` adds (see ``_toolalpaca_undescribed_tools``) and ``getDetails``.
    An error in an API's tool descriptions skips all of that API's instructions (one error)."""
    for api_index, rec in file_records(path):
        if isinstance(rec, DataError):
            yield rec
            continue
        try:
            tools = _toolalpaca_tools(rec)
            instructions = get_field(rec, "Instructions", list)
        except DataError as e:  # without its tools none of the API's instructions can load
            yield e.located(source=str(path), index=api_index,
                            record_id=rec.get("Name") if isinstance(rec, dict) else None)
            continue
        origin = Origin(path, api_index, "toolalpaca")
        for i in range(len(instructions)):
            yield build_trajectory(path, api_index, rec, lambda: _toolalpaca_instruction(rec, origin, tools, i),
                                   record_id=f"{rec.get('Name', path.stem)}-{i}")


FORMAT = Format("toolalpaca", read_toolalpaca, matches_record=with_keys("Function_Description", "Instructions"),
                scored_turn="first")
