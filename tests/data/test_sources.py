"""Readers: every shared/data source loads with the PROVENANCE.md counts, round-trips through the
normalized JSONL, and every format turns broken records into located DataErrors (or skips and
counts them)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tl_lightning.data.sources import (

    detect_format,
    read_trajectories,
    read_trajectories_with_report,
    write_jsonl,
)
from tl_lightning.bfcl_answers import bfcl_reference_calls
from tl_lightning.data.formats import FORMATS
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


@pytest.fixture(scope="module")
def sgd(shared_data):
    """The SGD subset is ~20 MB: read it once."""
    return read_trajectories_with_report(shared_data / "SGD" / "train")


@pytest.fixture(scope="module")
def loaded(shared_data):
    """Every source of SOURCES, read once: {relative path: (trajectories, report)}."""
    return {rel: read_trajectories_with_report(shared_data / rel) for rel, _, _ in SOURCES}


def _all_calls(trajs):
    return [c for t in trajs for m in t.messages for calls in m.acceptable() for c in calls]


# ---------------------------------------------------------------------------------------------
# real data


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


def test_sgd_loads_768_dialogues_with_2248_calls(sgd, shared_data):
    trajs, report = sgd
    assert detect_format(shared_data / "SGD/train") == "sgd"
    assert detect_format(shared_data / "SGD/train/dialogues_022.json") == "sgd"
    assert report.read == 768 and report.skipped == 0
    assert sum(len(m.calls) for t in trajs for m in t.messages) == 2248
    t = trajs[0]
    call_turn = next(i for i, m in enumerate(t.messages) if m.calls)
    assert t.messages[call_turn + 1].role == "tool" and json.loads(t.messages[call_turn + 1].content)
    assert t.messages[call_turn + 2].role == "assistant" and not t.messages[call_turn + 2].calls


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


def test_toolalpaca_gold_steps_and_repairs(loaded):
    real, _ = loaded["ToolAlpaca/data/eval_real.json"]
    t = next(t for t in real if t.id == "Nager.Date-0")
    assert t.messages[-1].calls == (ToolCall("PublicHolidayIsTodayPublicHoliday", {"countryCode": "CN"}),)
    assert t.tool("LongWeekendLongWeekend").required == ["year", "countryCode"]
    assert t.tool("LongWeekendLongWeekend").properties["year"]["type"] == "integer"
    cb = next(t for t in real if t.id == "CurrencyBeacon-4")
    assert cb.meta["repaired_inputs"][0]["step"] == 0
    assert cb.messages[-1].calls[0].arguments["symbols"] == ["EUR", "GBP"]
    # AviationAPI's gold calls operations only its OpenAPI document describes
    aviation = next(t for t in real if t.id == "AviationAPI-6")
    assert aviation.messages[-1].calls[0].name == "vatsim_pilots_get" and "vatsim_pilots_get" in aviation.tool_names
    described = {t.id: [n for n in t.tool_names if n != "getDetails"] for t in real}
    assert described["AviationAPI-0"][5:] == ["preferred-routes_search_get", "vatsim_pilots_get",
                                              "vatsim_controllers_get", "weather_metar_get", "weather_taf_get"]
    assert described["Nager.Date-0"] == ["CountryCountryInfo", "CountryAvailableCountries", "LongWeekendLongWeekend",
                                         "PublicHolidayPublicHolidaysV3", "PublicHolidayIsTodayPublicHoliday",
                                         "PublicHolidayNextPublicHolidays", "PublicHolidayNextPublicHolidaysWorldwide",
                                         "VersionGetVersion"]
    simulated, _ = loaded["ToolAlpaca/data/eval_simulated.json"]
    assert all(t.tool_names[-1] == "getDetails" for t in real + simulated)
    repaired = [t for t in simulated if t.meta["repaired_inputs"]]
    assert len(repaired) == 30  # 32 repaired steps
    ani = next(t for t in simulated if t.id == "AniAPI-0")
    assert ani.meta["gold_steps"][1]["arguments"] == {"animeId": "${animeId from searchAnime}"}
    assert sum(len(t.meta["repaired_inputs"]) for t in real + simulated) == 36


def test_bfcl_canonical_gold_and_ground_truth(loaded):
    simple, _ = loaded["BFCL_v3/BFCL_v3_simple.json"]
    t = simple[0]
    assert t.tools[0].parameters["type"] == "object"
    # "unit": ["units", ""] is optional and may be omitted -> left out
    assert t.messages[-1].calls == (ToolCall("calculate_triangle_area", {"base": 10, "height": 5}),)
    assert t.meta["bfcl_ground_truth"][0]["calculate_triangle_area"]["unit"] == ["units", ""]
    by_id = {t.id: t for t in simple}
    # a dict value's acceptable lists are unwrapped: {"department": "Science"}, not ["Science"]
    assert by_id["simple_89"].messages[-1].calls[0].arguments["conditions"] == {
        "department": "Science", "school": "Bluebird High School"}
    # a REQUIRED parameter whose first acceptable value is "" gets the next one
    assert by_id["simple_200"].messages[-1].calls[0].arguments["fuel_efficiency"] == 25.0
    assert next(t for t in simple if t.id == "simple_363").meta["repaired_gold_names"] == {
        "find_closest": "restaurant_search.find_closest"}
    pm, _ = loaded["BFCL_v3/BFCL_v3_parallel_multiple.json"]
    gold = pm[3].messages[-1].calls  # "tolerance": [""] is omitted, ["", 0.1] too
    assert [c.arguments for c in gold] == [{"perimeter": 14, "area": 15, "property": "width"},
                                           {"perimeter": 14, "area": 15, "property": "length"}]
    # "type": ["credit", ""] names no parameter of the schema: left out
    assert next(t for t in pm if t.id == "parallel_multiple_26").messages[-1].calls[1] == ToolCall(
        "bank.calculate_balance", {"account": "00125648"})
    exec_multiple, _ = loaded["BFCL_v3/unused_datasets/question/BFCL_v3_exec_multiple.json"]
    assert exec_multiple[0].messages[-1].calls[0].arguments["p"] == pytest.approx(1 / 6)
    assert exec_multiple[0].meta["bfcl_exec_ground_truth"] == ["calc_binomial_probability(n=20, k=5, p=1/6)"]
    assert exec_multiple[0].meta["bfcl_ground_truth"] == [
        {"calc_binomial_probability": {"n": [20], "k": [5], "p": [pytest.approx(1 / 6)]}}]
    epm, _ = loaded["BFCL_v3/unused_datasets/question/BFCL_v3_exec_parallel_multiple.json"]
    mean = next(t for t in epm if t.id == "exec_parallel_multiple_18").messages[-1].calls[0]
    assert mean.name == "calculate_mean" and list(mean.arguments.values()) == [[1, 3, 4, 6, 8]]


@pytest.mark.parametrize("rel", [s[0] for s in SOURCES if s[0].startswith("BFCL_v3/BFCL_v3_")])
def test_bfcl_gold_calls_are_the_reference_calls_and_pass_bfcl(loaded, rel):
    """The reader's gold calls are ``bfcl_reference_calls`` of the acceptable-value lists, and
    BFCL's checker passes every one of them: TS = PI = CF = 100 on the four scored files."""
    from tl_lightning.calls import format_call
    from tl_lightning.metrics import ToolCallMetrics

    trajs, _ = loaded[rel]
    metric = ToolCallMetrics("bfcl")
    for t in trajs:
        calls = t.messages[-1].calls
        assert list(calls) == bfcl_reference_calls(t.meta["bfcl_ground_truth"], t.tools), t.id
        metric.update(["\n".join(format_call(c) for c in calls)], [t.messages[-1].acceptable()], [t.tools],
                      [t.meta["bfcl_ground_truth"]])
    assert {k: float(v) for k, v in metric.compute().items()} == {
        "ts": 100.0, "pi": 100.0, "cf": 100.0, "exact_call": 100.0, "mean_reward": 1.0}


