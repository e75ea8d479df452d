"""The format registry: every built-in format is one entry of its own module, the scored turn comes
from it, names are unique, and a format registered from outside the package (README's
``qa-calls`` example, run as written there) is detected, read, located on error and scored."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.data.formats.helpers import write_records
from tl_lightning.data import formats
from tl_lightning.data.datamodule import gold_turn_index
from tl_lightning.data.formats import FORMATS, register_format, registered, scored_turn
from tl_lightning.data.formats.reading import Format, Origin, ReadOptions, build_trajectory, read_text
from tl_lightning.data.sources import detect_format, read_trajectories, read_trajectories_with_report, write_jsonl
from tl_lightning.records import DataError, Message, ToolCall, ToolSpec, Trajectory

README = Path(__file__).resolve().parents[3] / "README.md"
BUILT_IN = ["bfcl", "toolalpaca", "taubench", "sgd", "sealtools", "rotbench", "apibank", "sharegpt", "tl", "openai"]


def test_formats_registry_is_complete():
    assert set(FORMATS) >= {"openai", "tl", "sharegpt", "rotbench", "tooleyes", "toolalpaca", "bfcl",
                            "apibank", "sgd", "taubench", "sealtools"}


def test_every_built_in_format_is_the_entry_of_its_module():
    assert [fmt.name for fmt in registered()] == BUILT_IN  # detection order: the specific ones first
    for name in BUILT_IN:
        assert getattr(formats, name).FORMAT is FORMATS[name]
    assert FORMATS["tooleyes"] is FORMATS["rotbench"]


def test_the_scored_turn_comes_from_the_registry():
    assert {name: scored_turn(name) for name in FORMATS} == {name: "first" if name == "toolalpaca" else "last"
                                                             for name in FORMATS}
    assert scored_turn("synthetic") == scored_turn(None) == "last"  # no entry: the last turn
    two_turns = (Message("user", "q"), Message("assistant", "", (ToolCall("f"),)), Message("tool", "ok"),
                 Message("assistant", "", (ToolCall("g"),)))
    assert gold_turn_index(Trajectory("t", (), two_turns, {"format": "toolalpaca"})) == 1
    assert gold_turn_index(Trajectory("t", (), two_turns, {"format": "bfcl"})) == 3


def test_side_files_match_a_name_or_a_path_tail():
    assert FORMATS["sgd"].side_file(Path("/x/SGD/train/schema.json")).startswith("the SGD service schemas")
    assert FORMATS["bfcl"].side_file(Path("BFCL_v3/possible_answer/BFCL_v3_simple.json")).startswith("a BFCL answer")
    assert FORMATS["taubench"].side_file(Path("tau-bench/airline_tools.json")) is not None
    assert FORMATS["sgd"].side_file(Path("/x/SGD/train/dialogues_001.json")) is None
    assert FORMATS["bfcl"].side_file(Path("BFCL_v3/BFCL_v3_simple.json")) is None


def test_names_are_unique_and_reserved_names_refused():
    with pytest.raises(ValueError, match="registered already"):
        register_format(Format("openai", FORMATS["openai"].read))
    with pytest.raises(ValueError, match="registered already"):
        register_format(Format("mine", FORMATS["openai"].read, aliases=("tooleyes",)))
    for reserved in ("auto", "synthetic"):
        with pytest.raises(ValueError, match="reserved"):
            register_format(Format(reserved, FORMATS["openai"].read))
    with pytest.raises(ValueError, match="scored_turn"):
        Format("mine", FORMATS["openai"].read, scored_turn="middle")
    assert "mine" not in FORMATS


def _readme_example() -> str:
    """The python block of README's "Your own format" section."""
    section = README.read_text(encoding="utf-8").split("#### Your own format", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def qa_calls():
    """README's example run as written: it registers ``qa-calls``; the entry is removed afterwards."""
    exec(compile(_readme_example(), str(README), "exec"), {"__name__": "readme_example"})
    yield FORMATS["qa-calls"]
    del FORMATS["qa-calls"]


QA_RECORD = {"id": "qa-1", "question": "Weather in Paris?",
             "tools": [{"name": "get_weather", "parameters": {"type": "object", "properties": {
                 "city": {"type": "string"}}}}],
             "answer": {"name": "get_weather", "arguments": {"city": "Paris"}}}


def test_a_registered_format_is_detected_read_and_round_trips(qa_calls, tmp_path):
    path = write_records(tmp_path / "qa.jsonl", [QA_RECORD, dict(QA_RECORD, id="qa-2")], jsonl=True)
    assert detect_format(path) == "qa-calls"
    first, second = read_trajectories(path)
    assert (first.id, second.id) == ("qa-1", "qa-2")
    assert first.messages[-1].calls == (ToolCall("get_weather", {"city": "Paris"}),)
    assert first.meta == {"source": str(path), "format": "qa-calls", "index": 0}
    write_jsonl([first, second], tmp_path / "n.jsonl")
    assert read_trajectories(tmp_path / "n.jsonl") == [first, second]
    # the built-in formats keep their records: an openai file is still openai
    openai_file = write_records(tmp_path / "o.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}], jsonl=True)
    assert detect_format(openai_file) == "openai"


def test_a_registered_format_locates_errors_and_skips(qa_calls, tmp_path):
    broken = dict(QA_RECORD, id="qa-2", answer={"arguments": {}})
    path = write_records(tmp_path / "qa.jsonl", [QA_RECORD, broken], jsonl=True)
    with pytest.raises(DataError) as err:
        read_trajectories(path)
    assert (err.value.index, err.value.record_id, err.value.field) == (1, "qa-2", "answer.name")
    trajs, report = read_trajectories_with_report(path, format="qa-calls", on_error="skip")
    assert [t.id for t in trajs] == ["qa-1"] and report.format == "qa-calls" and report.skipped == 1


def _steps_tsv(line: str, origin: Origin) -> Trajectory:
    """``question<TAB>first tool<TAB>second tool``: two call turns, the first one scored."""
    fields = line.split("\t")
    if len(fields) != 3:
        raise DataError(f"expected 3 tab-separated fields, got {len(fields)}")
    question, first, second = fields
    messages = (Message("user", question), Message("assistant", "", (ToolCall(first),)), Message("tool", "ok"),
                Message("assistant", "", (ToolCall(second),)))
    return Trajectory(origin.default_id, (ToolSpec(first), ToolSpec(second)), messages, origin.meta())


def _read_steps_tsv(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    for index, line in enumerate(read_text(path).splitlines()):
        yield build_trajectory(path, index, line, lambda: _steps_tsv(line, Origin(path, index, "steps-tsv")))


@pytest.fixture
def steps_tsv():
    """A format of tab-separated lines, known by its suffix, with a side file, scored at its first turn."""
    yield register_format(Format("steps-tsv", _read_steps_tsv, matches_file=lambda path: path.suffix == ".tsv",
                                 side_files={"steps-tools.json": "the steps-tsv tool list, not trajectories"},
                                 scored_turn="first"))
    del FORMATS["steps-tsv"]


def test_a_registered_format_may_read_any_file_name_side_files_and_score_the_first_turn(steps_tsv, tmp_path):
    (tmp_path / "steps-tools.json").write_text("[]")
    with pytest.raises(DataError, match="this is the steps-tsv tool list, not trajectories"):
        detect_format(tmp_path / "steps-tools.json")
    (tmp_path / "a.tsv").write_text("q\tf\tg\nbroken line\n")
    assert detect_format(tmp_path / "a.tsv") == "steps-tsv"
    (traj,), report = read_trajectories_with_report(tmp_path / "a.tsv", on_error="skip")
    assert report.skipped == 1 and str(report.errors[0]) == (
        f"file {tmp_path / 'a.tsv'}, record 1: expected 3 tab-separated fields, got 1")
    assert gold_turn_index(traj) == 1
    with pytest.raises(DataError, match="pass one of .*'steps-tsv'"):
        detect_format(write_records(tmp_path / "x.json", [{"odd": 1}]))
