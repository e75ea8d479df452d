"""The openai reader (also the normalized format) on hand-written records."""

from __future__ import annotations

import json

from tests.data.formats.helpers import DELETE, write_records
from tl_lightning.data.sources import read_trajectories
from tl_lightning.records import ToolCall

OPENAI_RECORD = {
    "id": "o1",
    "tools": [{"type": "function", "function": {"name": "add", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}],
    "messages": [{"role": "user", "content": "1+2?"},
                 {"role": "assistant", "content": None, "tool_calls": [
                     {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 1, \"b\": 2}"}}]},
                 {"role": "tool", "tool_call_id": "c1", "content": "3"},
                 {"role": "assistant", "content": "3"}],
}


def test_openai_reader_json_and_jsonl(tmp_path):
    as_list = read_trajectories(write_records(tmp_path / "o.json", [OPENAI_RECORD]))
    as_lines = read_trajectories(write_records(tmp_path / "o.jsonl", [OPENAI_RECORD], jsonl=True))
    assert as_list == as_lines
    (t,) = as_list
    assert t.messages[1].calls == (ToolCall("add", {"a": 1, "b": 2}),)
    assert t.messages[2].name == "add"  # named after the call its tool_call_id answers


def good_record():
    return json.loads(json.dumps(OPENAI_RECORD))


# (name, path into the record, value to put there, field the DataError must name)
BROKEN_RECORDS = [
    ("missing tool list", ["tools"], DELETE, "tools"),
    # a call answered by an output is history (records.py); an unanswered one must be declared
    ("undeclared tool", ["messages", 3], {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "mul", "arguments": {}}}]}, "messages[3].calls[0].name"),
    ("non-dict arguments", ["messages", 1, "tool_calls", 0, "function", "arguments"], "[1, 2]",
     "messages[1].tool_calls[0].function.arguments"),
    ("wrong type", ["messages", 0, "content"], 5, "messages[0].content"),
]
