"""The taubench reader: meta, tool outputs, broken records, the missing tool schema file."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.data.formats.helpers import raises_then_skips, write_records
from tl_lightning.data.sources import read_trajectories
from tl_lightning.records import DataError


def test_taubench_meta_and_tool_outputs(loaded):
    trajs, _ = loaded["tau-bench/historical_trajectories/gpt-4o-airline.json"]
    assert {t.meta["reward"] for t in trajs} == {0.0, 1.0} and sum(t.meta["reward"] for t in trajs) == 84
    outputs = [m for t in trajs for m in t.messages if m.role == "tool"]
    assert len(outputs) == 1164 and sum(m.content.startswith("Error:") for m in outputs) == 73
    assert len(trajs[0].tools) == 14


def _taubench_file(shared_data, tmp_path, mutate):
    trajs = json.loads((shared_data / "tau-bench/historical_trajectories/gpt-4o-airline.json").read_text())
    trajs = [t for t in trajs if any(m.get("tool_calls") for m in t["traj"])][:3]
    mutate(trajs)
    (tmp_path / "historical_trajectories").mkdir()
    shutil.copy(shared_data / "tau-bench/airline_tools.json", tmp_path)
    return write_records(tmp_path / "historical_trajectories" / "gpt-4o-airline.json", trajs)


def _first_tool_call(traj):
    return next(m for m in traj["traj"] if m.get("tool_calls"))["tool_calls"][0]


def _first_tool_call_index(traj):
    return next(i for i, m in enumerate(traj["traj"]) if m.get("tool_calls"))


TAUBENCH_CASES = [
    ("undeclared tool", lambda t: (_first_tool_call(t[1])["function"].update(name="nope"),
                                   t[1]["traj"].__setitem__(slice(_first_tool_call_index(t[1]) + 1, None), [])), None),
    ("non-dict arguments", lambda t: _first_tool_call(t[1])["function"].update(arguments="[1]"), "arguments"),
    ("wrong type", lambda t: t[1].update(traj={"role": "user"}), "traj"),
]


@pytest.mark.parametrize("name,mutate,fld", TAUBENCH_CASES, ids=[c[0] for c in TAUBENCH_CASES])
def test_taubench_broken_records(shared_data, tmp_path, name, mutate, fld):
    file = _taubench_file(shared_data, tmp_path, mutate)
    err = raises_then_skips(file)
    assert err.index == 1 and err.record_id == str(json.loads(file.read_text())[1]["task_id"])
    if fld:
        assert err.field.endswith(fld)


def test_taubench_missing_tool_list(shared_data, tmp_path):
    file = _taubench_file(shared_data, tmp_path, lambda t: None)
    (tmp_path / "airline_tools.json").unlink()
    with pytest.raises(DataError, match="tool schemas not found"):
        read_trajectories(file)
