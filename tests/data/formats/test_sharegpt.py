"""The sharegpt reader on hand-written records."""

from __future__ import annotations

import json

from tests.data.formats.helpers import DELETE, write_records
from tl_lightning.data.sources import detect_format, read_trajectories, write_jsonl
from tl_lightning.records import Message, ToolCall


def test_sharegpt_with_tools_key_and_function_call(tmp_path):
    rec = {"conversations": [{"from": "human", "value": "weather in Paris?"},
                             {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
                             {"from": "observation", "value": "sunny"},
                             {"from": "gpt", "value": "It is sunny."}],
           "tools": json.dumps([{"name": "get_weather", "parameters": {"type": "object", "properties": {
               "city": {"type": "string"}}}}])}
    path = write_records(tmp_path / "sg.jsonl", [rec], jsonl=True)
    assert detect_format(path) == "sharegpt"
    (t,) = read_trajectories(path)
    assert t.messages[1].calls == (ToolCall("get_weather", {"city": "Paris"}),)
    assert t.messages[-1] == Message("assistant", "It is sunny.")
    write_jsonl([t], tmp_path / "n.jsonl")
    assert read_trajectories(tmp_path / "n.jsonl") == [t]


def good_record():
    return {"id": "sg-1", "conversations": [{"from": "human", "value": "go"},
                                            {"from": "gpt", "value": "Action: f\nAction Input: {\"x\": 1}"},
                                            {"from": "observation", "value": "ok"},
                                            {"from": "gpt", "value": "done"}],
            "tools": [{"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}]}


# (name, path into the record, value to put there, field the DataError must name)
BROKEN_RECORDS = [
    ("missing tool list", ["tools"], DELETE, "tools"),
    ("undeclared tool", ["conversations", 3, "value"], "Action: g\nAction Input: {}", "messages[3].calls[0].name"),
    ("non-dict arguments", ["conversations", 1, "value"], "Action: f\nAction Input: [1]", "conversations[1].value"),
    ("wrong type", ["conversations", 0, "value"], 3, "conversations[0].value"),
]
