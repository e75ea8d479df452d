"""The apibank reader: dialogue folders, tools from ToolSearcher results and all_apis.csv, broken
dialogue files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.data.formats.helpers import raises_then_skips
from tl_lightning.data.sources import detect_format, read_trajectories
from tl_lightning.records import DataError, Message


def test_apibank_reports_the_empty_dialogue_file(loaded):
    _, report = loaded["API-Bank/lv1-lv2-samples/level-1-given-desc"]
    assert [Path(p).name for p in report.empty_files] == ["SearchEngine-level-1-1.jsonl"]


def test_apibank_tools_and_outputs(loaded):
    trajs, _ = loaded["API-Bank/lv1-lv2-samples/level-1-given-desc"]
    t = next(t for t in trajs if t.id == "level-1-given-desc/AddAgenda-level-1-1")
    assert t.tool_names == ["GetUserToken", "AddAgenda"]
    assert t.messages[-2] == Message("tool", "success", name="AddAgenda")
    level2, _ = loaded["API-Bank/lv1-lv2-samples/level-2-toolsearcher"]
    t = next(t for t in level2 if t.id == "level-2-toolsearcher/AddAgenda-level-3-1")
    # the dialogue's own ToolSearcher result describes AddAgenda (all_apis.csv differs)
    assert "ToolSearcher" in t.tool_names and set(t.tool("AddAgenda").properties) == {
        "token", "content", "time", "location"}


def _apibank_dir(shared_data, tmp_path, lines_of):
    root = tmp_path / "API-Bank"
    (root / "data").mkdir(parents=True)
    shutil.copy(shared_data / "API-Bank/data/all_apis.csv", root / "data")
    folder = root / "lv1-lv2-samples" / "level-1-given-desc"
    folder.mkdir(parents=True)
    src = shared_data / "API-Bank/lv1-lv2-samples/level-1-given-desc/AddAgenda-level-1-1.jsonl"
    for name in ("A-level-1-1", "B-level-1-1", "C-level-1-1"):
        lines = src.read_text().splitlines()
        if name == "B-level-1-1":
            lines = lines_of(lines)
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _api_line(lines, edit):
    i = next(i for i, line in enumerate(lines) if '"role": "API"' in line)
    rec = json.loads(lines[i])
    edit(rec)
    return lines[:i] + [json.dumps(rec)] + lines[i + 1:]


APIBANK_CASES = [
    ("truncated line", lambda lines: lines[:2] + [lines[2][:30]], "line[2]"),
    ("undeclared tool", lambda lines: _api_line(lines, lambda r: r.update(api_name="Nope")), "line[9].api_name"),
    ("non-dict arguments", lambda lines: _api_line(lines, lambda r: (r.update(param_dict=[1]), r["result"].update(
        input=None))), "line[9].param_dict"),
    ("wrong type", lambda lines: [json.dumps({"role": "User", "text": 5})] + lines[1:], "line[0].text"),
]


@pytest.mark.parametrize("name,edit,fld", APIBANK_CASES, ids=[c[0] for c in APIBANK_CASES])
def test_apibank_broken_dialogues(shared_data, tmp_path, name, edit, fld):
    folder = _apibank_dir(shared_data, tmp_path, edit)
    assert detect_format(folder) == "apibank"
    err = raises_then_skips(folder)
    assert err.source.endswith("B-level-1-1.jsonl") and err.index == 1
    if fld:
        assert err.field == fld


def test_apibank_missing_tool_list(shared_data, tmp_path):
    folder = _apibank_dir(shared_data, tmp_path, lambda lines: lines)
    (folder.parent.parent / "data" / "all_apis.csv").unlink()
    with pytest.raises(DataError, match="all_apis.csv not found"):
        read_trajectories(folder)
    assert len(read_trajectories(folder, tools_path=shared_data / "API-Bank/data/all_apis.csv")) == 3
