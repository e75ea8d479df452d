"""MAE: error detection, per-turn selection, both sample layouts, the report, real data."""

from __future__ import annotations

import json
import re

import pytest

from tl_lightning.data.mae import (
    DEFAULT_ERROR_PATTERNS,
    UNDECLARED_TOOL,
    ErrorDetector,
    MAEReport,
    apply_mae,
    make_samples,
    normalise,
    select_turns,
)
from tl_lightning.data.sources import read_trajectories
from tl_lightning.records import Message, ToolCall, ToolSpec, Trajectory

TOOLS = (ToolSpec("search", "Search.", {"type": "object", "properties": {"q": {"type": "string"}}}),
         ToolSpec("finish", "Answer.", {"type": "object", "properties": {"answer": {"type": "string"}}}))


def call(name: str, **arguments) -> ToolCall:
    return ToolCall(name, arguments)


def assistant(*calls: ToolCall, content: str = "") -> Message:
    return Message("assistant", content, calls=tuple(calls))


def tool(output: str) -> Message:
    return Message("tool", output)


def mixed_trajectory(traj_id: str = "t1") -> Trajectory:
    """Turns: 2 ok call, 4 failed call, 6 undeclared tool (output fine), 8 text reply to the
    user, 10 parallel calls of which the second failed, 13 final call."""
    return Trajectory(traj_id, TOOLS, (
        Message("system", "Be useful."),
        Message("user", "Find cats."),
        assistant(call("search", q="cats")),
        tool('{"results": ["cat"]}'),
        assistant(call("search", query="cats")),
        tool("search() got an unexpected keyword argument 'query'"),
        assistant(call("lookup", q="cats")),
        tool("a cat"),
        assistant(content="Which cat?"),
        Message("user", "Any."),
        assistant(call("search", q="cat"), call("search", q="dog")),
        tool('{"results": ["cat"]}'),
        tool("Error: rate limited"),
        assistant(call("finish", answer="a cat")),
    ))


def test_normalise_keeps_only_lowercase_letters_and_digits():
    assert normalise("Error: HTTP-400, 'x_y'!") == "errorhttp400xy"
    assert normalise("错误 Not Found") == "错误notfound"
    assert normalise("") == ""


def test_default_patterns_are_the_authors_list():
    assert len(DEFAULT_ERROR_PATTERNS) == 14
    assert DEFAULT_ERROR_PATTERNS[0] == "is not defined"
    assert "slice indices must be integers or None or have an __index__ method" in DEFAULT_ERROR_PATTERNS


def test_detector_matches_after_normalising_both_sides():
    detector = ErrorDetector()
    assert detector.match("NameError: name 'foo' is  NOT-defined") == "is not defined"
    # '"error":' normalises to 'error': any output containing the word counts, as in the paper
    assert detector.match("Error: user not found") == '"error":'
    assert detector.match("An ERROR occurred") == '"error":'
    assert detector.match('{"status": "ok", "flights": []}') is None
    assert detector.match("") is None


def test_detector_phrases_and_regexes_are_configurable():
    detector = ErrorDetector(patterns=("rate limit",), regexes=(r"^HTTP 5\d\d",))
    assert detector.match("Rate-Limit exceeded") == "rate limit"
    assert detector.match("HTTP 503 busy") == r"^HTTP 5\d\d"
    assert detector.match("ok HTTP 503") is None  # regexes see the raw text: '^' anchors
    assert detector.match("Error: boom") is None  # the default list is replaced, not extended


@pytest.mark.parametrize("bad", ["", "!!", " - "])
def test_detector_rejects_patterns_that_match_everything(bad):
    with pytest.raises(ValueError, match="every output"):
        ErrorDetector(patterns=(bad,))


def test_detector_rejects_broken_regex():
    with pytest.raises(ValueError, match="does not compile"):
        ErrorDetector(regexes=("(unclosed",))


def test_select_turns_applies_the_rule_per_turn():
    selection = select_turns(mixed_trajectory())
    assert selection.kept == (2, 8, 13)
    assert selection.dropped == {4: "unexpected keyword", 6: UNDECLARED_TOOL, 10: '"error":'}


def test_error_pattern_wins_over_undeclared_tool_as_reason():
    traj = Trajectory("u", TOOLS, (Message("user", "x"), assistant(call("ghost")),
                                   tool("name 'ghost' is not defined"), assistant(call("finish", answer="no"))))
    assert select_turns(traj).dropped == {1: "is not defined"}


def test_undeclared_final_call_is_never_a_target():
    traj = Trajectory("u", TOOLS, (Message("user", "x"), assistant(call("ghost"))))
    assert select_turns(traj).kept == ()
    assert select_turns(traj).dropped == {1: UNDECLARED_TOOL}


