"""The built-in tool world: deterministic, realistic errors that MAE catches, usable prompts."""

from __future__ import annotations

from collections import Counter

import pytest

from tl_lightning.data.mae import DEFAULT_DETECTOR, apply_mae, select_turns
from tl_lightning.data.synthetic import (
    ERROR_KINDS,
    FUNCTIONS,
    SPECS,
    generate_prompts,
    generate_trajectories,
    make_world,
)
from tl_lightning.records import ToolCall


@pytest.fixture(scope="module")
def trajectories():
    return generate_trajectories(300, seed=0, error_rate=0.4)


def test_same_seed_same_data_other_seed_other_data():
    assert generate_trajectories(40, seed=7) == generate_trajectories(40, seed=7)
    assert generate_trajectories(40, seed=7) != generate_trajectories(40, seed=8)
    assert generate_prompts(20, seed=7) == generate_prompts(20, seed=7)


def test_every_tool_has_a_spec_and_names_overlap():
    assert set(SPECS) == set(FUNCTIONS)
    names = set(SPECS)
    for a, b in [("getPaperDetails", "getPapersByKeywords"), ("get_weather", "get_weather_forecast"),
                 ("get_stock_price", "get_stock_history")]:
        assert a in names and b in names
    types = Counter(p["type"] for _, spec in SPECS.values() for p in spec.properties.values())
    assert {"string", "integer", "number", "boolean", "array"} <= set(types)
    assert any("enum" in p for _, spec in SPECS.values() for p in spec.properties.values())


def test_tools_execute_and_fail_like_python():
    world = make_world(0)
    tools = tuple(FUNCTIONS)
    out, failed = world.execute(ToolCall("get_weather", {"city": "Paris", "unit": "fahrenheit"}), tools)
    assert not failed and '"unit": "fahrenheit"' in out
    out, failed = world.execute(ToolCall("get_weather", {"unit": "celsius"}), tools)
    assert failed and out == "TypeError: get_weather() missing 1 required positional argument: 'city'"
    out, failed = world.execute(ToolCall("get_weather", {"location": "Paris"}), tools)
    assert failed and out == "TypeError: get_weather() got an unexpected keyword argument 'location'"
    out, failed = world.execute(ToolCall("get_weathers", {"city": "Paris"}), tools)
    assert failed and out == "NameError: name 'get_weathers' is not defined"
    out, failed = world.execute(ToolCall("list_events", {"date": "03/05/2024"}), tools)
    assert failed and out.startswith("Error: invalid date '03/05/2024'")
    # a listed tool that is not offered in this trajectory is undefined too
    _, failed = world.execute(ToolCall("get_weather", {"city": "Paris"}), ("get_stock_price",))
    assert failed


def test_trajectories_are_valid_and_shaped(trajectories):
    for t in trajectories:
        roles = [m.role for m in t.messages]
        assert roles[0] == "user" and roles[-1] == "assistant"
        assert not t.messages[-1].calls and t.messages[-1].content  # the final answer is text
        for i, m in enumerate(t.messages):
            if m.calls:  # every call turn is answered by one output per call
                assert [x.role for x in t.messages[i + 1:i + 1 + len(m.calls)]] == ["tool"] * len(m.calls)
    assert any(sum(bool(m.calls) for m in t.messages) >= 2 for t in trajectories)  # multi-call
    assert any(len(m.calls) == 2 for t in trajectories for m in t.messages)  # parallel calls


def test_every_error_kind_occurs_and_mae_drops_exactly_the_wrong_calls(trajectories):
    kinds = Counter(k for t in trajectories for k in t.meta["injected_errors"])
    assert set(kinds) == set(ERROR_KINDS), kinds
    for t in trajectories:
        selection = select_turns(t)
        # each injected error is one dropped turn, and nothing else is dropped
        assert len(selection.dropped) == len(t.meta["injected_errors"]), (t.id, selection)
        for i in selection.dropped:
            assert t.messages[i + 1].role == "tool"
        for i in selection.kept:  # successful outputs never read as errors
            for m in t.messages[i + 1:]:
                if m.role != "tool":
                    break
                assert DEFAULT_DETECTOR.match(m.content) is None, m.content
    _, report = apply_mae(trajectories)
    reasons = set(report.dropped_by_pattern)
    assert {"is not defined", "positional argument", "unexpected keyword"} <= reasons
    assert reasons & {"'error'", '"error":'}  # "Error: invalid ..." matches the normalised error phrase


def test_error_rate_zero_gives_clean_data():
    trajs = generate_trajectories(50, seed=1, error_rate=0.0)
    assert all(not t.meta["injected_errors"] for t in trajs)
    assert all(not select_turns(t).dropped for t in trajs)
    with pytest.raises(ValueError, match="error_rate"):
        generate_trajectories(1, error_rate=1.5)


def test_prompts_end_with_an_executable_gold_call():
    prompts = generate_prompts(60, seed=2)
    world = make_world(2)
    for p in prompts:
        assert [m.role for m in p.messages] == ["user", "assistant"]
        gold = p.messages[-1]
        assert gold.calls
        for call_set in gold.acceptable():
            for call in call_set:
                _, failed = world.execute(call, tuple(p.tool_names))
                assert not failed, call
    assert any(p.messages[-1].alternatives for p in prompts)
