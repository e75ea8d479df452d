"""Multi-turn tool environments: what the RL rollouts of ``episodes.py`` drive.

An episode: the environment gives the conversation's start and the tools (``reset``), the policy
writes an assistant turn, its calls (parsed by ``calls.parse_calls``, never evaluated) are
executed (``step``), the outputs are shown to the policy, and so on until the policy answers
without a call, the environment says the episode is done, or a budget runs out.

The protocol (``Environment``; any object with these members works)::

    env.tasks                      # a sequence of tasks; the DataModule hands out their indices
    env.reset(task) -> (messages, tools)            # the conversation before the first turn
    env.step(calls) -> (outputs, done, info)        # one world.Result per call, in order
    env.gold() -> call sets | None                  # optional: what the next call turn should do
    env.outcome_reward(answer) -> float             # optional: the episode's outcome (0 if absent)

- ``messages`` are ``records.Message`` (system / user), ``tools`` ``records.ToolSpec``; an output
  is a ``world.Result``: the text the policy reads, ``failed``, and ``error_kind`` (the world's
  ``ERROR_KINDS`` and this module's ``TOOL_ERROR``, ``TIMEOUT``, ``NO_RECORD``).
- ``gold()`` is asked before each turn: the acceptable call sets of that turn (the IRM reward
  classifies the turn against them), ``()`` when no call is expected any more (a call is then
  redundant), or None when the environment does not know (the turn is scored by execution).
- ``outcome_reward(answer)``: ``answer`` is the policy's final text, None when the episode ended
  otherwise (a budget, ``done``).
- Episodes run side by side on copies: the rollout takes ``copy.copy(env)`` per episode and
  resets it, so an environment keeps per-episode state in attributes that ``reset`` assigns anew
  (never by mutating an object the copies share). The built-ins do.
- An environment that raises (in ``reset``, ``step``, ...) fails that episode only
  (``episodes.py`` records the reason); a tool that raises or hangs is the environment's to turn
  into an error output (``FunctionEnv`` does).

Built in, all ``ToolEnvironment`` over ``EnvTask``s (a task's start, tools and gold steps):

- ``SyntheticWorldEnv``: the procedural world's tasks (single, parallel and two-step) and its
  executor (``world.World.execute``: deterministic outputs, realistic error outputs);
- ``FunctionEnv``: plain Python functions with type hints and Google-style docstrings become
  tools (``tool_spec``); arguments are checked against the schema before the function runs, and
  each call runs in a thread with a deadline (``call_with_timeout``);
- ``ReplayEnv``: recorded trajectories (tau-bench, API-Bank, any format ``read_trajectories``
  reads): a task per user message the recording answers with calls, outputs looked up by
  (tool, arguments) from the recording.

A task is solved (outcome 1, else 0) when the policy made every gold step's calls exactly, in
order, each executed without failure, then answered (and, for tasks with an expected ``answer``,
wrote it). Subclass ``ToolEnvironment`` and override ``solved`` for another rule.
"""

from __future__ import annotations

import importlib
import inspect
import json
import threading
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tl_lightning.calls import ParseFailure, format_call, normalize_value, parse_calls
from tl_lightning.data.mae import DEFAULT_DETECTOR, ErrorDetector, following_outputs, select_turns
from tl_lightning.data.sources import read_trajectories
from tl_lightning.data.world import Result, World, generate_tasks
from tl_lightning.data.world.executor import check_call
from tl_lightning.records import Message, ToolCall, ToolSpec, Trajectory
from tl_lightning.reward import classify_call

TOOL_ERROR, TIMEOUT, NO_RECORD = "tool_error", "timeout", "no_record"
"""Error kinds beside the world's ``ERROR_KINDS``: the tool raised, did not return in time, or (a
replay) the recording has no output for the call."""

CallSets = tuple[tuple[ToolCall, ...], ...]


@runtime_checkable
class Environment(Protocol):
    """The multi-turn environment protocol (module docstring); ``gold`` and ``outcome_reward``
    are optional."""

    tasks: Sequence[Any]

    def reset(self, task: Any) -> tuple[list[Message], tuple[ToolSpec, ...]]: ...

    def step(self, calls: Sequence[ToolCall]) -> tuple[list[Result], bool, dict[str, Any]]: ...


@dataclass(frozen=True)
class EnvTask:
    """One task: its ``id``, the conversation before the first assistant turn (``messages``), the
    ``tools`` offered, ``steps`` (per call turn, the acceptable call sets; empty: no gold, the
    turns are scored by execution) and an ``answer`` the final text must contain (None: any)."""

    id: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...]
    steps: tuple[CallSets, ...] = ()
    answer: str | None = None


