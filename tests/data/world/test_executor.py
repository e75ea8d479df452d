"""The schema-driven executor: deterministic outputs, Python-like failures that MAE reads as errors."""

from __future__ import annotations

import json

import pytest

from tl_lightning.data.mae import DEFAULT_DETECTOR
from tl_lightning.data.world import World
from tl_lightning.data.world.executor import check_call, value_problem
from tl_lightning.records import ToolCall


@pytest.fixture(scope="module")
def world():
    return World(0)


def _tool(world, style, action):
    domain = next(d for d in world.domains if d.style == style and d.tool(action) is not None)
    return domain.tool(action)


def test_a_valid_call_gives_the_same_json_every_time(world):
    tool = _tool(world, "snake", "get")
    call = ToolCall(tool.name, {tool.params["id"]: f"{tool.resource.id_prefix}-1234"})
    first = world.execute(call, [tool.spec])
    assert not first.failed and first.error_kind is None
    assert first == world.execute(call, [tool.name]) == World(0).execute(call, [tool.name])
    out = json.loads(first.output)
    assert out[tool.params["id"]] == f"{tool.resource.id_prefix}-1234" and out["status"] in tool.resource.statuses
    # get and get_status agree on the facts of one id
    status_tool = world.domain(tool.domain).tool("get_status")
    status = json.loads(world.execute(ToolCall(status_tool.name, dict(call.arguments)), [status_tool.name]).output)
    assert status["status"] == out["status"]


def test_failures_read_like_python_and_as_errors_to_mae(world):
    tool = _tool(world, "camel", "get")
    id_key, rid = tool.params["id"], f"{tool.resource.id_prefix}-1234"
    cases = {
        "unknown_tool": (ToolCall(tool.name + "s", {id_key: rid}), f"NameError: name '{tool.name}s' is not defined"),
        "unexpected_argument": (ToolCall(tool.name, {id_key: rid, "verbose": True}),
                                f"TypeError: {tool.name}() got an unexpected keyword argument 'verbose'"),
        "missing_argument": (ToolCall(tool.name, {}),
                             f"TypeError: {tool.name}() missing 1 required positional argument: '{id_key}'"),
        "bad_value": (ToolCall(tool.name, {id_key: "1234"}), f'Error: no {tool.resource.singular} with id "1234"'),
    }
    for kind, (call, text) in cases.items():
        result = world.execute(call, [tool.name])
        assert (result.output, result.failed, result.error_kind) == (text, True, kind)
        assert DEFAULT_DETECTOR.match(result.output) is not None
    transient = world.transient_failure(cases["unknown_tool"][0])
    assert transient.failed and DEFAULT_DETECTOR.match(transient.output) == "ConnectionError"


def test_a_tool_that_is_not_offered_is_not_defined(world):
    tool = _tool(world, "snake", "get_status")
    call = ToolCall(tool.name, {tool.params["id"]: f"{tool.resource.id_prefix}-1234"})
    assert world.execute(call, []).error_kind == "unknown_tool"
    assert not world.execute(call, [tool.name]).failed


def test_values_are_checked_against_the_schema(world):
    schema = {"type": "integer", "default": 5}
    assert value_problem("limit", 3, schema) is None
    assert value_problem("limit", "3", schema) == 'limit must be an integer, got "3"'
    assert value_problem("limit", True, schema) == "limit must be an integer, got true"
    assert value_problem("due", "2024-02-30", {"type": "string", "format": "date"}).startswith("invalid date")
    assert value_problem("due", "30/01/2024", {"type": "string", "format": "date"}).startswith("invalid date")
    assert "is not supported" in value_problem("sort", "Newest", {"type": "string", "enum": ["newest"]})
    assert value_problem("tags", ["a", 1], {"type": "array", "items": {"type": "string"}}).startswith("tags[1]")
    nested = _tool(world, "snake", "update").spec.properties["changes"]
    status = nested["properties"]["status"]["enum"][0]
    assert value_problem("changes", {"status": status, "note": "x"}, nested) is None
    assert "no field" in value_problem("changes", {"status": status, "state": status}, nested)
    assert "needs the field" in value_problem("changes", {"note": "x"}, nested)
    assert "is not supported" in value_problem("changes", {"status": "nope"}, nested)


def test_two_missing_arguments_are_listed_like_python(world):
    tool = _tool(world, "snake", "create")
    result = check_call(tool.spec, {})
    assert result.output.startswith(f"TypeError: {tool.name}() missing 3 required positional arguments: ")
    assert result.output.endswith(" and '" + tool.spec.required[-1] + "'")


def test_argument_values_are_never_evaluated(world):
    tool = _tool(world, "snake", "search")
    result = world.execute(ToolCall(tool.name, {"query": "__import__('os').system('echo hi')"}), [tool.name])
    assert not result.failed and isinstance(json.loads(result.output), list)
