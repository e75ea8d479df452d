"""Multi-turn tool environments (tl_lightning/environments.py): the protocol, the synthetic world
(two-step tasks included), Python functions as tools (schemas from hints and docstrings, checks
before the call, tools that raise or hang), and replay of recorded trajectories."""

from __future__ import annotations

import copy
import json
import threading
import time
from typing import Literal, Optional

import pytest

from tl_lightning.calls import parse_calls
from tl_lightning.records import Message, ToolCall, ToolSpec, Trajectory
from tl_lightning.environments import (
    NO_RECORD,
    TIMEOUT,
    TOOL_ERROR,
    Environment,
    FunctionEnv,
    ReplayEnv,
    SyntheticWorldEnv,
    call_with_timeout,
    docstring_parts,
    json_schema,
    resolve_function,
    tool_spec,
)


def add(a: int, b: int = 0) -> int:
    """Add two integers.

    Args:
        a: the first number
        b (int): the second number,
            zero when left out
    Returns:
        the sum
    """
    return a + b


def forecast(city: str, days: list[int], unit: Literal["celsius", "fahrenheit"] = "celsius",
             note: Optional[str] = None) -> dict:
    """The weather forecast."""
    return {"city": city, "days": days, "unit": unit}


# ----------------------------------------------------------------------------- the protocol


class Counter:
    """The smallest environment: one task, one tool that counts its calls."""

    tasks = ["count"]

    def reset(self, task):
        self.count = 0
        return [Message("user", "count")], (ToolSpec("tick"),)

    def step(self, calls):
        self.count += len(calls)
        return [], self.count >= 2, {}


def test_built_ins_and_a_plain_class_follow_the_protocol():
    assert isinstance(Counter(), Environment)
    assert isinstance(SyntheticWorldEnv(n=2), Environment)
    assert isinstance(FunctionEnv([add], ["1 + 2?"]), Environment)
    assert not isinstance(object(), Environment)


# ----------------------------------------------------------------------------- the world


def test_the_world_walks_a_two_step_task_and_scores_its_outcome():
    env = SyntheticWorldEnv(split="heldout_domains", n=30, seed=1)
    task = next(t for t in env.tasks if len(t.steps) == 2)
    messages, tools = env.reset(task)
    assert [m.role for m in messages] == ["user"] and tools == task.tools
    assert env.gold() == task.steps[0]
    wrong = ToolCall(task.steps[0][0][0].name + "s", {})
    outputs, done, info = env.step([wrong])  # a near-miss name: not offered
    assert outputs[0].failed and outputs[0].error_kind == "unknown_tool" and not done
    assert env.gold() == task.steps[0] and info == {"steps_done": 0}
    outputs, _, _ = env.step(task.steps[0][0])
    found = json.loads(outputs[0].output)  # the search's real output holds the id the second step needs
    assert not outputs[0].failed and env.gold() == task.steps[1]
    assert task.steps[1][0][0].arguments[next(iter(task.steps[1][0][0].arguments))] in json.dumps(found)
    assert not env.solved("done")  # a step is left
    env.step(task.steps[1][-1])  # an alternative call set counts as well
    assert env.gold() == () and env.solved("done") and env.outcome_reward("done") == 1.0
    assert env.outcome_reward(None) == 0.0  # no final answer: not solved


def test_episodes_on_copies_do_not_share_state():
    env = SyntheticWorldEnv(n=4)
    a, b = copy.copy(env), copy.copy(env)
    a.reset(env.tasks[0])
    b.reset(env.tasks[1])
    a.step(env.tasks[0].steps[0][0])
    assert a.steps_done == 1 and b.steps_done == 0 and b.task is env.tasks[1]
    assert env.task is None  # the configured environment itself was never reset


# ----------------------------------------------------------------------------- python functions


def test_tool_specs_come_from_hints_and_google_docstrings():
    spec = tool_spec(add)
    assert spec.name == "add" and spec.description == "Add two integers."
    assert spec.parameters == {"type": "object", "required": ["a"], "properties": {
        "a": {"type": "integer", "description": "the first number"},
        "b": {"type": "integer", "description": "the second number, zero when left out", "default": 0}}}
    props = tool_spec(forecast).properties
    assert props["days"] == {"type": "array", "items": {"type": "integer"}}
    assert props["unit"] == {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}
    assert props["note"] == {"type": "string"} and tool_spec(forecast).required == ["city", "days"]
    assert json_schema(dict[str, int]) == {"type": "object"} and json_schema(int | str) == {}


def test_functions_that_cannot_be_called_by_keyword_are_refused():
    def spread(*values: int) -> int:
        return sum(values)

    with pytest.raises(ValueError, match="by keyword"):
        tool_spec(spread)


def test_docstring_without_sections():
    assert docstring_parts("Just text.\n\nMore text.") == ("Just text.\n\nMore text.", {})


def test_functions_resolve_from_import_paths():
    assert resolve_function("json:dumps") is json.dumps
    assert resolve_function("json.loads") is json.loads
    with pytest.raises(ValueError, match="import path"):
        resolve_function("dumps")


def test_arguments_are_checked_before_the_function_runs():
    ran = []

    def record(city: str, days: int = 1) -> str:
        """Record a city."""
        ran.append(city)
        return f"recorded {city}"

    env = FunctionEnv([record], ["Record Paris"])
    env.reset(env.tasks[0])
    bad = [ToolCall("record", {"city": "Paris", "country": "FR"}), ToolCall("record", {}),
           ToolCall("record", {"city": 5}), ToolCall("recorder", {"city": "Paris"})]
    outputs, _, _ = env.step(bad)
    assert [o.error_kind for o in outputs] == ["unexpected_argument", "missing_argument", "bad_value",
                                                "unknown_tool"]
    assert all(o.failed for o in outputs) and ran == []
    assert "unexpected keyword argument 'country'" in outputs[0].output
    outputs, _, _ = env.step([ToolCall("record", {"city": "Paris"})])
    assert outputs[0].output == "recorded Paris" and not outputs[0].failed and ran == ["Paris"]