class ToolEnvironment:
    """An ``Environment`` over ``EnvTask``s: ``execute(call)`` is the subclass's; the progress
    through the gold steps, ``gold``, ``solved`` and ``outcome_reward`` are here."""

    def __init__(self, tasks: Sequence[EnvTask]) -> None:
        self.tasks = list(tasks)
        self.task: EnvTask | None = None
        self.steps_done = 0

    def reset(self, task: EnvTask) -> tuple[list[Message], tuple[ToolSpec, ...]]:
        self.task, self.steps_done = task, 0
        return list(task.messages), task.tools

    def execute(self, call: ToolCall) -> Result:
        """The output of one call to the current task's tools."""
        raise NotImplementedError

    def step(self, calls: Sequence[ToolCall]) -> tuple[list[Result], bool, dict[str, Any]]:
        """Execute the turn's calls in order; the turn completes the next gold step when its calls
        are one of the step's acceptable sets exactly and none of them failed."""
        outputs = [self.execute(call) for call in calls]
        expected = self.gold()
        if expected and not any(o.failed for o in outputs) and \
                classify_call(list(calls), expected, self.task.tools) == "exact":
            self.steps_done += 1
        return outputs, False, {"steps_done": self.steps_done}

    def gold(self) -> CallSets | None:
        """The acceptable call sets of the next step; ``()`` once all are done; None for a task
        without gold steps."""
        if not self.task.steps:
            return None
        return self.task.steps[self.steps_done] if self.steps_done < len(self.task.steps) else ()

    def solved(self, answer: str | None) -> bool:
        """Every gold step done, then a final answer (holding the task's ``answer``, if it has one)."""
        if answer is None or self.steps_done < len(self.task.steps):
            return False
        return self.task.answer is None or self.task.answer.lower() in answer.lower()

    def outcome_reward(self, answer: str | None) -> float:
        return float(self.solved(answer))


# ---------------------------------------------------------------------------------- the world


def world_task(task) -> EnvTask:
    """A ``world.Task`` as an ``EnvTask``: the user's query, the tools, each step's calls and
    alternatives. The world's answer sentence is not required (any final text counts)."""
    steps = tuple((calls,) + alternatives for calls, alternatives in zip(task.steps, task.alternatives, strict=True))
    return EnvTask(task.id, (Message("user", task.query),), task.tools, steps)


class SyntheticWorldEnv(ToolEnvironment):
    """The procedural tool world (``data.world``): ``n`` tasks of ``split`` (``train``,
    ``heldout_templates``, ``heldout_domains``), executed by ``World(world_seed)``."""

    def __init__(self, split: str = "train", n: int = 64, seed: int = 0, world_seed: int = 0) -> None:
        super().__init__([world_task(t) for t in generate_tasks(n, seed=seed, split=split, world_seed=world_seed)])
        self.world = World(world_seed)

    def execute(self, call: ToolCall) -> Result:
        return self.world.execute(call, self.task.tools)


# ------------------------------------------------------------------------- python functions

_JSON_SCHEMAS = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object",
                 type(None): "null"}


