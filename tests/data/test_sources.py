"""The entry point over the format registry: every shared/data source is detected and loads with
the PROVENANCE.md counts, side files are named, and every source round-trips through the
normalized JSONL. (Each format's own tests are under tests/data/formats/.)"""

from __future__ import annotations

import re

import pytest

from tests.data.formats.helpers import write_records
from tests.data.formats.test_openai import OPENAI_RECORD
from tl_lightning.data.sources import detect_format, read_trajectories, read_trajectories_with_report, write_jsonl
from tl_lightning.records import DataError, Message, ToolCall, ToolSpec, Trajectory


# (path under shared/data, format, trajectories) — counts from PROVENANCE.md / FORMATS.md.
SOURCES = [
    ("RoTBench/First_Turn/clean.json", "rotbench", 105),
    ("RoTBench/Third_Turn/clean.json", "rotbench", 70),
    ("ToolEyes/Test_Data/scenario_data_zero_processed.json", "rotbench", 382),
    ("ToolEyes/Test_Data/scenario_data_five_processed.json", "rotbench", 382),
    ("ToolEyes/Test_Data/scenario_data_raw.json", "rotbench", 382),
    ("ToolAlpaca/data/eval_real.json", "toolalpaca", 114),
    ("ToolAlpaca/data/eval_simulated.json", "toolalpaca", 100),
    ("BFCL_v3/BFCL_v3_simple.json", "bfcl", 400),
    ("BFCL_v3/BFCL_v3_multiple.json", "bfcl", 200),
    ("BFCL_v3/BFCL_v3_parallel.json", "bfcl", 200),
    ("BFCL_v3/BFCL_v3_parallel_multiple.json", "bfcl", 200),
    ("BFCL_v3/unused_datasets/question/BFCL_v3_exec_simple.json", "bfcl", 100),
    ("BFCL_v3/unused_datasets/question/BFCL_v3_exec_multiple.json", "bfcl", 50),
    ("BFCL_v3/unused_datasets/question/BFCL_v3_exec_parallel.json", "bfcl", 50),
    ("BFCL_v3/unused_datasets/question/BFCL_v3_exec_parallel_multiple.json", "bfcl", 40),
    # 214 files, one of them (SearchEngine-level-1-1.jsonl) is 0 bytes upstream: 213 dialogues.
    ("API-Bank/lv1-lv2-samples/level-1-given-desc", "apibank", 213),
    ("API-Bank/lv1-lv2-samples/level-2-toolsearcher", "apibank", 50),
    ("tau-bench/historical_trajectories/gpt-4o-airline.json", "taubench", 200),
    ("Seal-Tools/Seal-Tools_Dataset/dev.jsonl", "sealtools", 700),
    ("Seal-Tools/Seal-Tools_Dataset/test_in_domain.jsonl", "sealtools", 700),
]


# tool outputs per source (FORMATS.md): the MAE figures are counted over these
TOOL_OUTPUTS = {"RoTBench/Third_Turn/clean.json": 133, "API-Bank/lv1-lv2-samples/level-1-given-desc": 389,
                "API-Bank/lv1-lv2-samples/level-2-toolsearcher": 119,
                "tau-bench/historical_trajectories/gpt-4o-airline.json": 1164}


SIDE_FILES = ["API-Bank/data/all_apis.csv", "API-Bank/data/exceptions.json", "SGD/train/schema.json",
              "Seal-Tools/Seal-Tools_Dataset/tool.jsonl", "tau-bench/airline_tools.json",
              "BFCL_v3/possible_answer/BFCL_v3_simple.json",
              "ToolEyes/Tool_Library/Random/Random/config_gpt4.json"]


def _all_calls(trajs):
    return [c for t in trajs for m in t.messages for calls in m.acceptable() for c in calls]


@pytest.mark.parametrize("rel,fmt,count", SOURCES, ids=[s[0] for s in SOURCES])
def test_every_source_loads_with_its_count(loaded, shared_data, rel, fmt, count):
    trajs, report = loaded[rel]
    assert detect_format(shared_data / rel) == fmt
    assert report.format == fmt and report.read == count == len(trajs) and report.skipped == 0
    assert len({t.id for t in trajs}) == count
    calls = _all_calls(trajs)
    assert all(isinstance(c, ToolCall) and isinstance(c.arguments, dict) for c in calls)
    if fmt != "rotbench" or "ToolEyes" not in rel:  # ToolEyes has no gold calls
        assert calls
    outputs = sum(m.role == "tool" for t in trajs for m in t.messages)
    assert outputs == TOOL_OUTPUTS.get(rel, 0)


def test_side_files_are_named_not_guessed(shared_data):
    for rel in SIDE_FILES:
        with pytest.raises(DataError, match="not trajectories|answer file"):
            detect_format(shared_data / rel)


def test_every_shared_data_file_is_detected_or_named(shared_data):
    """Every JSON/JSONL/CSV file under shared/data gets a format, or a DataError saying what it is."""
    formats = {}
    for file in sorted(shared_data.rglob("*")):
        if file.suffix not in (".json", ".jsonl", ".csv"):
            continue
        try:
            formats[file] = detect_format(file)
        except DataError as e:
            # only API-Bank's 0-byte SearchEngine-level-1-1.jsonl has nothing to detect from
            expected = "no records" if file.stat().st_size == 0 else "not trajectories|answer file"
            assert re.search(expected, e.reason), (file, e)
    apibank = [f for f in formats if "lv1-lv2-samples" in f.parts and f.stat().st_size]
    assert len(apibank) == 263 and {formats[f] for f in apibank} == {"apibank"}
    named = {str(f.relative_to(shared_data)): fmt for f, fmt in formats.items() if f not in apibank}
    assert named == {rel: fmt for rel, fmt, _ in SOURCES if "API-Bank" not in rel} | {
        f"SGD/train/dialogues_{n}.json": "sgd" for n in ("001", "022", "044", "067", "088", "110")}


@pytest.mark.parametrize("rel", [s[0] for s in SOURCES])
def test_normalized_jsonl_round_trip(loaded, tmp_path, rel):
    trajs, _ = loaded[rel]
    out = tmp_path / "norm.jsonl"
    assert write_jsonl(trajs, out) == len(trajs)
    back, report = read_trajectories_with_report(out)
    assert report.format == "openai"
    assert back == trajs
    assert [t.meta for t in back] == [t.meta for t in trajs]


def test_alternatives_survive_the_round_trip(tmp_path):
    tools = (ToolSpec("f"), ToolSpec("g"))
    traj = Trajectory("t", tools, (Message("user", "go"),
                                   Message("assistant", "thinking", (ToolCall("f", {"x": [1, {"y": None}]}),),
                                           ((ToolCall("g", {}),), (ToolCall("f", {}), ToolCall("g", {"z": 1.5}))))),
                      {"note": "kept"})
    write_jsonl([traj], tmp_path / "n.jsonl")
    (back,) = read_trajectories(tmp_path / "n.jsonl")
    assert back == traj and back.meta["note"] == "kept" and back.messages[1].alternatives[1][1].arguments == {"z": 1.5}


def test_bad_arguments_and_on_error_values_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        read_trajectories(write_records(tmp_path / "o.json", [OPENAI_RECORD]), on_error="ignore")
    with pytest.raises(ValueError, match="unknown format"):
        read_trajectories(tmp_path / "o.json", format="csv")
    with pytest.raises(DataError, match="no such file"):
        read_trajectories(tmp_path / "missing.json")
