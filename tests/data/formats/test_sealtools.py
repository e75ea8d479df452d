"""The sealtools reader: calls and schemas, broken records, the missing tool.jsonl."""

from __future__ import annotations

import shutil

import pytest

from tests.data.formats.helpers import first_lines, raises_then_skips, write_records
from tl_lightning.data.sources import read_trajectories
from tl_lightning.records import DataError, ToolCall


def test_sealtools_calls_and_schemas(loaded):
    trajs, _ = loaded["Seal-Tools/Seal-Tools_Dataset/dev.jsonl"]
    t = trajs[0]
    assert t.id == "dev-easy-0"
    assert t.messages[-1].calls == (ToolCall("getHealthWorkforce", {"location": "country", "occupation": "nurses"}),)
    assert t.tools[0].properties["location"]["type"] == "string"


def _sealtools_file(shared_data, tmp_path, mutate):
    records = first_lines(shared_data / "Seal-Tools/Seal-Tools_Dataset/dev.jsonl", 3)
    mutate(records)
    shutil.copy(shared_data / "Seal-Tools/Seal-Tools_Dataset/tool.jsonl", tmp_path)
    return write_records(tmp_path / "dev.jsonl", records, jsonl=True)


SEALTOOLS_CASES = [
    ("undeclared tool", lambda r: r[1]["calling"][0].update(api="nope"), "calling[0].api"),
    ("non-dict arguments", lambda r: r[1]["calling"][0].update(parameters=["x"]), "calling[0].parameters"),
    ("wrong type", lambda r: r[1].update(query=1), "query"),
]


@pytest.mark.parametrize("name,mutate,fld", SEALTOOLS_CASES, ids=[c[0] for c in SEALTOOLS_CASES])
def test_sealtools_broken_records(shared_data, tmp_path, name, mutate, fld):
    file = _sealtools_file(shared_data, tmp_path, mutate)
    err = raises_then_skips(file)
    assert (err.index, err.record_id, err.field) == (1, "dev-easy-1", fld)


def test_sealtools_missing_tool_list(shared_data, tmp_path):
    file = _sealtools_file(shared_data, tmp_path, lambda r: None)
    (tmp_path / "tool.jsonl").unlink()
    with pytest.raises(DataError, match="tool.jsonl not found"):
        read_trajectories(file)
