"""BFCL's answer model: what a ``possible_answer`` record accepts, and the calls that meet it.

A BFCL item's ground truth lists, per expected call, the acceptable values of each parameter.
The BFCL reader (``data.formats.bfcl``) turns it into the gold calls of the trajectory, and the
scorer (``metrics.score_bfcl``) checks a prediction against it; both map answer names to declared
functions and build reference calls through the functions here, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tl_lightning.records import ToolCall, ToolSpec

# BFCL ground truth: one dict per expected call, ``{function_name: {param: [acceptable values]}}``;
# ``""`` among the acceptable values means the parameter may be left out. An empty list: no call
# is expected (the irrelevance categories). ``{"unscorable": why}`` instead of a list: the item's
# answer record is malformed, so every prediction fails it (``bfcl_unscorable_reason``).
BfclAnswer = list[dict[str, dict[str, list[Any]]]]


def bfcl_unscorable_reason(ground_truth: Any) -> str | None:
    """Why an item cannot be scored (its answer record is malformed), or None for a ground truth."""
    return ground_truth.get("unscorable") if isinstance(ground_truth, dict) else None


def bfcl_declared_name(name: str, tools: Sequence[ToolSpec]) -> str:
    """The declared function an answer's function name stands for: the name itself when declared;
    else, with a single declared function, that one (BFCL's simple checker takes the name from the
    declaration, whatever the answer says); else the one declared ``<module>.name`` (simple_363's
    answer names ``find_closest`` for ``restaurant_search.find_closest``); else ``name`` unchanged.
    The reader and the scorer both map answer names through this."""
    if any(t.name == name for t in tools):
        return name
    if len(tools) == 1:
        return tools[0].name
    dotted = [t.name for t in tools if t.name.endswith(f".{name}")]
    return dotted[0] if len(dotted) == 1 else name


def bfcl_expected_calls(ground_truth: BfclAnswer,
                        tools: Sequence[ToolSpec]) -> list[tuple[str, dict[str, list[Any]]]]:
    """``(declared function name, {param: [acceptable]})`` per expected call (``bfcl_declared_name``)."""
    expected = []
    for entry in ground_truth:
        (name, answers), = entry.items()
        expected.append((bfcl_declared_name(name, tools), answers))
    return expected


def _is_object_schema(schema: dict[str, Any]) -> bool:
    return schema.get("type") in ("dict", "object")  # BFCL's name, and JSON schema's (the BFCL reader's)


def _unwrap_answer_dict(answer: dict[str, list[Any]]) -> dict[str, Any]:
    """An acceptable dict value holds acceptable-value lists per key: the first non-omission value
    of each (keys that may only be omitted are left out)."""
    return {k: next(v for v in values if v != "") for k, values in answer.items()
            if isinstance(values, list) and any(v != "" for v in values)}


def _first_accepted(acceptable: list[Any], schema: dict[str, Any]) -> Any:
    """The first acceptable value that is not the omission marker ``""``, as a call would write
    it: acceptable dicts (and lists of dicts) hold acceptable-value lists one level down too."""
    value = next(v for v in acceptable if v != "")
    if _is_object_schema(schema) and isinstance(value, dict):
        return _unwrap_answer_dict(value)
    if _is_object_schema(schema.get("items") or {}) and isinstance(value, list):
        return [_unwrap_answer_dict(v) if isinstance(v, dict) else v for v in value]
    return value


def bfcl_reference_call(name: str, answers: dict[str, list[Any]], tool: ToolSpec | None) -> ToolCall:
    """The call a perfect model would write for one expected call ``{param: [acceptable]}``: each
    parameter's first acceptable value that is not ``""`` (dict values unwrapped: acceptable
    dicts hold acceptable-value lists too). A parameter is left out when it may be (``""``
    acceptable; e.g. parallel_multiple_26's ``type``, which the schema lacks) unless ``tool``'s
    schema requires it (simple_200's ``fuel_efficiency: ["", 25.0]`` gives 25.0)."""
    schema, required = (tool.properties, tool.required) if tool else ({}, [])
    arguments = {p: _first_accepted(acceptable, schema.get(p) or {})
                 for p, acceptable in answers.items()
                 if any(v != "" for v in acceptable) and ("" not in acceptable or p in required)}
    return ToolCall(name, arguments)


def bfcl_reference_calls(ground_truth: BfclAnswer, tools: Sequence[ToolSpec]) -> list[ToolCall]:
    """The reference call of each expected call of ``ground_truth`` (``bfcl_reference_call``).
    BFCL's checker accepts them unless the answer key contradicts the schema (gold scoring then
    shows the benchmark's own ceiling). The BFCL reader's gold ``calls`` are these."""
    tools_by_name = {t.name: t for t in tools}
    return [bfcl_reference_call(name, answers, tools_by_name.get(name))
            for name, answers in bfcl_expected_calls(ground_truth, tools)]


def bfcl_answer_from_calls(calls: Sequence[ToolCall]) -> BfclAnswer:
    """A BFCL ground truth accepting exactly ``calls`` (each value its only acceptable value):
    for items without acceptable-value lists (e.g. BFCL's exec_* call strings)."""
    return [{c.name: {k: [v] for k, v in c.arguments.items()}} for c in calls]