def test_taubench_meta_and_tool_outputs(loaded):
    trajs, _ = loaded["tau-bench/historical_trajectories/gpt-4o-airline.json"]
    assert {t.meta["reward"] for t in trajs} == {0.0, 1.0} and sum(t.meta["reward"] for t in trajs) == 84
    outputs = [m for t in trajs for m in t.messages if m.role == "tool"]
    assert len(outputs) == 1164 and sum(m.content.startswith("Error:") for m in outputs) == 73
    assert len(trajs[0].tools) == 14


def test_sealtools_calls_and_schemas(loaded):
    trajs, _ = loaded["Seal-Tools/Seal-Tools_Dataset/dev.jsonl"]
    t = trajs[0]
    assert t.id == "dev-easy-0"
    assert t.messages[-1].calls == (ToolCall("getHealthWorkforce", {"location": "country", "occupation": "nurses"}),)
    assert t.tools[0].properties["location"]["type"] == "string"


@pytest.mark.parametrize("rel", [s[0] for s in SOURCES])
def test_normalized_jsonl_round_trip(loaded, tmp_path, rel):
    trajs, _ = loaded[rel]
    out = tmp_path / "norm.jsonl"
    assert write_jsonl(trajs, out) == len(trajs)
    back, report = read_trajectories_with_report(out)
    assert report.format == "openai"
    assert back == trajs
    assert [t.meta for t in back] == [t.meta for t in trajs]