def test_per_turn_layout_is_one_prefix_per_kept_turn():
    traj = mixed_trajectory()
    samples = make_samples(traj, select_turns(traj), layout="per_turn")
    assert [s.id for s in samples] == ["t1/turn1", "t1/turn4", "t1/turn6"]
    for sample, index in zip(samples, (2, 8, 13)):
        assert sample.targets == (index,)
        assert sample.trajectory.messages == traj.messages[:index + 1]
        assert sample.trajectory.tools == traj.tools


def test_trajectory_layout_keeps_failed_turns_as_context_and_cuts_after_last_target():
    messages = mixed_trajectory().messages[:13]  # ends with the failed parallel turn + outputs
    traj = Trajectory("t2", TOOLS, messages)
    [sample] = make_samples(traj, select_turns(traj), layout="trajectory")
    assert sample.id == "t2"
    assert sample.targets == (2, 8)
    assert sample.trajectory.messages == messages[:9]  # failed turn 4 and undeclared 6 inside


def supervised(samples) -> set[tuple[str, Message]]:
    return {(s.trajectory.id, s.trajectory.messages[i]) for s in samples for i in s.targets}


def test_both_layouts_supervise_the_same_turns():
    trajs = [mixed_trajectory("a"), mixed_trajectory("b"),
             Trajectory("c", TOOLS, (Message("user", "x"), assistant(call("ghost"))))]
    per_turn, report_a = apply_mae(trajs, layout="per_turn")
    whole, report_b = apply_mae(trajs, layout="trajectory")
    assert supervised(per_turn) == supervised(whole)
    assert len(supervised(whole)) == 6
    assert len(per_turn) == 6 and len(whole) == 2  # "c" has no target: no sample
    assert report_a.to_dict() == report_b.to_dict()


def test_apply_mae_disabled_targets_every_declared_turn():
    samples, report = apply_mae([mixed_trajectory()], enabled=False)
    assert samples[0].targets == (2, 4, 8, 10, 13)
    assert report.dropped_by_pattern == {UNDECLARED_TOOL: 1}
    assert report.error_outputs == 0


def test_report_counts():
    _, report = apply_mae([mixed_trajectory()])
    assert report.to_dict() == {
        "trajectories": 1, "assistant_turns": 6, "calls": 6, "tool_outputs": 5, "error_outputs": 2,
        "kept_turns": 3, "dropped_turns": 3,
        "dropped_by_pattern": {"unexpected keyword": 1, UNDECLARED_TOOL: 1, '"error":': 1},
    }
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()
    empty = MAEReport()
    assert empty.to_dict()["dropped_by_pattern"] == {}


def test_unknown_layout_is_an_error():
    traj = mixed_trajectory()
    with pytest.raises(ValueError, match="layout"):
        make_samples(traj, select_turns(traj), layout="per_call")


# ------------------------------------------------------------------------------------ real data


def authors_rule_flags(output: str) -> bool:
    """The authors' check, written out independently: strip to [a-z0-9], look for each phrase."""
    strip = lambda s: re.sub("[^a-z0-9]", "", s.lower())  # noqa: E731
    return any(strip(p) in strip(output) for p in DEFAULT_ERROR_PATTERNS)


def test_rotbench_third_turn(shared_data):
    path = shared_data / "RoTBench" / "Third_Turn" / "clean.json"
    trajs = read_trajectories(path)
    samples, report = apply_mae(trajs, layout="per_turn")
    raw = json.loads(path.read_text())
    outputs = [m["value"] for r in raw for m in r["conversations"] if m["from"] == "function"]
    flagged = sum(authors_rule_flags(o) for o in outputs)
    assert (flagged, len(outputs)) == (46, 133)  # FORMATS.md
    got = report.to_dict()
    assert (got["error_outputs"], got["tool_outputs"]) == (46, 133)
    assert got["trajectories"] == 70 and got["assistant_turns"] == 210
    assert got["dropped_turns"] == sum(got["dropped_by_pattern"].values())
    assert got["kept_turns"] + got["dropped_turns"] == 210
    # every output flagged drops its turn (one call per turn here); nothing else but undeclared tools
    assert got["dropped_turns"] - got["dropped_by_pattern"].get(UNDECLARED_TOOL, 0) == 46
    assert len(samples) == got["kept_turns"]


def test_tau_bench_airline(shared_data):
    path = shared_data / "tau-bench" / "historical_trajectories" / "gpt-4o-airline.json"
    trajs = read_trajectories(path)
    samples, report = apply_mae(trajs, layout="trajectory")
    got = report.to_dict()
    assert (got["error_outputs"], got["tool_outputs"]) == (73, 1164)
    assert got["trajectories"] == 200 and got["assistant_turns"] == 2454
    assert got["dropped_turns"] == 73 and got["dropped_by_pattern"] == {'"error":': 73}
    assert got["kept_turns"] == 2454 - 73
    assert sum(len(s.targets) for s in samples) == got["kept_turns"]
