"""The tl reader (the TL-Training authors' raw format): tools from Python signatures with
docstrings, python-form calls, the authors' README example, and the paper rendering read back."""

from __future__ import annotations

import json

import pytest

from tests.data.formats.helpers import write_records
from tl_lightning.data.sources import detect_format, read_trajectories, write_jsonl
from tl_lightning.records import DataError, Message, ToolCall

TL_SYSTEM = ('Function:\ndef search_advice(query:str, limit:int = None):\n    """\n    Search advice slips.\n\n'
             '    Args:\n        query (string): The search query.\n        limit (integer): At most this many.\n'
             '    """\n\nFunction:\ndef finish(answer:str):\n    """\n    Finish the task.\n\n    Args:\n'
             '        answer (string): Your answer.\n    """\n\n')
TL_RECORD = [{"role": "System", "content": TL_SYSTEM},
             {"role": "User", "content": "Advice about love?"},
             {"role": "Assistant", "content": "search_advice(query = 'love') "},
             {"role": "Output", "content": "{\"slips\": []}"},
             {"role": "Assistant", "content": "finish(answer=\"none found\")"}]


def test_tl_format_parses_signature_tools_and_python_calls(tmp_path):
    path = write_records(tmp_path / "tl.json", [TL_RECORD, {"conversations": TL_RECORD, "id": "x"}])
    assert detect_format(path) == "tl"
    first, second = read_trajectories(path)
    assert first.tool_names == ["search_advice", "finish"]
    spec = first.tool("search_advice")
    assert spec.description == "Search advice slips."
    assert spec.parameters == {"type": "object", "required": ["query"], "properties": {
        "query": {"type": "string", "description": "The search query."},
        "limit": {"type": "integer", "description": "At most this many."}}}
    assert [m.role for m in first.messages] == ["user", "assistant", "tool", "assistant"]
    assert first.messages[1].calls == (ToolCall("search_advice", {"query": "love"}),)
    assert second.id == "x" and (second.tools, second.messages) == (first.tools, first.messages)
    write_jsonl([first, second], tmp_path / "n.jsonl")
    assert read_trajectories(tmp_path / "n.jsonl") == [first, second]


# The inference example of the TL-Training README (the authors' raw format), verbatim.
README_EXAMPLE = [
    {"role": "System", "content": "Function:\ndef random_advice():\n    \"\"\"\n    Returns a random advice slip as a slip "
     "object.\n    \"\"\"\n\nFunction:\ndef advice_by_id(slip_id:str):\n    \"\"\"\n    If an advice slip is found with the "
     "corresponding {slip_id}, a slip object is returned.\n\n    Args:\n        slip_id (string): The unique ID of this "
     "advice slip.\n    \"\"\"\n\nFunction:\ndef search_advice(query:str):\n    \"\"\"\n    If an advice slip is found, "
     "containing the corresponding search term in {query}, an array of slip objects is returned inside a search "
     "object.\n\n    Args:\n        query (string): The search query provided.\n    \"\"\"\n\nFunction:\ndef "
     "ask_to_user(question:str):\n    \"\"\"\n    You can ask user for guidance when you think you need more "
     "information to handle the task, but you should use this tool as less as you can.\n\n    Args:\n        question "
     "(string): The question you want to ask to user.\n    \"\"\"\n\nFunction:\ndef finish(answer:str):\n    \"\"\"\n"
     "    Finish the task and give your answer.\n\n    Args:\n        answer (string): Your answer for the task.\n"
     "    \"\"\"\n\n"},
    {"role": "User", "content": "Could you give me some advice about 'love'?"},
    {"role": "Assistant", "content": "search_advice(query = 'love') "},
    {"role": "Output", "content": "..."},
]


def test_tl_readme_example(tmp_path):
    (t,) = read_trajectories(write_records(tmp_path / "readme.json", [README_EXAMPLE]))
    assert t.tool_names == ["random_advice", "advice_by_id", "search_advice", "ask_to_user", "finish"]
    assert t.tool("random_advice").parameters == {"type": "object", "properties": {}, "required": []}
    assert t.tool("advice_by_id").description == (
        "If an advice slip is found with the corresponding {slip_id}, a slip object is returned.")
    assert t.tool("advice_by_id").properties == {
        "slip_id": {"type": "string", "description": "The unique ID of this advice slip."}}
    assert [m.role for m in t.messages] == ["user", "assistant", "tool"]
    assert t.messages[1].calls == (ToolCall("search_advice", {"query": "love"}),)
    assert t.meta["system_prompt"] == README_EXAMPLE[0]["content"]


def test_tl_reads_back_the_paper_rendering_of_real_tools(loaded, tmp_path):
    """render.py writes tools in the paper's format; the tl reader must parse them back."""
    from tl_lightning.data.render import format_tools_codellama

    trajs = loaded["Seal-Tools/Seal-Tools_Dataset/dev.jsonl"][0][:50] + loaded["RoTBench/First_Turn/clean.json"][0][:20]
    records = [[{"role": "System", "content": format_tools_codellama(t.tools)}, {"role": "User", "content": "q"}]
               for t in trajs]
    back = read_trajectories(write_records(tmp_path / "tl.json", records), format="tl")
    assert [b.tools for b in back] == [t.tools for t in trajs]


def test_prose_is_text_and_a_broken_call_is_an_error(tmp_path):
    answers = ["Paris (the capital) is sunny.", "Here it is:\n{\"a\": 1}", "Done. finish(answer='x') maybe"]
    records = [[{"role": "System", "content": TL_SYSTEM}, {"role": "User", "content": "q"},
                {"role": "Assistant", "content": text}] for text in answers]
    trajs = read_trajectories(write_records(tmp_path / "tl.json", records))
    assert [t.messages[-1] for t in trajs] == [Message("assistant", text) for text in answers]
    broken = [[{"role": "System", "content": TL_SYSTEM}, {"role": "User", "content": "q"},
               {"role": "Assistant", "content": "finish(answer='x'"}]]
    with pytest.raises(DataError, match="cannot parse the call"):
        read_trajectories(write_records(tmp_path / "bad.json", broken))


def good_record():
    return {"id": "tl-1", "conversations": json.loads(json.dumps(TL_RECORD))}


# (name, path into the record, value to put there, field the DataError must name)
BROKEN_RECORDS = [
    ("missing tool list", ["conversations", 0, "content"], "You are helpful.", "conversations[0].content"),
    ("undeclared tool", ["conversations", 4, "content"], "stop(answer='x')", "messages[3].calls[0].name"),
    ("non-dict arguments", ["conversations", 2, "content"], "search_advice('love', 3", "conversations[2].content"),
    ("wrong type", ["conversations", 1, "content"], ["a"], "conversations[1].content"),
]
