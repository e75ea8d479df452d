"""The records every reader produces and every later step consumes.

A ``Trajectory`` is one conversation: the tools offered, then system / user / assistant / tool
messages. Assistant messages carry their tool calls as ``ToolCall`` objects (never as text), so
rendering, MAE, the reward and the metrics all see the same structured call whatever the source
format was. A gold turn (e.g. RoTBench's last turn) may accept several call sets: ``calls`` is
the one rendered for training, ``alternatives`` the others that also count as correct.

``validate_trajectory`` checks the structure and raises ``DataError`` naming the file, the
record (index and id) and the field, so a bad record is found in seconds, not after an epoch.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")


class DataError(ValueError):
    """A malformed record: says which file, which record (index and id) and which field."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        index: int | None = None,
        record_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.index = index
        self.record_id = record_id
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.source is not None:
            where.append(f"file {self.source}")
        if self.index is not None:
            where.append(f"record {self.index}")
        if self.record_id is not None:
            where.append(f"id {self.record_id!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def located(self, *, source: str | None = None, index: int | None = None,
                record_id: str | None = None, field_prefix: str | None = None) -> "DataError":
        """The same error with the location filled in (the fields already set win)."""
        fld = self.field
        if field_prefix:
            fld = f"{field_prefix}.{fld}" if fld else field_prefix
        return DataError(
            self.reason,
            source=self.source if self.source is not None else source,
            index=self.index if self.index is not None else index,
            record_id=self.record_id if self.record_id is not None else record_id,
            field=fld,
        )


def exit_on_bad_input(error: DataError) -> int:
    """What a command line does with bad input (a ``DataError``): one line ``error: <file,
    record, id, field>: <reason>`` on stderr, no traceback, and exit status 2 (argparse's for bad
    arguments), returned for ``sys.exit``. The data and evaluate commands share it."""
    print(f"error: {error}", file=sys.stderr)
    return 2


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its name, description and JSON-schema parameters (``{"type": "object",
    "properties": {...}, "required": [...]}``)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    @property
    def properties(self) -> dict[str, Any]:
        return self.parameters.get("properties") or {}

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required") or [])

    def to_openai(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ToolSpec":
        """Accepts ``{"name", "description", "parameters"}`` or OpenAI's ``{"type": "function",
        "function": {...}}``."""
        if not isinstance(d, dict):
            raise DataError(f"a tool must be an object, got {type(d).__name__}")
        if "function" in d and isinstance(d["function"], dict):
            d = d["function"]
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise DataError("a tool needs a non-empty string 'name'", field="name")
        params = d.get("parameters")
        if params is None:
            params = {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise DataError(f"'parameters' must be an object, got {type(params).__name__}",
                            field="parameters")
        desc = d.get("description") or ""
        if not isinstance(desc, str):
            raise DataError("'description' must be a string", field="description")
        return cls(name=name, description=desc, parameters=params)


@dataclass(frozen=True)
class ToolCall:
    """One call: a tool name and its arguments (any JSON values)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_openai(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)}}

    def __hash__(self) -> int:  # arguments is a dict; hash on its canonical JSON
        return hash((self.name, json.dumps(self.arguments, sort_keys=True, default=str)))


@dataclass(frozen=True)
class Message:
    """One message.

    - ``role``: one of ``ROLES``.
    - ``content``: the text (for an assistant call turn, the free text around the call, e.g. a
      ReAct ``Thought:``; for a tool message, the tool's output).
    - ``calls``: assistant only; the calls made in this turn (several = parallel calls).
    - ``alternatives``: assistant only; other call sets that are equally correct (gold turns).
    - ``name``: tool only; the tool whose output this is, when the source says.
    """

    role: str
    content: str = ""
    calls: tuple[ToolCall, ...] = ()
    alternatives: tuple[tuple[ToolCall, ...], ...] = ()
    name: str | None = None

    def acceptable(self) -> tuple[tuple[ToolCall, ...], ...]:
        """Every call set that counts as correct for this turn: ``calls`` first."""
        return (self.calls,) + tuple(self.alternatives)


@dataclass(frozen=True)
class Trajectory:
    """One conversation with the tools it may call. ``meta`` keeps source-specific facts
    (``source``, ``format``, benchmark scenario, BFCL's acceptable values, ...)."""

    id: str
    tools: tuple[ToolSpec, ...]
    messages: tuple[Message, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def tool(self, name: str) -> ToolSpec | None:
        for t in self.tools:
            if t.name == name:
                return t
        return None

    @property
    def tool_names(self) -> list[str]:
        return [t.name for t in self.tools]

    def assistant_turns(self) -> list[int]:
        return [i for i, m in enumerate(self.messages) if m.role == "assistant"]


def validate_trajectory(traj: Trajectory, *, allow_undeclared_history: bool = True) -> Trajectory:
    """Check the structure of ``traj``; raise ``DataError`` (field = dotted path) on the first
    problem, else return it unchanged.

    A call to a tool that is not in the tool list is an error in a turn that can be a training or
    evaluation target. With ``allow_undeclared_history`` a call whose output follows in the
    trajectory is accepted: it is a record of what the agent did (typically answered by an
    "is not defined" error that MAE then filters), not a target.
    """
    if not isinstance(traj.id, str) or not traj.id:
        raise DataError("a trajectory needs a non-empty string id", field="id")
    names = set()
    for i, t in enumerate(traj.tools):
        if not isinstance(t, ToolSpec):
            raise DataError("not a ToolSpec", field=f"tools[{i}]")
        if t.name in names:
            raise DataError(f"tool {t.name!r} is declared twice", field=f"tools[{i}].name")
        names.add(t.name)
    if not traj.messages:
        raise DataError("no messages", field="messages")
    for i, m in enumerate(traj.messages):
        where = f"messages[{i}]"
        if m.role not in ROLES:
            raise DataError(f"unknown role {m.role!r} (expected one of {ROLES})", field=f"{where}.role")
        if not isinstance(m.content, str):
            raise DataError(f"content must be a string, got {type(m.content).__name__}",
                            field=f"{where}.content")
        if m.role != "assistant" and (m.calls or m.alternatives):
            raise DataError("only assistant messages carry calls", field=f"{where}.calls")
        followed_by_output = i + 1 < len(traj.messages) and traj.messages[i + 1].role == "tool"
        for a, call_set in enumerate(m.acceptable()):
            for j, c in enumerate(call_set):
                cwhere = f"{where}.calls[{j}]" if a == 0 else f"{where}.alternatives[{a - 1}][{j}]"
                if not isinstance(c, ToolCall) or not isinstance(c.name, str) or not c.name:
                    raise DataError("a call needs a non-empty tool name", field=f"{cwhere}.name")
                if not isinstance(c.arguments, dict):
                    raise DataError(f"arguments must be an object, got {type(c.arguments).__name__}",
                                    field=f"{cwhere}.arguments")
                if c.name not in names and not (allow_undeclared_history and followed_by_output):
                    raise DataError(f"calls {c.name!r}, which is not in the tool list {sorted(names)}",
                                    field=f"{cwhere}.name")
    return traj