def test_sgd_round_trip(sgd, tmp_path):
    trajs, _ = sgd
    write_jsonl(trajs, tmp_path / "sgd.jsonl")
    back = read_trajectories(tmp_path / "sgd.jsonl")
    assert back == trajs


# ---------------------------------------------------------------------------------------------
# the small formats (tl, sharegpt, openai) on hand-written records

TL_SYSTEM = ('Function:\ndef search_advice(query:str, limit:int = None):\n    """\n    Search advice slips.\n\n'
             '    Args:\n        query (string): The search query.\n        limit (integer): At most this many.\n'
             '    """\n\nFunction:\ndef finish(answer:str):\n    """\n    Finish the task.\n\n    Args:\n'
             '        answer (string): Your answer.\n    """\n\n')
TL_RECORD = [{"role": "System", "content": TL_SYSTEM},
             {"role": "User", "content": "Advice about love?"},
             {"role": "Assistant", "content": "search_advice(query = 'love') "},
             {"role": "Output", "content": "{\"slips\": []}"},
             {"role": "Assistant", "content": "finish(answer=\"none found\")"}]


def _write(path: Path, records, jsonl: bool = False) -> Path:
    text = "\n".join(json.dumps(r) for r in records) if jsonl else json.dumps(records)
    path.write_text(text, encoding="utf-8")
    return path


def test_tl_format_parses_signature_tools_and_python_calls(tmp_path):
    path = _write(tmp_path / "tl.json", [TL_RECORD, {"conversations": TL_RECORD, "id": "x"}])
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
    (t,) = read_trajectories(_write(tmp_path / "readme.json", [README_EXAMPLE]))
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
    back = read_trajectories(_write(tmp_path / "tl.json", records), format="tl")
    assert [b.tools for b in back] == [t.tools for t in trajs]


def test_prose_is_text_and_a_broken_call_is_an_error(tmp_path):
    answers = ["Paris (the capital) is sunny.", "Here it is:\n{\"a\": 1}", "Done. finish(answer='x') maybe"]
    records = [[{"role": "System", "content": TL_SYSTEM}, {"role": "User", "content": "q"},
                {"role": "Assistant", "content": text}] for text in answers]
    trajs = read_trajectories(_write(tmp_path / "tl.json", records))
    assert [t.messages[-1] for t in trajs] == [Message("assistant", text) for text in answers]
    broken = [[{"role": "System", "content": TL_SYSTEM}, {"role": "User", "content": "q"},
               {"role": "Assistant", "content": "finish(answer='x'"}]]
    with pytest.raises(DataError, match="cannot parse the call"):
        read_trajectories(_write(tmp_path / "bad.json", broken))


