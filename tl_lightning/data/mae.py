"""MAE (Mitigating Adverse Effects): which assistant turns become training targets.

A trajectory records what an agent did, failed calls included. A failed call (the tool answered
with an error) must not be learned, but it stays in the context of the later turns: the model sees
the error and the fix, it is just never trained to produce the failing call.

The rule (TL-Training; docs/design.md, "MAE"): an assistant turn is a target unless the tool output that
follows it reads as an error. "Reads as an error" is the authors' test: normalise both the output
and each error phrase (lower-case, keep only letters and digits), then look for the phrase as a
substring. Because of that normalisation the phrases ``"error":`` and ``'error'`` both become
``error``, so any output containing the word "error" counts. Two generalisations of the authors'
code, whose data only ever had one call per turn, each followed by exactly one output:

- a turn with parallel calls is followed by several outputs; it is dropped if any of them is an
  error (one failed call makes the turn a wrong example);
- an assistant turn followed by a user message (a text reply, or a call answered by the user) is
  kept; the authors' script skipped it, but their data never had one.

A call to a tool that is not in the tool list is never a target (reason ``"undeclared_tool"``),
whatever its output says: there is no spec for the model to learn it from.

Two sample layouts supervise exactly the same turns:

- ``per_turn`` (the authors'): one sample per kept turn, the conversation up to and including it,
  loss on that turn only. Turn k's prefix is re-processed for every later turn.
- ``trajectory``: one sample per trajectory (cut after its last kept turn), loss on every kept
  turn, failed turns kept as unsupervised context. Far fewer tokens for the same supervision.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from tl_lightning.records import Trajectory

DEFAULT_ERROR_PATTERNS: tuple[str, ...] = (
    "is not defined",
    "positional argument",
    "unexpected keyword",
    "'related_searches'",
    "ConnectionError",
    '"error":',
    "not supported",
    "Invalid API call",
    "Response error",
    "Object of type SerpResults is not JSON serializable",
    "400 Client Error",
    "'error'",
    "slice indices must be integers or None or have an __index__ method",
    "connection error",
)
"""The authors' error phrases (TL-Training ``code/mae``), matched after ``normalise``."""

UNDECLARED_TOOL = "undeclared_tool"
LAYOUTS = ("trajectory", "per_turn")

# The authors keep ASCII letters, digits and CJK ideographs (their class also keeps a stray '^',
# an artefact of writing ``^`` inside a character class; we drop it).
_NOT_KEPT = re.compile("[^a-z0-9\u4e00-\u9fa5]")


def normalise(text: str) -> str:
    """Lower-case ``text`` and keep only letters and digits: ``'Error: x-1'`` -> ``'errorx1'``."""
    return _NOT_KEPT.sub("", text.lower())