def json_schema(hint: Any) -> dict[str, Any]:
    """The JSON schema of a type hint: ``str``, ``int``, ``float``, ``bool``, ``dict``, ``list[X]``
    / ``tuple[X, ...]`` / ``Sequence[X]``, ``Literal[...]`` (an ``enum``), ``Optional[X]`` (as X);
    anything else (``Any``, other unions, no hint) has no type, so any JSON value passes."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _JSON_SCHEMAS:
        return {"type": _JSON_SCHEMAS[hint]}
    if origin is typing.Literal:
        return {**json_schema(type(args[0])), "enum": list(args)}
    if origin in (list, tuple, set, frozenset, Sequence) or hint in (list, tuple):
        items = [a for a in args if a is not Ellipsis]
        return {"type": "array", **({"items": json_schema(items[0])} if len(set(items)) == 1 else {})}
    if origin is dict:
        return {"type": "object"}
    if args and type(None) in args:  # Optional[X] / X | None
        rest = [a for a in args if a is not type(None)]
        return json_schema(rest[0]) if len(rest) == 1 else {}
    return {}


def docstring_parts(doc: str) -> tuple[str, dict[str, str]]:
    """A Google-style docstring's description (the text before its sections) and its ``Args:``
    entries (``name (type): text`` or ``name: text``, continued on more indented lines)."""
    lines = doc.splitlines()
    sections = [i for i, line in enumerate(lines) if line.strip().endswith(":") and line.strip()[:-1].isalpha()
                and line.strip()[0].isupper()]
    description = "\n".join(lines[:sections[0]] if sections else lines).strip()
    args: dict[str, str] = {}
    start = next((i for i in sections if lines[i].strip() == "Args:"), None)
    if start is None:
        return description, args
    indent, name = None, None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break
        if depth == indent and ":" in line:
            head, text = line.strip().split(":", 1)
            name = head.split("(")[0].strip()
            args[name] = text.strip()
        elif name is not None:
            args[name] = (args[name] + " " + line.strip()).strip()
    return description, args


def tool_spec(function: Callable[..., Any]) -> ToolSpec:
    """The ``ToolSpec`` of a Python function: its name, its docstring's description, one parameter
    per argument (schema from the type hint, description from ``Args:``), required when it has no
    default (a JSON default is recorded). ``*args`` / ``**kwargs`` / positional-only arguments
    cannot be called by keyword from a tool call: ``ValueError``."""
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function)
    description, arg_docs = docstring_parts(inspect.getdoc(function) or "")
    properties: dict[str, Any] = {}
    required = []
    for name, parameter in signature.parameters.items():
        if parameter.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            raise ValueError(f"{function.__name__}: argument {name!r} ({parameter.kind.description}) cannot be "
                             "passed by keyword, so a tool call cannot give it")
        schema = json_schema(hints.get(name, Any))
        if arg_docs.get(name):
            schema["description"] = arg_docs[name]
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
        elif parameter.default is not None and isinstance(parameter.default, (str, int, float, bool)):
            schema["default"] = parameter.default
        properties[name] = schema
    return ToolSpec(function.__name__, description,
                    {"type": "object", "properties": properties, "required": required})


def output_text(value: Any) -> str:
    """What the policy reads for a function's return value: a string as is, else its JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def call_with_timeout(function: Callable[..., Any], arguments: dict[str, Any], timeout: float) -> Result:
    """Run ``function(**arguments)`` in a daemon thread and wait at most ``timeout`` seconds. A
    return value is the output; an exception becomes the output ``"<Type>: <message>"``
    (``TOOL_ERROR``), a deadline passed ``"TimeoutError: ..."`` (``TIMEOUT``).

    A thread, not a process: tools may share state with the caller (a client, a cache) and need
    not be picklable, and a call costs no process start. The limit: a Python thread cannot be
    killed, so a hung tool keeps its thread (a daemon: it does not hold the interpreter at exit)
    until it returns; the episode goes on without it. For hard isolation, run the tool in a
    subprocess inside the function."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = function(**arguments)
        except BaseException as error:  # noqa: BLE001 - everything a tool raises becomes its output
            box["error"] = error

    name = getattr(function, "__name__", "tool")
    worker = threading.Thread(target=target, name=f"tool-{name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return Result(f"TimeoutError: {name}() did not return within {timeout:g} s", True, TIMEOUT)
    if "error" in box:
        error = box["error"]
        return Result(f"{type(error).__name__}: {error}", True, TOOL_ERROR)
    try:
        return Result(output_text(box["value"]), False)
    except (TypeError, ValueError) as error:  # a return value JSON cannot write
        return Result(f"{type(error).__name__}: {error}", True, TOOL_ERROR)


def resolve_function(function: Callable[..., Any] | str) -> Callable[..., Any]:
    """A function, or its import path (``package.module:name`` or ``package.module.name``)."""
    if callable(function):
        return function
    module, _, name = function.rpartition(":") if ":" in function else function.rpartition(".")
    if not module:
        raise ValueError(f"{function!r} is not an import path like 'package.module:function'")
    return getattr(importlib.import_module(module), name)


def _call_sets(text: str, where: str) -> CallSets:
    calls = parse_calls(text)
    if isinstance(calls, ParseFailure):
        raise ValueError(f"{where}: {text!r} is not a call ({calls.reason})")
    return (tuple(calls),)


def function_task(task: str | dict[str, Any] | EnvTask, index: int, tools: tuple[ToolSpec, ...],
                  system: str | None) -> EnvTask:
    """A ``FunctionEnv`` task: a query, or ``{"query", "steps": [call text per step], "answer",
    "id"}`` (a step's text may hold several calls: parallel), or an ``EnvTask`` as is."""
    if isinstance(task, EnvTask):
        return task
    if isinstance(task, str):
        task = {"query": task}
    start = ((Message("system", system),) if system else ()) + (Message("user", task["query"]),)
    steps = tuple(_call_sets(s, f"task {index} step {k}") for k, s in enumerate(task.get("steps", ())))
    answer = task.get("answer")  # a config may give a number
    return EnvTask(str(task.get("id", f"task-{index}")), start, tools, steps, None if answer is None else str(answer))


class FunctionEnv(ToolEnvironment):
    """Python functions as tools, and tasks for them.

    Args:
        functions: the tools: functions (or import paths, ``package.module:function``) with type
            hints and Google-style docstrings (``tool_spec``).
        tasks: queries, or ``{"query", "steps", "answer", "id"}`` dicts (``function_task``).
        timeout: seconds a call may run (``call_with_timeout``).
        system: a system message before each query.

    A call is checked before its function runs: an unknown tool (``NameError``), an argument the
    schema does not have, a required one missing, a value of the wrong type or outside its enum
    (``world.executor.check_call``: the same error texts as the world's tools).
    """

    def __init__(self, functions: Sequence[Callable[..., Any] | str], tasks: Sequence[str | dict[str, Any] | EnvTask],
                 timeout: float = 5.0, system: str | None = None) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.functions = {f.__name__: f for f in map(resolve_function, functions)}
        self.specs = {name: tool_spec(f) for name, f in self.functions.items()}
        tools = tuple(self.specs.values())
        super().__init__([function_task(t, i, tools, system) for i, t in enumerate(tasks)])
        self.timeout = timeout

    def execute(self, call: ToolCall) -> Result:
        spec = self.specs.get(call.name)
        if spec is None or call.name not in {t.name for t in self.task.tools}:
            return Result(f"NameError: name '{call.name}' is not defined", True, "unknown_tool")
        problem = check_call(spec, call.arguments)
        if problem is not None:
            return problem
        return call_with_timeout(self.functions[call.name], call.arguments, self.timeout)


# ------------------------------------------------------------------------------------ replay


def call_key(call: ToolCall) -> str:
    """The lookup key of a call: its name and its arguments as canonical JSON."""
    return json.dumps([call.name, normalize_value(call.arguments)], sort_keys=True, ensure_ascii=False)


def recorded_tasks(traj: Trajectory, detector: ErrorDetector) -> tuple[list[EnvTask], dict[str, str]]:
    """A recorded trajectory's tasks and its output table (call key -> output).

    A task per user message that the recording answers with calls: the conversation up to and
    including that message is the start (earlier turns as context), the call turns MAE keeps
    (their outputs are no errors) before the next user message are the gold steps. (A replay
    cannot answer what the policy says to a user, so each exchange is its own task.) Every
    recorded call (failed ones too, with their error outputs) is in the table; a turn's outputs
    pair with its calls in order."""
    kept = set(select_turns(traj, detector).kept)
    users = [i for i, m in enumerate(traj.messages) if m.role == "user"]
    tasks = []
    for k, user in enumerate(users):
        stop = users[k + 1] if k + 1 < len(users) else len(traj.messages)
        steps = tuple(traj.messages[i].acceptable() for i in range(user + 1, stop)
                      if i in kept and traj.messages[i].calls)
        if steps:
            tasks.append(EnvTask(f"{traj.id}/user{k + 1}", traj.messages[:user + 1], traj.tools, steps))
    table: dict[str, str] = {}
    for i in traj.assistant_turns():
        for call, output in zip(traj.messages[i].calls, following_outputs(traj, i)):
            table.setdefault(call_key(call), output)
    return tasks, table


class ReplayEnv(ToolEnvironment):
    """Recorded trajectories replayed offline: a call's output is the recording's output of the
    same call (name and arguments, compared as canonical JSON), else an error output saying there
    is none (``NO_RECORD``). A recorded output that reads as an error (MAE's ``ErrorDetector``)
    counts as failed (``TOOL_ERROR``).

    Args:
        data_path: a file any ``read_trajectories`` format reads (tau-bench, API-Bank, ...).
        format: its format, or ``"auto"``.
        trajectories: the trajectories themselves, instead of ``data_path``.
        limit: the first ``limit`` tasks only.
        detector: what reads as an error output (MAE's, the authors' phrases by default).
    """

    def __init__(self, data_path: str | None = None, format: str = "auto",
                 trajectories: Sequence[Trajectory] | None = None, limit: int | None = None,
                 detector: ErrorDetector = DEFAULT_DETECTOR) -> None:
        if (data_path is None) == (trajectories is None):
            raise ValueError("give ReplayEnv either data_path or trajectories")
        if trajectories is None:
            trajectories = read_trajectories(Path(data_path), format=format)
        self.tables: dict[str, dict[str, str]] = {}  # task id -> its recording's table
        tasks = []
        for traj in trajectories:
            recorded, table = recorded_tasks(traj, detector)
            tasks += recorded
            self.tables.update({task.id: table for task in recorded})
        super().__init__(tasks[:limit])
        self.detector = detector

    def execute(self, call: ToolCall) -> Result:
        if call.name not in {t.name for t in self.task.tools}:
            return Result(f"NameError: name '{call.name}' is not defined", True, "unknown_tool")
        output = self.tables[self.task.id].get(call_key(call))
        if output is None:
            return Result(f"Error: no recorded output for {format_call(call, 'json')}", True, NO_RECORD)
        failed = self.detector.match(output) is not None
        return Result(output, failed, TOOL_ERROR if failed else None)