def test_sharegpt_with_tools_key_and_function_call(tmp_path):
    rec = {"conversations": [{"from": "human", "value": "weather in Paris?"},
                             {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
                             {"from": "observation", "value": "sunny"},
                             {"from": "gpt", "value": "It is sunny."}],
           "tools": json.dumps([{"name": "get_weather", "parameters": {"type": "object", "properties": {
               "city": {"type": "string"}}}}])}
    path = _write(tmp_path / "sg.jsonl", [rec], jsonl=True)
    assert detect_format(path) == "sharegpt"
    (t,) = read_trajectories(path)
    assert t.messages[1].calls == (ToolCall("get_weather", {"city": "Paris"}),)
    assert t.messages[-1] == Message("assistant", "It is sunny.")
    write_jsonl([t], tmp_path / "n.jsonl")
    assert read_trajectories(tmp_path / "n.jsonl") == [t]


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
    as_list = read_trajectories(_write(tmp_path / "o.json", [OPENAI_RECORD]))
    as_lines = read_trajectories(_write(tmp_path / "o.jsonl", [OPENAI_RECORD], jsonl=True))
    assert as_list == as_lines
    (t,) = as_list
    assert t.messages[1].calls == (ToolCall("add", {"a": 1, "b": 2}),)
    assert t.messages[2].name == "add"  # named after the call its tool_call_id answers


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
        read_trajectories(_write(tmp_path / "o.json", [OPENAI_RECORD]), on_error="ignore")
    with pytest.raises(ValueError, match="unknown format"):
        read_trajectories(tmp_path / "o.json", format="csv")
    with pytest.raises(DataError, match="no such file"):
        read_trajectories(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------------
# broken records of the formats without side files: a good record factory per format and
# breakers (name, path into the record, value to put there, field the DataError must name)

DELETE = object()  # as a breaker value: remove the key


def _tl_good():
    return {"id": "tl-1", "conversations": json.loads(json.dumps(TL_RECORD))}


def _sharegpt_good():
    return {"id": "sg-1", "conversations": [{"from": "human", "value": "go"},
                                            {"from": "gpt", "value": "Action: f\nAction Input: {\"x\": 1}"},
                                            {"from": "observation", "value": "ok"},
                                            {"from": "gpt", "value": "done"}],
            "tools": [{"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}]}


def _rotbench_good():
    tools = [{"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}},
             {"name": "ask_to_user", "description": "", "parameters": {"type": "object", "properties": {}}},
             {"name": "finish", "description": "", "parameters": {"type": "object", "properties": {}}}]
    system = ("Desired format:\nThought: <t>\nAction: <tool>\nAction Input: <params>\n"
              f"you have access of the following tools:\n{json.dumps(tools)}\n\nLet's Begin!")
    return {"id": "Turn 1: q", "scenario": "TG", "conversations": [
        {"from": "system", "value": system}, {"from": "user", "value": "q"},
        {"from": "assistant", "value": ["Thought:\nAction: f\nAction Input: {\"x\": \"1\"}",
                                        "Thought:\nAction: finish\nAction Input: {\"answer\": \"a\"}"]}]}


def _openai_good():
    return json.loads(json.dumps(OPENAI_RECORD))


def _set(rec, path, value):
    """Set the value at ``path`` (keys/indices) of ``rec``; ``DELETE`` removes the key."""
    target = rec
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return rec


TEXT_FORMAT_CASES = {
    "openai": (_openai_good, [
        ("missing tool list", ["tools"], DELETE, "tools"),
        # a call answered by an output is history (records.py); an unanswered one must be declared
        ("undeclared tool", ["messages", 3], {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "mul", "arguments": {}}}]}, "messages[3].calls[0].name"),
        ("non-dict arguments", ["messages", 1, "tool_calls", 0, "function", "arguments"], "[1, 2]",
         "messages[1].tool_calls[0].function.arguments"),
        ("wrong type", ["messages", 0, "content"], 5, "messages[0].content"),
    ]),
    "tl": (_tl_good, [
        ("missing tool list", ["conversations", 0, "content"], "You are helpful.", "conversations[0].content"),
        ("undeclared tool", ["conversations", 4, "content"], "stop(answer='x')", "messages[3].calls[0].name"),
        ("non-dict arguments", ["conversations", 2, "content"], "search_advice('love', 3", "conversations[2].content"),
        ("wrong type", ["conversations", 1, "content"], ["a"], "conversations[1].content"),
    ]),
    "sharegpt": (_sharegpt_good, [
        ("missing tool list", ["tools"], DELETE, "tools"),
        ("undeclared tool", ["conversations", 3, "value"], "Action: g\nAction Input: {}", "messages[3].calls[0].name"),
        ("non-dict arguments", ["conversations", 1, "value"], "Action: f\nAction Input: [1]", "conversations[1].value"),
        ("wrong type", ["conversations", 0, "value"], 3, "conversations[0].value"),
    ]),
    "rotbench": (_rotbench_good, [
        ("missing tool list", ["conversations", 0, "value"], "Desired format: Action Input", "conversations[0].value"),
        ("undeclared tool", ["conversations", 2, "value", 1], "Action: nope\nAction Input: {}",
         "messages[1].alternatives[0][0].name"),
        ("non-dict arguments", ["conversations", 2, "value", 0], "Action: f\nAction Input: \"x\"",
         "conversations[2].value[0]"),
        ("wrong type", ["conversations", 2, "value"], [], "conversations[2].value"),
    ]),
}


def _case_ids(cases):
    return [f"{fmt}-{name}" for fmt, (_, breakers) in cases.items() for name, *_ in breakers]


def _cases(cases):
    return [(fmt, good, path, value, fld) for fmt, (good, breakers) in cases.items()
            for _, path, value, fld in breakers]


@pytest.mark.parametrize("fmt,good,path,value,fld", _cases(TEXT_FORMAT_CASES), ids=_case_ids(TEXT_FORMAT_CASES))
def test_broken_record_raises_located_error_and_skip_counts_it(tmp_path, fmt, good, path, value, fld):
    broken = _set(good(), path, value)
    file = _write(tmp_path / f"{fmt}.jsonl", [good(), broken, good()], jsonl=True)
    with pytest.raises(DataError) as err:
        read_trajectories(file, format=fmt)
    e = err.value
    assert (e.source, e.index, e.field) == (str(file), 1, fld)
    assert e.record_id == good()["id"] and str(file) in str(e)
    trajs, report = read_trajectories_with_report(file, format=fmt, on_error="skip")
    assert (len(trajs), report.read, report.skipped) == (2, 2, 1) and report.errors[0].index == 1


@pytest.mark.parametrize("fmt,good", [(f, g) for f, (g, _) in TEXT_FORMAT_CASES.items()])
def test_truncated_files(tmp_path, fmt, good):
    whole = json.dumps([good(), good()])
    json_file = tmp_path / f"{fmt}.json"
    json_file.write_text(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="invalid JSON") as err:
        read_trajectories(json_file, format=fmt, on_error="skip")  # no record to skip: the file fails
    assert err.value.source == str(json_file)
    lines = [json.dumps(good()), json.dumps(good())]
    jsonl_file = tmp_path / f"{fmt}.jsonl"
    jsonl_file.write_text(lines[0] + "\n" + lines[1][:40] + "\n")
    with pytest.raises(DataError, match="line 2"):
        read_trajectories(jsonl_file, format=fmt)
    trajs, report = read_trajectories_with_report(jsonl_file, format=fmt, on_error="skip")
    assert len(trajs) == 1 and report.skipped == 1


@pytest.mark.parametrize("fmt,good", [(f, g) for f, (g, _) in TEXT_FORMAT_CASES.items()])
def test_non_utf8_and_empty_files_are_data_errors(tmp_path, fmt, good):
    latin = tmp_path / f"{fmt}.json"
    latin.write_bytes(f'[{json.dumps(good())}, "caf\u00e9"]'.encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text") as err:
        read_trajectories(latin, format=fmt, on_error="skip")  # no record to skip: the file fails
    assert err.value.source == str(latin)
    for name, text in (("empty.json", "[]"), ("blank.json", ""), ("blank.jsonl", "\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match="no records"):
            read_trajectories(tmp_path / name, format=fmt)
    # records that were all skipped are reported, not an error
    only_bad = _write(tmp_path / "bad.jsonl", ["not a record"], jsonl=True)
    trajs, report = read_trajectories_with_report(only_bad, format=fmt, on_error="skip")
    assert trajs == [] and report.skipped == 1


# ---------------------------------------------------------------------------------------------
# broken records of the benchmark formats, written beside copies of their side files


def _copy(shared_data: Path, rel: str, tmp_path: Path) -> Path:
    dst = tmp_path / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_data / rel, dst)
    return dst


def _lines(path: Path, n: int) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:n]]


def _bfcl_files(shared_data, tmp_path, mutate):
    q = shared_data / "BFCL_v3/BFCL_v3_simple.json"
    a = shared_data / "BFCL_v3/possible_answer/BFCL_v3_simple.json"
    questions, answers = _lines(q, 3), _lines(a, 3)
    mutate(questions, answers)
    qf = _write(tmp_path / "BFCL_v3_simple.json", questions, jsonl=True)
    (tmp_path / "possible_answer").mkdir()
    lines = [r if isinstance(r, str) else json.dumps(r) for r in answers]  # a str: a line as written
    (tmp_path / "possible_answer" / "BFCL_v3_simple.json").write_text("\n".join(lines), encoding="utf-8")
    return qf


# question-side defects, and a question without any answer record: errors of that record
BFCL_CASES = [
    ("missing tool list", lambda q, a: q[1].pop("function"), "function"),
    ("wrong type", lambda q, a: q[1].update(question="hi"), "question"),
    ("no answer", lambda q, a: a[1].update(id="simple_999"), "id"),
]


def _raises_then_skips(path) -> DataError:
    """Read a file with one broken record among three: it raises (the error is returned for the
    location checks), and with on_error="skip" the other two load and the skip is counted."""
    with pytest.raises(DataError) as err:
        read_trajectories(path)
    trajs, report = read_trajectories_with_report(path, on_error="skip")
    assert len(trajs) == 2 and report.skipped == 1
    return err.value


@pytest.mark.parametrize("name,mutate,fld", BFCL_CASES, ids=[c[0] for c in BFCL_CASES])
def test_bfcl_broken_records(shared_data, tmp_path, name, mutate, fld):
    qf = _bfcl_files(shared_data, tmp_path, mutate)
    err = _raises_then_skips(qf)
    assert (err.index, err.record_id, err.field) == (1, "simple_1", fld)


def _two_functions(q, a):
    q[1]["function"].append(dict(q[1]["function"][0], name="math.gamma"))


# simple_1's answer is {"math.factorial": {"number": [5]}}; (name, mutate, what the reason names)
BFCL_MALFORMED_ANSWERS = [
    ("non-dict arguments", lambda q, a: a[1]["ground_truth"].__setitem__(0, {"math.factorial": [5]}),
     "possible_answer.ground_truth[0].math.factorial"),
    ("empty ground truth", lambda q, a: a[1].update(ground_truth=[]), "possible_answer.ground_truth"),
    ("undeclared function among several",
     lambda q, a: (_two_functions(q, a), a[1]["ground_truth"].__setitem__(0, {"nope": {"number": [5]}})),
     "'nope', which is not among the declared functions"),
    ("answer without id", lambda q, a: a[1].pop("id"), "record 1: an answer record must be an object"),
    ("answer line not JSON", lambda q, a: a.__setitem__(1, "BROKEN"), "record 1: invalid JSON on line 2"),
]


@pytest.mark.parametrize("name,mutate,reason", BFCL_MALFORMED_ANSWERS, ids=[c[0] for c in BFCL_MALFORMED_ANSWERS])
def test_bfcl_malformed_answer_makes_only_that_item_unscorable(shared_data, tmp_path, name, mutate, reason):
    """A broken answer record used to make the whole file unreadable (or its item an error); now
    the item is read with no gold call and ``bfcl_ground_truth = {"unscorable": why}``."""
    qf = _bfcl_files(shared_data, tmp_path, mutate)
    trajs = read_trajectories(qf)  # on_error="raise": nothing raises
    assert [t.id for t in trajs] == ["simple_0", "simple_1", "simple_2"]
    unscorable = trajs[1].meta["bfcl_ground_truth"]["unscorable"]
    assert reason in unscorable and "possible_answer" in unscorable
    assert trajs[1].messages[-1].calls == ()
    assert trajs[0].messages[-1].calls and trajs[2].messages[-1].calls
    assert isinstance(trajs[2].meta["bfcl_ground_truth"], list)


def test_bfcl_single_function_name_wins_when_reading(shared_data, tmp_path):
    """With one declared function, BFCL's simple checker takes the name from the declaration; the
    reader used to reject such an answer (a call to an undeclared tool)."""
    qf = _bfcl_files(shared_data, tmp_path,
                     lambda q, a: a[1]["ground_truth"].__setitem__(0, {"nope": {"number": [5]}}))
    t = read_trajectories(qf)[1]
    assert t.messages[-1].calls == (ToolCall("math.factorial", {"number": 5}),)
    assert t.meta["repaired_gold_names"] == {"nope": "math.factorial"}
    assert t.meta["bfcl_ground_truth"] == [{"nope": {"number": [5]}}]  # kept as given; the scorer maps it too


def _bfcl_category_file(shared_data, tmp_path, category: str, with_answers: bool) -> Path:
    """Three simple questions (and answers) renamed into ``category`` (ids ``<category>_<i>``)."""
    q = shared_data / "BFCL_v3/BFCL_v3_simple.json"
    a = shared_data / "BFCL_v3/possible_answer/BFCL_v3_simple.json"
    questions, answers = _lines(q, 3), _lines(a, 3)
    for i, record in enumerate(questions + answers):
        record["id"] = f"{category}_{i % 3}"
    name = f"BFCL_v3_{category}.json"
    qf = _write(tmp_path / name, questions, jsonl=True)
    if with_answers:
        (tmp_path / "possible_answer").mkdir()
        _write(tmp_path / "possible_answer" / name, answers, jsonl=True)
    return qf


@pytest.mark.parametrize("category", ["irrelevance", "live_irrelevance"])
def test_bfcl_irrelevance_items_expect_no_call(shared_data, tmp_path, category):
    qf = _bfcl_category_file(shared_data, tmp_path, category, with_answers=False)  # BFCL ships none
    trajs = read_trajectories(qf)
    assert len(trajs) == 3
    for t in trajs:
        assert t.meta["category"] == category and t.meta["bfcl_ground_truth"] == []
        assert t.messages[-1].role == "assistant" and t.messages[-1].calls == ()


@pytest.mark.parametrize("category", ["java", "javascript", "simple_java", "simple_javascript"])
def test_bfcl_java_and_javascript_categories_are_refused(shared_data, tmp_path, category):
    qf = _bfcl_category_file(shared_data, tmp_path, category, with_answers=True)
    with pytest.raises(DataError, match=f"category '{category}' is not supported.*Java/JavaScript type rules"):
        read_trajectories_with_report(qf, on_error="skip")


def test_bfcl_answers_are_found_or_named(shared_data, tmp_path):
    q = _copy(shared_data, "BFCL_v3/BFCL_v3_simple.json", tmp_path)
    with pytest.raises(DataError, match="answer file not found"):
        read_trajectories(q)
    a = shared_data / "BFCL_v3/possible_answer/BFCL_v3_simple.json"
    assert len(read_trajectories(q, answers_path=a)) == 400


def _toolalpaca_file(shared_data, tmp_path, mutate):
    apis = json.loads((shared_data / "ToolAlpaca/data/eval_real.json").read_text())[:2]
    mutate(apis)
    return _write(tmp_path / "eval_real.json", apis)


# (name, mutate, field, record id): a broken tool description loses all the API's instructions
# (one error, id = the API), a broken instruction only itself (id = API-instruction)
TOOLALPACA_CASES = [
    ("missing tool list", lambda apis: apis[0].pop("Function_Description"), "Function_Description", "Nager.Date"),
    ("undeclared tool", lambda apis: apis[0]["Golden_Answers"][1][0].update(Action="nope"),
     "messages[1].calls[0].name", "Nager.Date-1"),
    ("non-dict arguments", lambda apis: apis[0]["Golden_Answers"][1][0].update(Action_Input="[1]"),
     "Golden_Answers[1][0].Action_Input", "Nager.Date-1"),
    ("wrong type", lambda apis: apis[0]["Instructions"].__setitem__(1, 7), "Instructions[1]", "Nager.Date-1"),
]


@pytest.mark.parametrize("name,mutate,fld,rid", TOOLALPACA_CASES, ids=[c[0] for c in TOOLALPACA_CASES])
def test_toolalpaca_broken_records(shared_data, tmp_path, name, mutate, fld, rid):
    file = _toolalpaca_file(shared_data, tmp_path, mutate)
    with pytest.raises(DataError) as err:
        read_trajectories(file, format="toolalpaca")
    assert (err.value.index, err.value.record_id, err.value.field) == (0, rid, fld)
    trajs, report = read_trajectories_with_report(file, format="toolalpaca", on_error="skip")
    first, second = json.loads(file.read_text())
    lost = len(first["Instructions"]) if rid == "Nager.Date" else 1
    assert report.skipped == 1 and len(trajs) == len(first["Instructions"]) + len(second["Instructions"]) - lost


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
    err = _raises_then_skips(folder)
    assert err.source.endswith("B-level-1-1.jsonl") and err.index == 1
    if fld:
        assert err.field == fld


def test_apibank_missing_tool_list(shared_data, tmp_path):
    folder = _apibank_dir(shared_data, tmp_path, lambda lines: lines)
    (folder.parent.parent / "data" / "all_apis.csv").unlink()
    with pytest.raises(DataError, match="all_apis.csv not found"):
        read_trajectories(folder)
    assert len(read_trajectories(folder, tools_path=shared_data / "API-Bank/data/all_apis.csv")) == 3


def _sgd_dir(shared_data, tmp_path, mutate):
    dialogues = json.loads((shared_data / "SGD/train/dialogues_022.json").read_text())[:3]
    mutate(dialogues)
    folder = tmp_path / "train"
    folder.mkdir()
    shutil.copy(shared_data / "SGD/train/schema.json", folder)
    return _write(folder / "dialogues_022.json", dialogues)


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
    err = _raises_then_skips(file)
    assert (err.index, err.record_id) == (1, "22_00001")
    assert re.fullmatch(fld, err.field)


def _taubench_file(shared_data, tmp_path, mutate):
    trajs = json.loads((shared_data / "tau-bench/historical_trajectories/gpt-4o-airline.json").read_text())
    trajs = [t for t in trajs if any(m.get("tool_calls") for m in t["traj"])][:3]
    mutate(trajs)
    (tmp_path / "historical_trajectories").mkdir()
    shutil.copy(shared_data / "tau-bench/airline_tools.json", tmp_path)
    return _write(tmp_path / "historical_trajectories" / "gpt-4o-airline.json", trajs)


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
    err = _raises_then_skips(file)
    assert err.index == 1 and err.record_id == str(json.loads(file.read_text())[1]["task_id"])
    if fld:
        assert err.field.endswith(fld)


def test_taubench_missing_tool_list(shared_data, tmp_path):
    file = _taubench_file(shared_data, tmp_path, lambda t: None)
    (tmp_path / "airline_tools.json").unlink()
    with pytest.raises(DataError, match="tool schemas not found"):
        read_trajectories(file)


def _sealtools_file(shared_data, tmp_path, mutate):
    records = _lines(shared_data / "Seal-Tools/Seal-Tools_Dataset/dev.jsonl", 3)
    mutate(records)
    shutil.copy(shared_data / "Seal-Tools/Seal-Tools_Dataset/tool.jsonl", tmp_path)
    return _write(tmp_path / "dev.jsonl", records, jsonl=True)


SEALTOOLS_CASES = [
    ("undeclared tool", lambda r: r[1]["calling"][0].update(api="nope"), "calling[0].api"),
    ("non-dict arguments", lambda r: r[1]["calling"][0].update(parameters=["x"]), "calling[0].parameters"),
    ("wrong type", lambda r: r[1].update(query=1), "query"),
]


@pytest.mark.parametrize("name,mutate,fld", SEALTOOLS_CASES, ids=[c[0] for c in SEALTOOLS_CASES])
def test_sealtools_broken_records(shared_data, tmp_path, name, mutate, fld):
    file = _sealtools_file(shared_data, tmp_path, mutate)
    err = _raises_then_skips(file)
    assert (err.index, err.record_id, err.field) == (1, "dev-easy-1", fld)


def test_sealtools_missing_tool_list(shared_data, tmp_path):
    file = _sealtools_file(shared_data, tmp_path, lambda r: None)
    (tmp_path / "tool.jsonl").unlink()
    with pytest.raises(DataError, match="tool.jsonl not found"):
        read_trajectories(file)


@pytest.mark.parametrize("rel,fmt,side", [
    ("BFCL_v3/BFCL_v3_simple.json", "bfcl", "BFCL_v3/possible_answer"),
    ("ToolAlpaca/data/eval_real.json", "toolalpaca", None),
    ("tau-bench/historical_trajectories/gpt-4o-airline.json", "taubench", "tau-bench/airline_tools.json"),
    ("RoTBench/First_Turn/clean.json", "rotbench", None),
    ("SGD/train/dialogues_022.json", "sgd", "SGD/train/schema.json"),
    ("Seal-Tools/Seal-Tools_Dataset/dev.jsonl", "sealtools", "Seal-Tools/Seal-Tools_Dataset/tool.jsonl"),
])
def test_truncated_benchmark_file_names_the_file(shared_data, tmp_path, rel, fmt, side):
    src = (shared_data / rel).read_text(encoding="utf-8")
    dst = tmp_path / Path(rel).name
    dst.write_text(src[: len(src) // 3] if fmt != "bfcl" else src[:300], encoding="utf-8")
    if side and (shared_data / side).is_dir():
        shutil.copytree(shared_data / side, tmp_path / Path(side).name)
    elif side:
        shutil.copy(shared_data / side, tmp_path)
    with pytest.raises(DataError, match="invalid JSON") as err:
        read_trajectories(dst, format=fmt)
    assert err.value.source == str(dst)


def test_formats_registry_is_complete():
    assert set(FORMATS) >= {"openai", "tl", "sharegpt", "rotbench", "tooleyes", "toolalpaca", "bfcl",
                            "apibank", "sgd", "taubench", "sealtools"}
