"""The sgd reader: the 768 dialogues of the subset, the normalized round trip, broken dialogues."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.data.formats.helpers import raises_then_skips, write_records
from tl_lightning.data.sources import detect_format, read_trajectories, write_jsonl


def test_sgd_loads_768_dialogues_with_2248_calls(loaded, shared_data):
    trajs, report = loaded["SGD/train"]
    assert detect_format(shared_data / "SGD/train") == "sgd"
    assert detect_format(shared_data / "SGD/train/dialogues_022.json") == "sgd"
    assert report.read == 768 and report.skipped == 0
    assert sum(len(m.calls) for t in trajs for m in t.messages) == 2248
    t = trajs[0]
    call_turn = next(i for i, m in enumerate(t.messages) if m.calls)
    assert t.messages[call_turn + 1].role == "tool" and json.loads(t.messages[call_turn + 1].content)
    assert t.messages[call_turn + 2].role == "assistant" and not t.messages[call_turn + 2].calls


def test_sgd_round_trip(loaded, tmp_path):
    trajs, _ = loaded["SGD/train"]
    write_jsonl(trajs, tmp_path / "sgd.jsonl")
    back = read_trajectories(tmp_path / "sgd.jsonl")
    assert back == trajs


def _sgd_dir(shared_data, tmp_path, mutate):
    dialogues = json.loads((shared_data / "SGD/train/dialogues_022.json").read_text())[:3]
    mutate(dialogues)
    folder = tmp_path / "train"
    folder.mkdir()
    shutil.copy(shared_data / "SGD/train/schema.json", folder)
    return write_records(folder / "dialogues_022.json", dialogues)


def _first_call_frame(dialogue):
    return next(fr for t in dialogue["turns"] for fr in t["frames"] if "service_call" in fr)


SGD_CASES = [
    ("missing tool list", lambda d: d[1].update(services=["Nope_1"]), r"services\[0\]"),
    ("undeclared tool", lambda d: _first_call_frame(d[1])["service_call"].update(method="Nope"),
     r"turns\[\d+\]\.frames\[0\]\.service_call\.method"),
    ("non-dict arguments", lambda d: _first_call_frame(d[1])["service_call"].update(parameters="x"),
     r"turns\[\d+\]\.frames\[0\]\.service_call\.parameters"),
    ("wrong type", lambda d: d[1]["turns"][0].update(utterance=None), r"turns\[0\]\.utterance"),
]


@pytest.mark.parametrize("name,mutate,fld", SGD_CASES, ids=[c[0] for c in SGD_CASES])
def test_sgd_broken_dialogues(shared_data, tmp_path, name, mutate, fld):
    file = _sgd_dir(shared_data, tmp_path, mutate)
    err = raises_then_skips(file)
    assert (err.index, err.record_id) == (1, "22_00001")
    assert re.fullmatch(fld, err.field)
