"""The rotbench reader: RoTBench's gold turns (calls plus alternatives), its failed calls, and
ToolEyes (raw records take their tools from the tool library)."""

from __future__ import annotations

import json

from tl_lightning.records import ToolCall


def test_rotbench_gold_is_calls_plus_alternatives(loaded):
    trajs, _ = loaded["RoTBench/First_Turn/clean.json"]
    t = trajs[0]
    assert t.meta["scenario"] == "TG" and "system_prompt" in t.meta
    assert [m.role for m in t.messages] == ["user", "assistant"]
    gold = t.messages[-1]
    assert gold.calls == (ToolCall("get_translation_nllb", {"input_text": "See you later", "tgt_lang": "jpn_Jpan",
                                                            "src_lang": "eng_Latn", "max_length": "None"}),)
    assert gold.alternatives[0] == (ToolCall("get_translation_baidu", {"text": "See you later", "tgt_lang": "jp"}),)
    assert t.tool_names[-2:] == ["ask_to_user", "finish"]
    # the Formula-1 prompts declare "drivers" twice: the first is kept, the second is in meta
    f1 = next(t for t in trajs if t.meta.get("duplicate_tools"))
    assert f1.tool_names.count("drivers") == 1 and f1.meta["duplicate_tools"][0]["name"] == "drivers"


def test_rotbench_third_turn_keeps_failed_calls_and_outputs(loaded):
    trajs, _ = loaded["RoTBench/Third_Turn/clean.json"]
    t = trajs[0]
    assert [m.role for m in t.messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert "missing 1 required positional argument" in t.messages[2].content


def test_tooleyes_raw_reads_tools_from_the_library(loaded):
    raw, _ = loaded["ToolEyes/Test_Data/scenario_data_raw.json"]
    processed, _ = loaded["ToolEyes/Test_Data/scenario_data_zero_processed.json"]
    assert raw[0].meta["path"] == "ToolEyes/Tool_Library/Random/Random"
    assert raw[0].tool_names == processed[0].tool_names
    assert any(t.meta.get("original_id") for t in processed)  # two queries repeat: ids made unique


def good_record():
    tools = [{"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}},
             {"name": "ask_to_user", "description": "", "parameters": {"type": "object", "properties": {}}},
             {"name": "finish", "description": "", "parameters": {"type": "object", "properties": {}}}]
    system = ("Desired format:\nThought: <t>\nAction: <tool>\nAction Input: <params>\n"
              f"you have access of the following tools:\n{json.dumps(tools)}\n\nLet's Begin!")
    return {"id": "Turn 1: q", "scenario": "TG", "conversations": [
        {"from": "system", "value": system}, {"from": "user", "value": "q"},
        {"from": "assistant", "value": ["Thought:\nAction: f\nAction Input: {\"x\": \"1\"}",
                                        "Thought:\nAction: finish\nAction Input: {\"answer\": \"a\"}"]}]}


# (name, path into the record, value to put there, field the DataError must name)
BROKEN_RECORDS = [
    ("missing tool list", ["conversations", 0, "value"], "Desired format: Action Input", "conversations[0].value"),
    ("undeclared tool", ["conversations", 2, "value", 1], "Action: nope\nAction Input: {}",
     "messages[1].alternatives[0][0].name"),
    ("non-dict arguments", ["conversations", 2, "value", 0], "Action: f\nAction Input: \"x\"",
     "conversations[2].value[0]"),
    ("wrong type", ["conversations", 2, "value"], [], "conversations[2].value"),
]