def test_a_tool_that_raises_returns_an_error_output():
    def divide(a: float, b: float) -> float:
        """Divide."""
        return a / b

    env = FunctionEnv([divide], ["1 / 0?"])
    env.reset(env.tasks[0])
    outputs, done, _ = env.step([ToolCall("divide", {"a": 1, "b": 0}), ToolCall("divide", {"a": 1, "b": 4})])
    assert outputs[0].output == "ZeroDivisionError: division by zero" and outputs[0].error_kind == TOOL_ERROR
    assert outputs[1].output == "0.25" and not outputs[1].failed and not done


def test_a_tool_that_hangs_is_stopped_at_its_deadline():
    release = threading.Event()

    def hang(seconds: int) -> str:
        """Never answers (until released)."""
        release.wait(60)
        return "late"

    try:
        env = FunctionEnv([hang], ["wait"], timeout=0.2)
        env.reset(env.tasks[0])
        started = time.perf_counter()
        outputs, _, _ = env.step([ToolCall("hang", {"seconds": 100})])
        assert time.perf_counter() - started < 5
        assert outputs[0].error_kind == TIMEOUT and outputs[0].failed
        assert outputs[0].output == "TimeoutError: hang() did not return within 0.2 s"
    finally:
        release.set()


def test_return_values_become_text_and_unwritable_ones_errors():
    assert call_with_timeout(lambda: [1, 2], {}, 1.0).output == "[1, 2]"
    assert call_with_timeout(lambda: {"at": object}, {}, 1.0).output == '{"at": "<class \'object\'>"}'
    loop: list = []
    loop.append(loop)
    result = call_with_timeout(lambda: loop, {}, 1.0)
    assert result.failed and result.error_kind == TOOL_ERROR and result.output.startswith("ValueError: Circular")


def test_function_tasks_take_gold_steps_and_an_expected_answer():
    env = FunctionEnv(["tests.test_environments:add"], [
        "What is 1 + 2?",
        {"id": "sum", "query": "Add 1 and 2, then 3 and 4.", "steps": ["add(a=1, b=2)\nadd(a=3, b=4)"],
         "answer": "3 and 7"}], system="Be brief.")
    first, second = env.tasks
    assert first.steps == () and first.id == "task-0"
    assert [m.role for m in second.messages] == ["system", "user"] and second.id == "sum"
    assert second.steps == ((tuple(parse_calls("add(a=1, b=2)\nadd(a=3, b=4)")),),)
    env.reset(first)
    assert env.gold() is None and env.solved("3")  # no gold: any answer solves it
    env.reset(second)
    env.step(parse_calls("add(a=3, b=4)\nadd(a=1, b=2)"))  # parallel calls in the other order
    assert env.gold() == () and not env.solved("it is 3") and env.solved("It is 3 and 7.")
    assert FunctionEnv([add], [{"query": "3 + 4?", "answer": 7}]).tasks[0].answer == "7"  # YAML reads 7 as a number


# ----------------------------------------------------------------------------- replay

SEARCH = ToolSpec("search", "Search.", {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})


def recorded() -> Trajectory:
    search = lambda q: ToolCall("search", {"q": q})  # noqa: E731
    return Trajectory("rec", (SEARCH,), (
        Message("user", "Find x, then y."),
        Message("assistant", calls=(search("X"),)), Message("tool", "Error: bad query", name="search"),
        Message("assistant", calls=(search("x"),)), Message("tool", '["x1"]', name="search"),
        Message("assistant", "Found x1. Anything else?"),
        Message("user", "Yes, y."),
        Message("assistant", calls=(search("y"),)), Message("tool", '["y1"]', name="search"),
        Message("assistant", "Found y1.")))


def test_replay_makes_a_task_per_user_message_answered_with_calls():
    env = ReplayEnv(trajectories=[recorded()])
    first, second = env.tasks
    assert first.id == "rec/user1" and [m.role for m in first.messages] == ["user"]
    assert first.steps == (((ToolCall("search", {"q": "x"}),),),)  # the failed call is no gold step
    assert second.id == "rec/user2" and len(second.messages) == 7 and second.messages[-1].content == "Yes, y."
    env.reset(first)
    outputs, _, _ = env.step([ToolCall("search", {"q": "X"}), ToolCall("search", {"q": "z"}),
                              ToolCall("find", {"q": "x"})])
    assert (outputs[0].output, outputs[0].failed, outputs[0].error_kind) == ("Error: bad query", True, TOOL_ERROR)
    assert outputs[1].error_kind == NO_RECORD and outputs[1].output.startswith("Error: no recorded output for")
    assert outputs[2].error_kind == "unknown_tool"
    outputs, _, _ = env.step([ToolCall("search", {"q": "x"})])
    assert outputs[0].output == '["x1"]' and env.solved("x1")


def test_replay_reads_recorded_benchmark_data(shared_data):
    env = ReplayEnv(str(shared_data / "tau-bench" / "historical_trajectories" / "gpt-4o-airline.json"), limit=20)
    assert len(env.tasks) == 20
    for task in env.tasks:  # replaying the recorded gold steps solves every task
        env.reset(task)
        for step in task.steps:
            outputs, _, _ = env.step(step[0])
            assert not any(o.failed for o in outputs)
        assert env.solved("done"), task.id
