"""The bfcl reader: gold calls are BFCL's reference calls and pass its checker; broken questions are
record errors, broken answers make only their item unscorable; irrelevance, Java/JavaScript."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data.formats.helpers import copy_shared, first_lines, raises_then_skips, write_records
from tests.data.test_sources import SOURCES
from tl_lightning.bfcl_answers import bfcl_reference_calls
from tl_lightning.calls import format_call
from tl_lightning.data.sources import read_trajectories, read_trajectories_with_report
from tl_lightning.metrics import ToolCallMetrics
from tl_lightning.records import DataError, ToolCall


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


def bfcl_files(shared_data, tmp_path, mutate):
    q = shared_data / "BFCL_v3/BFCL_v3_simple.json"
    a = shared_data / "BFCL_v3/possible_answer/BFCL_v3_simple.json"
    questions, answers = first_lines(q, 3), first_lines(a, 3)
    mutate(questions, answers)
    qf = write_records(tmp_path / "BFCL_v3_simple.json", questions, jsonl=True)
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


@pytest.mark.parametrize("name,mutate,fld", BFCL_CASES, ids=[c[0] for c in BFCL_CASES])
def test_bfcl_broken_records(shared_data, tmp_path, name, mutate, fld):
    qf = bfcl_files(shared_data, tmp_path, mutate)
    err = raises_then_skips(qf)
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
    qf = bfcl_files(shared_data, tmp_path, mutate)
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
    qf = bfcl_files(shared_data, tmp_path,
                    lambda q, a: a[1]["ground_truth"].__setitem__(0, {"nope": {"number": [5]}}))
    t = read_trajectories(qf)[1]
    assert t.messages[-1].calls == (ToolCall("math.factorial", {"number": 5}),)
    assert t.meta["repaired_gold_names"] == {"nope": "math.factorial"}
    assert t.meta["bfcl_ground_truth"] == [{"nope": {"number": [5]}}]  # kept as given; the scorer maps it too


def bfcl_category_file(shared_data, tmp_path, category: str, with_answers: bool) -> Path:
    """Three simple questions (and answers) renamed into ``category`` (ids ``<category>_<i>``)."""
    q = shared_data / "BFCL_v3/BFCL_v3_simple.json"
    a = shared_data / "BFCL_v3/possible_answer/BFCL_v3_simple.json"
    questions, answers = first_lines(q, 3), first_lines(a, 3)
    for i, record in enumerate(questions + answers):
        record["id"] = f"{category}_{i % 3}"
    name = f"BFCL_v3_{category}.json"
    qf = write_records(tmp_path / name, questions, jsonl=True)
    if with_answers:
        (tmp_path / "possible_answer").mkdir()
        write_records(tmp_path / "possible_answer" / name, answers, jsonl=True)
    return qf


@pytest.mark.parametrize("category", ["irrelevance", "live_irrelevance"])
def test_bfcl_irrelevance_items_expect_no_call(shared_data, tmp_path, category):
    qf = bfcl_category_file(shared_data, tmp_path, category, with_answers=False)  # BFCL ships none
    trajs = read_trajectories(qf)
    assert len(trajs) == 3
    for t in trajs:
        assert t.meta["category"] == category and t.meta["bfcl_ground_truth"] == []
        assert t.messages[-1].role == "assistant" and t.messages[-1].calls == ()


@pytest.mark.parametrize("category", ["java", "javascript", "simple_java", "simple_javascript"])
def test_bfcl_java_and_javascript_categories_are_refused(shared_data, tmp_path, category):
    qf = bfcl_category_file(shared_data, tmp_path, category, with_answers=True)
    with pytest.raises(DataError, match=f"category '{category}' is not supported.*Java/JavaScript type rules"):
        read_trajectories_with_report(qf, on_error="skip")


def test_bfcl_answers_are_found_or_named(shared_data, tmp_path):
    q = copy_shared(shared_data, "BFCL_v3/BFCL_v3_simple.json", tmp_path)
    with pytest.raises(DataError, match="answer file not found"):
        read_trajectories(q)
    a = shared_data / "BFCL_v3/possible_answer/BFCL_v3_simple.json"
    assert len(read_trajectories(q, answers_path=a)) == 400