@dataclass(frozen=True)
class ErrorDetector:
    """Decides whether a tool output reads as an error.

    - ``patterns``: phrases, matched as substrings after ``normalise`` on both sides.
    - ``regexes``: regular expressions, searched in the raw (not normalised) output.
    """

    patterns: tuple[str, ...] = DEFAULT_ERROR_PATTERNS
    regexes: tuple[str, ...] = ()
    _normalised: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)
    _compiled: tuple[tuple[str, re.Pattern], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        normalised = []
        for p in self.patterns:
            if not isinstance(p, str) or not normalise(p):
                raise ValueError(f"error pattern {p!r} has no letters or digits: it would match "
                                 "every output")
            normalised.append((p, normalise(p)))
        compiled = []
        for r in self.regexes:
            try:
                compiled.append((r, re.compile(r)))
            except re.error as e:
                raise ValueError(f"error regex {r!r} does not compile: {e}") from e
        object.__setattr__(self, "patterns", tuple(self.patterns))
        object.__setattr__(self, "regexes", tuple(self.regexes))
        object.__setattr__(self, "_normalised", tuple(normalised))
        object.__setattr__(self, "_compiled", tuple(compiled))

    def match(self, output: str) -> str | None:
        """The first pattern (as configured) or regex that ``output`` matches, else None."""
        norm = normalise(output)
        for pattern, norm_pattern in self._normalised:
            if norm_pattern in norm:
                return pattern
        for regex, compiled in self._compiled:
            if compiled.search(output):
                return regex
        return None


DEFAULT_DETECTOR = ErrorDetector()
NO_ERRORS = ErrorDetector(patterns=(), regexes=())
"""A detector that never fires: every assistant turn with declared tools is a target."""


@dataclass(frozen=True)
class TurnSelection:
    """Message indices of the assistant turns to supervise (``kept``) and of those left out
    (``dropped``: index -> reason, an error pattern or ``"undeclared_tool"``)."""

    kept: tuple[int, ...]
    dropped: dict[int, str]


def following_outputs(traj: Trajectory, index: int) -> list[str]:
    """The contents of the tool messages directly after message ``index`` (its call outputs)."""
    outputs = []
    for message in traj.messages[index + 1:]:
        if message.role != "tool":
            break
        outputs.append(message.content)
    return outputs


def select_turns(traj: Trajectory, detector: ErrorDetector | None = None) -> TurnSelection:
    """Apply the MAE rule to every assistant turn of ``traj`` (see the module docstring).

    A turn whose outputs match an error pattern is dropped with that pattern as reason (the
    authors' reason wins over ``undeclared_tool``, so the counts by pattern compare with theirs).
    """
    detector = DEFAULT_DETECTOR if detector is None else detector
    declared = set(traj.tool_names)
    kept, dropped = [], {}
    for i in traj.assistant_turns():
        reason = None
        for output in following_outputs(traj, i):
            reason = detector.match(output)
            if reason is not None:
                break
        if reason is None and any(c.name not in declared for c in traj.messages[i].calls):
            reason = UNDECLARED_TOOL
        if reason is None:
            kept.append(i)
        else:
            dropped[i] = reason
    return TurnSelection(kept=tuple(kept), dropped=dropped)


@dataclass(frozen=True)
class Sample:
    """A trajectory (possibly a prefix of one) and the message indices to supervise in it."""

    id: str
    trajectory: Trajectory
    targets: tuple[int, ...]


def make_samples(traj: Trajectory, selection: TurnSelection, layout: str = "trajectory") -> list[Sample]:
    """Expand one trajectory into samples: ``per_turn`` gives one per kept turn (id
    ``"<traj id>/turn<k>"``, k = 1-based count of assistant turns, as the authors number them);
    ``trajectory`` gives one (id = trajectory id) cut after its last kept turn, or none."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown MAE layout {layout!r} (expected one of {LAYOUTS})")
    if not selection.kept:
        return []
    if layout == "trajectory":
        last = selection.kept[-1]
        return [Sample(traj.id, _prefix(traj, last + 1), selection.kept)]
    turn_number = {i: k for k, i in enumerate(traj.assistant_turns(), start=1)}
    return [Sample(f"{traj.id}/turn{turn_number[i]}", _prefix(traj, i + 1), (i,)) for i in selection.kept]


def _prefix(traj: Trajectory, length: int) -> Trajectory:
    if length == len(traj.messages):
        return traj
    return Trajectory(id=traj.id, tools=traj.tools, messages=traj.messages[:length], meta=traj.meta)


@dataclass
class MAEReport:
    """Counts over a data set: trajectories, assistant turns, calls, tool outputs and those that
    read as errors, kept and dropped turns, and dropped turns by reason (pattern or
    ``"undeclared_tool"``)."""

    trajectories: int = 0
    assistant_turns: int = 0
    calls: int = 0
    tool_outputs: int = 0
    error_outputs: int = 0
    kept_turns: int = 0
    dropped_turns: int = 0
    dropped_by_pattern: Counter = field(default_factory=Counter)

    def add(self, traj: Trajectory, selection: TurnSelection, detector: ErrorDetector | None = None) -> None:
        """Count one trajectory and its selection (``detector`` counts the error outputs)."""
        detector = DEFAULT_DETECTOR if detector is None else detector
        self.trajectories += 1
        turns = traj.assistant_turns()
        self.assistant_turns += len(turns)
        self.calls += sum(len(traj.messages[i].calls) for i in turns)
        outputs = [m.content for m in traj.messages if m.role == "tool"]
        self.tool_outputs += len(outputs)
        self.error_outputs += sum(detector.match(o) is not None for o in outputs)
        self.kept_turns += len(selection.kept)
        self.dropped_turns += len(selection.dropped)
        self.dropped_by_pattern.update(selection.dropped.values())

    def to_dict(self) -> dict:
        """A JSON-ready dict (``dropped_by_pattern`` most frequent first)."""
        return {
            "trajectories": self.trajectories,
            "assistant_turns": self.assistant_turns,
            "calls": self.calls,
            "tool_outputs": self.tool_outputs,
            "error_outputs": self.error_outputs,
            "kept_turns": self.kept_turns,
            "dropped_turns": self.dropped_turns,
            "dropped_by_pattern": dict(self.dropped_by_pattern.most_common()),
        }


def apply_mae(
    trajs: Iterable[Trajectory],
    detector: ErrorDetector | None = None,
    layout: str = "trajectory",
    enabled: bool = True,
) -> tuple[list[Sample], MAEReport]:
    """Select the target turns of every trajectory and lay them out as samples.

    ``enabled=False`` is the "standard SFT" arm: no output counts as an error, so every assistant
    turn is a target, except calls to undeclared tools, which can never be learned.
    """
    detector = (DEFAULT_DETECTOR if detector is None else detector) if enabled else NO_ERRORS
    samples: list[Sample] = []
    report = MAEReport()
    for traj in trajs:
        selection = select_turns(traj, detector)
        report.add(traj, selection, detector)
        samples.extend(make_samples(traj, selection, layout))
    return samples, report
