"""``python -m tl_lightning.data inspect|convert``; bad input through the real command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tl_lightning.data import world
from tl_lightning.data.__main__ import main
from tl_lightning.data.mae import apply_mae
from tl_lightning.data.sources import read_trajectories

REQUIRED_KEYS = {"trajectories", "assistant_turns", "calls", "mae_dropped", "mae_kept", "dropped_by_pattern",
                 "read_skipped"}


def _run(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_inspect_synthetic_matches_mae(capsys):
    out = _run(capsys, "inspect", "synthetic", "--size", "60", "--seed", "4")
    assert REQUIRED_KEYS <= set(out)
    _, report = apply_mae(world.generate_trajectories(60, seed=4))
    assert out["trajectories"] == 60
    assert out["mae_kept"] == report.kept_turns and out["mae_dropped"] == report.dropped_turns > 0
    assert out["dropped_by_pattern"] == dict(report.dropped_by_pattern)
    assert out["mae_kept"] + out["mae_dropped"] == out["assistant_turns"]


def test_custom_error_patterns_change_what_is_dropped(capsys):
    out = _run(capsys, "inspect", "synthetic", "--size", "60", "--error-pattern", "is not defined")
    assert set(out["dropped_by_pattern"]) == {"is not defined"}


def test_convert_round_trips_to_equal_records(capsys, tmp_path):
    target = tmp_path / "synthetic.jsonl"
    out = _run(capsys, "convert", "synthetic", "--size", "30", "--output", str(target))
    assert out["written"] == 30
    assert read_trajectories(target) == world.generate_trajectories(30, seed=0)
    again = _run(capsys, "inspect", str(target))
    assert again["format"] == "openai" and again["mae_dropped"] == apply_mae(
        world.generate_trajectories(30, seed=0))[1].dropped_turns


def test_built_in_world_strings_go_through_the_same_reader(capsys, tmp_path):
    out = _run(capsys, "inspect", "synthetic-sft:heldout_domains?n=40&error_rate=0.5")
    assert out["format"] == "synthetic" and out["trajectories"] == 40 and out["mae_dropped"] > 0
    target = tmp_path / "heldout.jsonl"
    _run(capsys, "convert", "synthetic:heldout_domains?n=25", "--output", str(target))
    assert read_trajectories(target) == world.generate_prompts(25, split="heldout_domains")
    assert main(["inspect", "synthetic:heldout"]) == 2
    assert "unknown split 'heldout'" in capsys.readouterr().err


def test_inspect_real_data_mae_figures(capsys, shared_data):
    rot = _run(capsys, "inspect", str(shared_data / "RoTBench/Third_Turn/clean.json"))
    assert (rot["trajectories"], rot["tool_outputs"], rot["mae_dropped"]) == (70, 133, 46)
    tau = _run(capsys, "inspect", str(shared_data / "tau-bench/historical_trajectories/gpt-4o-airline.json"))
    assert (tau["trajectories"], tau["calls"], tau["mae_dropped"]) == (200, 1164, 73)
    assert tau["dropped_by_pattern"] == {'"error":': 73}


def test_convert_real_data_round_trips(capsys, shared_data, tmp_path):
    source = shared_data / "RoTBench/Third_Turn/clean.json"
    target = tmp_path / "rot.jsonl"
    _run(capsys, "convert", str(source), "--output", str(target))
    assert read_trajectories(target) == read_trajectories(source)


def test_bad_input_exits_2_with_the_location(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}], "tools": []}\n{"messages": [\n')
    assert main(["inspect", str(bad)]) == 2
    assert "bad.jsonl" in capsys.readouterr().err
    out = _run(capsys, "inspect", str(bad), "--on-error", "skip")
    assert out["read_skipped"] == 1 and out["trajectories"] == 1
    with pytest.raises(SystemExit):
        main(["convert", "synthetic"])  # --output is required


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "tl_lightning.data", "inspect", "synthetic", "--size", "5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["trajectories"] == 5


@pytest.mark.parametrize("name, content, argv, message", [
    ("latin1.json", "[{\"id\": \"caf\u00e9\"}]".encode("latin-1"), [], "error: file latin1.json: not UTF-8 text"),
    ("empty.json", b"[]", ["--format", "rotbench"], "error: file empty.json: no records"),
    ("blank.json", b"", ["--format", "openai"], "error: file blank.json: no records"),
    ("blank.jsonl", b"\n", [], "error: file blank.jsonl: no records"),
    ("good.jsonl", b"{}", ["--format", "bogus"], "error: argument --format: invalid choice: 'bogus'"),
])
def test_bad_input_through_the_command_is_one_line_and_exit_status_2(name, content, argv, message, tmp_path):
    (tmp_path / name).write_bytes(content)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-m", "tl_lightning.data", "inspect", name, *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    assert message in done.stderr.strip().splitlines()[-1]
