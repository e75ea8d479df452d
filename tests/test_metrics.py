"""Each benchmark rule of tl_lightning.metrics pinned by hand-made cases (one pass, one fail)."""

from __future__ import annotations

import pytest
import torch

from tl_lightning.bfcl_answers import bfcl_answer_from_calls, bfcl_reference_calls
from tl_lightning.calls import format_call
from tl_lightning.metrics import (
    FAILED,
    PASSED,
    ItemScore,
    ToolCallMetrics,
    bfcl_normalize_string,
    item_category,
    score_bfcl,
    score_generic,
    score_item,
    score_rotbench,
    score_toolalpaca,
)
from tl_lightning.records import Message, ToolCall, ToolSpec

PASS = ItemScore(True, True, True)
TS_ONLY = ItemScore(True, False, False)
TS_PI = ItemScore(True, True, False)

# RoTBench lists always end with ask_to_user, finish; the names may be scrambled in noisy variants.
ROT_TOOLS = (ToolSpec("translate"), ToolSpec("search"), ToolSpec("ask_to_user"), ToolSpec("finish"))
TRANSLATE = ToolCall("translate", {"text": "See you", "tgt": "ja", "max_length": "None"})


def react(name: str, args_json: str) -> str:
    return f"Thought: ok\nAction: {name}\nAction Input: {args_json}"


# ------------------------------------------------------------------ rotbench


def test_rotbench_exact_react_passes():
    pred = react("translate", '{"text": "See you", "tgt": "ja", "max_length": "100"}')
    assert score_rotbench(pred, [TRANSLATE], ROT_TOOLS) == PASS


def test_rotbench_reads_any_rendering():
    pred = 'translate(text="See you", tgt="ja", max_length="None")'
    assert score_rotbench(pred, [TRANSLATE], ROT_TOOLS) == PASS
    pred = '<tool_call>\n{"name": "translate", "arguments": {"text": "See you", "tgt": "ja", "max_length": "x"}}\n</tool_call>'
    assert score_rotbench(pred, [TRANSLATE], ROT_TOOLS) == PASS


@pytest.mark.parametrize("pred", ["I would translate it.", 'Action: translate\nAction Input: {"text": ',
                                  react("translate", "{}"), "translate()"])
def test_rotbench_unparsable_or_empty_arguments_fail_all(pred):
    assert score_rotbench(pred, [TRANSLATE], ROT_TOOLS) == FAILED


def test_rotbench_empty_gold_arguments_cannot_be_matched():
    gold = ToolCall("search", {})
    assert score_rotbench(react("search", "{}"), [gold], ROT_TOOLS) == FAILED


def test_rotbench_ts_needs_the_same_name():
    assert score_rotbench(react("search", '{"text": "See you"}'), [TRANSLATE], ROT_TOOLS) == FAILED


def test_rotbench_any_candidate_counts():
    other = ToolCall("search", {"q": "see you in japanese"})
    pred = react("search", '{"q": "see you in japanese"}')
    assert score_rotbench(pred, [TRANSLATE, other], ROT_TOOLS) == PASS
    # best level over candidates: keys of the second candidate, name of both
    pred = react("translate", '{"text": "See you", "tgt": "ja"}')
    assert score_rotbench(pred, [TRANSLATE, ToolCall("translate", {"text": "x", "tgt": "ja"})],
                          ROT_TOOLS) == TS_PI


def test_rotbench_pi_needs_exact_key_set():
    missing = react("translate", '{"text": "See you", "tgt": "ja"}')
    extra = react("translate", '{"text": "See you", "tgt": "ja", "max_length": "5", "src": "en"}')
    assert score_rotbench(missing, [TRANSLATE], ROT_TOOLS) == TS_ONLY
    assert score_rotbench(extra, [TRANSLATE], ROT_TOOLS) == TS_ONLY


def test_rotbench_cf_compares_values_with_types():
    wrong = react("translate", '{"text": "See ya", "tgt": "ja", "max_length": "5"}')
    assert score_rotbench(wrong, [TRANSLATE], ROT_TOOLS) == TS_PI
    gold = ToolCall("search", {"q": "x", "n": 5})
    assert score_rotbench(react("search", '{"q": "x", "n": "5"}'), [gold], ROT_TOOLS) == TS_PI
    assert score_rotbench(react("search", '{"q": "x", "n": 5}'), [gold], ROT_TOOLS) == PASS
    assert score_rotbench(react("search", '{"q": "x", "n": 5.0}'), [gold], ROT_TOOLS) == PASS  # Python ==


def test_rotbench_none_string_is_ignored_only_when_gold_says_so():
    gold = ToolCall("search", {"q": "x", "n": "3"})
    assert score_rotbench(react("search", '{"q": "x", "n": "None"}'), [gold], ROT_TOOLS) == TS_PI


def test_rotbench_last_two_tools_by_position_skip_content():
    tools = (ToolSpec("translate"), ToolSpec("ask_user_zz"), ToolSpec("done_zz"))
    ask = ToolCall("ask_user_zz", {"question": "Which language?"})
    pred = react("ask_user_zz", '{"question": "What language do you want?"}')
    assert score_rotbench(pred, [ask], tools) == PASS
    # not among the last two: content compared
    early = (ToolSpec("ask_user_zz"), ToolSpec("translate"), ToolSpec("done_zz"))
    assert score_rotbench(pred, [ask], early) == TS_PI
    # the skip does not excuse wrong keys
    assert score_rotbench(react("ask_user_zz", '{"q": "Which?"}'), [ask], tools) == TS_ONLY


def test_rotbench_tools_named_finish_or_ask_to_user_skip_content_wherever_they_stand():
    # the script renames the last two tools to finish / ask_to_user, then skips the values of
    # candidates so NAMED: a tool with one of those names skips them even when not among the last two
    tools = (ToolSpec("ask_to_user"), ToolSpec("finish"), ToolSpec("translate"), ToolSpec("search"))
    ask = ToolCall("ask_to_user", {"question": "Which language?"})
    done = ToolCall("finish", {"answer": "sayonara"})
    assert score_rotbench(react("ask_to_user", '{"question": "What language?"}'), [ask], tools) == PASS
    assert score_rotbench(react("finish", '{"answer": "bye"}'), [done], tools) == PASS
    assert score_rotbench(react("finish", '{"text": "bye"}'), [done], tools) == TS_ONLY  # keys still count
    # ... and the position half holds for the tools that stand last, whatever their names
    search = ToolCall("search", {"q": "x"})
    assert score_rotbench(react("search", '{"q": "y"}'), [search], tools) == PASS
    assert score_toolalpaca(react("finish", '{"answer": "bye"}'), [done], tools) == TS_PI  # not ToolAlpaca's rule


def test_rotbench_none_deletion_quirk_is_off_by_default_and_reproducible():
    # RoTBench First_Turn/clean "Danish translation for these words: cat, dog, ...": the script
    # deletes max_length ("None" in gold) from the prediction while checking the "cat" candidate, so
    # the exact "dog" candidate then has a key the prediction no longer has.
    cat = ToolCall("translate", {"text": "cat", "tgt": "da", "max_length": "None"})
    dog = ToolCall("translate", {"text": "dog", "tgt": "da", "max_length": "None"})
    pred = react("translate", '{"text": "dog", "tgt": "da", "max_length": "100"}')
    assert score_rotbench(pred, [cat, dog], ROT_TOOLS) == PASS
    assert score_rotbench(pred, [cat, dog], ROT_TOOLS, none_deletion_carries_over=True) == TS_PI
    assert score_rotbench(pred, [dog, cat], ROT_TOOLS, none_deletion_carries_over=True) == PASS  # order decides
    # the other way round: a prediction with an extra key passes a later candidate without it
    with_key, without = ToolCall("search", {"q": "x", "n": "None"}), ToolCall("search", {"q": "y"})
    extra = react("search", '{"q": "y", "n": "5"}')
    assert score_rotbench(extra, [with_key, without], ROT_TOOLS) == TS_PI
    assert score_rotbench(extra, [with_key, without], ROT_TOOLS, none_deletion_carries_over=True) == PASS
    metric = ToolCallMetrics("rotbench", none_deletion_carries_over=True)
    metric.update([pred], [[cat, dog]], [ROT_TOOLS])
    assert metric.compute()["cf"].item() == 0.0


def test_rotbench_literal_finish_matches_the_renamed_last_tool():
    tools = (ToolSpec("translate"), ToolSpec("ask_user_zz"), ToolSpec("done_zz"))
    gold = ToolCall("done_zz", {"answer": "sayonara"})
    assert score_rotbench(react("finish", '{"answer": "bye"}'), [gold], tools) == PASS
    not_last = (ToolSpec("done_zz"), ToolSpec("ask_user_zz"), ToolSpec("translate"))
    assert score_rotbench(react("finish", '{"answer": "bye"}'), [gold], not_last) == FAILED


def test_rotbench_accepts_message_acceptable_call_sets():
    acceptable = ((TRANSLATE,), (ToolCall("search", {"q": "x"}),))
    assert score_item("rotbench", react("search", '{"q": "x"}'), acceptable, ROT_TOOLS) == PASS


# ------------------------------------------------------------------ toolalpaca


def test_toolalpaca_compares_content_of_the_last_tools():
    tools = (ToolSpec("getHolidays"), ToolSpec("getCountries"), ToolSpec("getVersion"))
    gold = ToolCall("getVersion", {"format": "json"})
    assert score_toolalpaca(react("getVersion", '{"format": "xml"}'), [gold], tools) == TS_PI
    assert score_toolalpaca(react("getVersion", '{"format": "json"}'), [gold], tools) == PASS
    assert score_rotbench(react("getVersion", '{"format": "xml"}'), [gold], tools) == PASS


def test_toolalpaca_scores_calls_without_arguments():
    tools = (ToolSpec("getAllFruits"), ToolSpec("getFruit"))
    gold = ToolCall("getAllFruits", {})
    assert score_toolalpaca("getAllFruits()", [gold], tools) == PASS
    assert score_toolalpaca("getFruit()", [gold], tools) == FAILED
    assert score_toolalpaca('getAllFruits(name="apple")', [gold], tools) == TS_ONLY
    assert score_rotbench("getAllFruits()", [gold], tools) == FAILED


# ------------------------------------------------------------------ bfcl


def bfcl_tool(name: str, properties: dict, required: list[str]) -> ToolSpec:
    return ToolSpec(name, "", {"type": "dict", "properties": properties, "required": required})


AREA = bfcl_tool("calc.area", {"base": {"type": "integer"}, "height": {"type": "float"},
                               "unit": {"type": "string"}}, ["base", "height"])
AREA_ANSWER = [{"calc.area": {"base": [10], "height": [5.0], "unit": ["square meters", ""]}}]


def test_bfcl_exact_call_passes_and_optional_may_be_omitted():
    assert score_bfcl('calc.area(base=10, height=5.0, unit="square meters")', AREA_ANSWER, [AREA]) == PASS
    assert score_bfcl("calc.area(base=10, height=5.0)", AREA_ANSWER, [AREA]) == PASS


def test_bfcl_wrong_function_name_fails_all():
    assert score_bfcl("calc.volume(base=10, height=5.0)", AREA_ANSWER, [AREA]) == FAILED


def test_bfcl_unparsable_fails_all():
    assert score_bfcl("The area is 25.", AREA_ANSWER, [AREA]) == FAILED


def test_bfcl_missing_required_parameter():
    assert score_bfcl("calc.area(base=10)", AREA_ANSWER, [AREA]) == TS_ONLY


def test_bfcl_parameter_outside_schema_or_answer():
    assert score_bfcl("calc.area(base=10, height=5.0, colour='red')", AREA_ANSWER, [AREA]) == TS_ONLY
    schema_only = [{"calc.area": {"base": [10], "height": [5.0]}}]  # unit in schema, not in answer
    assert score_bfcl("calc.area(base=10, height=5.0, unit='m')", schema_only, [AREA]) == TS_ONLY


def test_bfcl_answer_parameter_without_empty_marker_is_needed():
    answer = [{"calc.area": {"base": [10], "height": [5.0], "unit": ["m"]}}]
    assert score_bfcl("calc.area(base=10, height=5.0)", answer, [AREA]) == TS_ONLY
    assert score_bfcl("calc.area(base=10, height=5.0, unit='m')", answer, [AREA]) == PASS


def test_bfcl_types_with_int_accepted_for_float():
    assert score_bfcl("calc.area(base=10, height=5)", AREA_ANSWER, [AREA]) == PASS
    assert score_bfcl("calc.area(base=10.0, height=5.0)", AREA_ANSWER, [AREA]) == TS_PI
    assert score_bfcl('calc.area(base="10", height=5.0)', AREA_ANSWER, [AREA]) == TS_PI
    assert score_bfcl("calc.area(base=True, height=5.0)", [{"calc.area": {"base": [1], "height": [5.0]}}],
                      [AREA]) == TS_PI


def test_bfcl_value_must_be_in_acceptable_list():
    answer = [{"calc.area": {"base": [10, 12], "height": [5.0]}}]
    assert score_bfcl("calc.area(base=12, height=5.0)", answer, [AREA]) == PASS
    assert score_bfcl("calc.area(base=11, height=5.0)", answer, [AREA]) == TS_PI


def test_bfcl_string_normalisation():
    assert bfcl_normalize_string("New York, NY") == "newyorkny"
    assert bfcl_normalize_string("it's_A-b.c/d*e^f") == 'it"sabcdef'
    assert score_bfcl("calc.area(base=10, height=5.0, unit='Square-Meters.')", AREA_ANSWER, [AREA]) == PASS
    assert score_bfcl("calc.area(base=10, height=5.0, unit='square feet')", AREA_ANSWER, [AREA]) == TS_PI


def test_bfcl_list_and_dict_values():
    tool = bfcl_tool("f", {"xs": {"type": "array", "items": {"type": "string"}},
                           "opts": {"type": "dict"}}, ["xs"])
    answer = [{"f": {"xs": [["New York", "LA"]], "opts": [{"mode": ["fast"], "depth": [2, ""]}, ""]}}]
    assert score_bfcl("f(xs=['new york', 'L.A.'], opts={'mode': 'FAST'})", answer, [tool]) == PASS
    assert score_bfcl("f(xs=['LA', 'New York'])", answer, [tool]) == TS_PI  # order matters in lists
    assert score_bfcl("f(xs=['New York', 'LA'], opts={'mode': 'slow'})", answer, [tool]) == TS_PI
    assert score_bfcl("f(xs=[1, 2])", [{"f": {"xs": [["a", "b"]], "opts": [""]}}], [tool]) == TS_PI


def test_bfcl_simple_needs_exactly_one_call():
    pred = "[calc.area(base=10, height=5.0), calc.area(base=10, height=5.0)]"
    assert score_bfcl(pred, AREA_ANSWER, [AREA]) == FAILED


def test_bfcl_parallel_calls_match_in_any_order():
    play = bfcl_tool("play", {"artist": {"type": "string"}, "minutes": {"type": "integer"}}, ["artist", "minutes"])
    answer = [{"play": {"artist": ["Taylor Swift"], "minutes": [20]}},
              {"play": {"artist": ["Maroon 5"], "minutes": [15]}}]
    swapped = "[play(artist='Maroon 5', minutes=15), play(artist='Taylor Swift', minutes=20)]"
    assert score_bfcl(swapped, answer, [play]) == PASS
    crossed = "[play(artist='Maroon 5', minutes=20), play(artist='Taylor Swift', minutes=15)]"
    assert score_bfcl(crossed, answer, [play]) == TS_PI
    assert score_bfcl("play(artist='Maroon 5', minutes=15)", answer, [play]) == FAILED


def test_bfcl_parallel_multiple_needs_the_right_function_set():
    f, g = bfcl_tool("f", {"a": {"type": "integer"}}, ["a"]), bfcl_tool("g", {"b": {"type": "integer"}}, ["b"])
    answer = [{"f": {"a": [1]}}, {"g": {"b": [2]}}]
    assert score_bfcl("g(b=2)\nf(a=1)", answer, [f, g]) == PASS
    assert score_bfcl("f(a=1)\nf(a=1)", answer, [f, g]) == FAILED
    assert score_bfcl("g(a=2)\nf(a=1)", answer, [f, g]) == TS_ONLY


def test_bfcl_matching_is_not_greedy():
    # prediction 0 fits both expected calls, prediction 1 only the first: a greedy pass that
    # gives prediction 0 to expected 0 would fail; a perfect matching exists.
    f = bfcl_tool("f", {"a": {"type": "integer"}}, ["a"])
    answer = [{"f": {"a": [1, 2]}}, {"f": {"a": [1]}}]
    assert score_bfcl("f(a=1)\nf(a=2)", answer, [f]) == PASS


def test_bfcl_lone_function_names_the_expected_call():
    # BFCL simple_363: the answer says find_closest, the only function is restaurant.find_closest
    tool = bfcl_tool("restaurant.find_closest", {"location": {"type": "string"}}, ["location"])
    answer = [{"find_closest": {"location": ["Boston"]}}]
    assert score_bfcl("restaurant.find_closest(location='Boston')", answer, [tool]) == PASS
    assert score_bfcl("find_closest(location='Boston')", answer, [tool]) == FAILED
    # with one function its name wins whatever the answer says (BFCL's simple checker)
    assert score_bfcl("restaurant.find_closest(location='Boston')", [{"nope": {"location": ["Boston"]}}],
                      [tool]) == PASS
    # among several, the one declared <module>.name, as the reader maps the gold call (bfcl_declared_name)
    two = [tool, bfcl_tool("other", {}, [])]
    assert score_bfcl("restaurant.find_closest(location='Boston')", answer, two) == PASS
    assert score_bfcl("restaurant.find_closest(location='Boston')", [{"nope": {"location": ["Boston"]}}],
                      two) == FAILED


def test_bfcl_empty_list_for_an_optional_list_parameter_passes():
    # BFCL's list_checker and list_dict_checker iterate each acceptable value: "" reads as []
    tool = bfcl_tool("f", {"xs": {"type": "array", "items": {"type": "string"}},
                           "rows": {"type": "array", "items": {"type": "dict"}}}, [])
    optional = [{"f": {"xs": [["a"], ""], "rows": [[{"n": [1]}], ""]}}]
    assert score_bfcl("f(xs=[], rows=[])", optional, [tool]) == PASS
    assert score_bfcl("f(xs=['a'], rows=[{'n': 1}])", optional, [tool]) == PASS
    assert score_bfcl("f(xs=['b'])", optional, [tool]) == TS_PI
    required = [{"f": {"xs": [["a"]], "rows": [[{"n": [1]}]]}}]
    assert score_bfcl("f(xs=[], rows=[{'n': 1}])", required, [tool]) == TS_PI
    assert score_bfcl("f(xs=['a'], rows=[])", required, [tool]) == TS_PI


def test_bfcl_irrelevance_abstaining_passes_any_call_fails():
    tool = bfcl_tool("calc.area", {"base": {"type": "integer"}}, ["base"])
    for abstain in ("I cannot compute that with the given tools.", "", "[]", "[{}]"):
        assert score_bfcl(abstain, [], [tool]) == PASS, abstain
    for call in ("calc.area(base=10)", "other(x=1)", '{"name": "calc.area", "arguments": {}}'):
        assert score_bfcl(call, [], [tool]) == FAILED, call
    # the same through score_item (no call set in gold) and the Metric
    assert score_item("bfcl", "No call needed.", ((),), [tool], []) == PASS
    assert score_item("bfcl", "calc.area(base=1)", ((),), [tool]) == FAILED
    metric = ToolCallMetrics("bfcl")
    metric.update(["no", "calc.area(base=1)"], [((),), ((),)], [[tool], [tool]], [[], []])
    assert metric.compute()["cf"].item() == pytest.approx(50.0)


def test_bfcl_unscorable_item_fails_every_prediction():
    unscorable = {"unscorable": "file a.json, record 1: invalid JSON on line 2"}
    assert score_bfcl("calc.area(base=10, height=5.0)", unscorable, [AREA]) == FAILED
    assert score_bfcl("no call", unscorable, [AREA]) == FAILED
    gold = ((ToolCall("calc.area", {"base": 10, "height": 5.0}),),)  # not used in its place
    assert score_item("bfcl", "calc.area(base=10, height=5.0)", gold, [AREA], unscorable) == FAILED


def test_bfcl_java_and_javascript_types_are_refused():
    tool = bfcl_tool("Utils.pad", {"text": {"type": "String"}, "width": {"type": "long"}}, ["text"])
    with pytest.raises(ValueError, match="'String' belongs to BFCL's Java/JavaScript categories"):
        score_bfcl('Utils.pad(text="abc")', [{"Utils.pad": {"text": ["abc"], "width": [""]}}], [tool])


def test_bfcl_reference_calls_pass_their_own_answer():
    tool = bfcl_tool("f", {"a": {"type": "float"}, "opt": {"type": "string"}, "req": {"type": "integer"},
                           "d": {"type": "dict"}, "rows": {"type": "array", "items": {"type": "dict"}}},
                     ["a", "req"])
    answer = [{"f": {"a": [2.5], "opt": ["", "x"], "req": ["", 3],
                     "d": [{"k": ["v", "w"], "maybe": ["", 1]}], "rows": [[{"n": [1]}, {"n": [2, 3]}]]}}]
    calls = bfcl_reference_calls(answer, [tool])
    # optional "" values left out, a required one filled in, acceptable lists unwrapped one level down
    assert calls == [ToolCall("f", {"a": 2.5, "req": 3, "d": {"k": "v", "maybe": 1},
                                    "rows": [{"n": 1}, {"n": 2}]})]
    assert score_bfcl(format_call(calls[0]), answer, [tool]) == PASS


def test_bfcl_exec_style_answer_from_calls():
    tool = bfcl_tool("binom", {"n": {"type": "integer"}, "p": {"type": "float"}}, ["n", "p"])
    answer = bfcl_answer_from_calls([ToolCall("binom", {"n": 20, "p": 0.6})])
    assert answer == [{"binom": {"n": [20], "p": [0.6]}}]
    assert score_bfcl("binom(n=20, p=0.6)", answer, [tool]) == PASS
    assert score_bfcl("binom(n=20, p=0.5)", answer, [tool]) == TS_PI
    gold = ((ToolCall("binom", {"n": 20, "p": 0.6}),),)
    assert score_item("bfcl", "binom(n=20, p=0.6)", gold, [tool]) == PASS


# ------------------------------------------------------------------ the Metric


def test_metric_accumulates_percentages_over_batches():
    metric = ToolCallMetrics("rotbench")
    gold = [((TRANSLATE,),)] * 2
    metric.update([react("translate", '{"text": "See you", "tgt": "ja", "max_length": "1"}'),
                   react("translate", '{"text": "x", "tgt": "ja", "max_length": "1"}')], gold, [ROT_TOOLS] * 2)
    metric.update(["no call"], gold[:1], [ROT_TOOLS])
    result = metric.compute()
    assert set(result) == {"ts", "pi", "cf", "exact_call", "mean_reward"}
    assert torch.allclose(result["ts"], torch.tensor(200 / 3))
    assert torch.allclose(result["cf"], torch.tensor(100 / 3))
    # the IRM reward compares every value, RoTBench's CF skips gold "None" values: no exact call
    assert torch.allclose(result["exact_call"], torch.tensor(0.0))
    assert torch.allclose(result["mean_reward"], torch.tensor((-0.25 - 0.25 - 2.0) / 3))
    assert metric.total.item() == 3
    metric.reset()
    assert metric.total.item() == 0


def test_metric_states_sum_across_processes():
    metric = ToolCallMetrics("bfcl")
    assert all(metric._reductions[name] is not None for name in ("ts", "pi", "cf", "total"))
    # what a 2-process sync does: sum each state
    other = ToolCallMetrics("bfcl")
    metric.update(["calc.area(base=10, height=5.0)"], [()], [[AREA]], [AREA_ANSWER])
    other.update(["calc.area(base=1, height=5.0)"], [()], [[AREA]], [AREA_ANSWER])
    metric.merge_state(other)
    assert metric.compute()["cf"].item() == pytest.approx(50.0)
    assert metric.compute()["pi"].item() == pytest.approx(100.0)


def test_metric_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown benchmark"):
        ToolCallMetrics("toolbench")
    with pytest.raises(ValueError, match="one entry per item"):
        ToolCallMetrics("rotbench").update(["a"], [], [ROT_TOOLS])


# ------------------------------------------------------------------ generic (synthetic world, any JSONL)

WEATHER = ToolSpec("get_weather", parameters={"type": "object", "properties": {
    "city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"type": "string", "default": "celsius"}}})
WIND = ToolSpec("get_wind", parameters={"type": "object", "properties": {"city": {"type": "string"}}})
GENERIC_TOOLS = (WEATHER, WIND)
PARIS = ToolCall("get_weather", {"city": "Paris", "days": 3})
PARIS_DEFAULT_UNIT = ToolCall("get_weather", {"city": "Paris", "days": 3, "unit": "celsius"})
ONE_CALL = Message("assistant", calls=(PARIS,), alternatives=((PARIS_DEFAULT_UNIT,),)).acceptable()
TWO_CALLS = Message("assistant", calls=(PARIS, ToolCall("get_wind", {"city": "Rome"}))).acceptable()


@pytest.mark.parametrize("prediction, expected", [
    ('get_weather(city="Paris", days=3)', (True, True, True)),
    ('get_weather(days=3, city="Paris", unit="celsius")', (True, True, True)),  # the alternative
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>', (True, True, True)),
    ('get_weather(city="Paris", days=4)', (True, True, False)),
    ('get_weather(city="Paris", days="3")', (True, True, False)),  # an integer parameter: types matter
    ('get_weather(city="Paris")', (True, False, False)),
    ('get_weather(city="Paris", days=3, unit="kelvin")', (True, True, False)),  # keys of the alternative
    ('get_wind(city="Paris")', (False, False, False)),
    ('get_weather(city="Paris", days=3)\nget_wind(city="Paris")', (False, False, False)),  # one call too many
    ("It is sunny in Paris.", (False, False, False)),
])
def test_generic_rules_against_a_single_call_turn(prediction, expected):
    assert tuple(score_generic(prediction, ONE_CALL, GENERIC_TOOLS)) == expected
    assert tuple(score_item("generic", prediction, ONE_CALL, GENERIC_TOOLS)) == expected


@pytest.mark.parametrize("prediction, expected", [
    ('get_wind(city="Rome")\nget_weather(city="Paris", days=3)', (True, True, True)),  # any order
    ('get_weather(city="Paris", days=3)\nget_wind(city="Paris")', (True, True, False)),
    ('get_weather(city="Paris", days=3)', (False, False, False)),  # a call missing
])
def test_generic_rules_need_every_call_of_a_parallel_turn(prediction, expected):
    assert tuple(score_generic(prediction, TWO_CALLS, GENERIC_TOOLS)) == expected


def test_generic_turn_without_a_call_passes_only_when_nothing_is_called():
    final_answer = Message("assistant", "It is sunny.").acceptable()
    assert score_generic("It is sunny.", final_answer, GENERIC_TOOLS) == PASSED
    assert score_generic('get_wind(city="Rome")', final_answer, GENERIC_TOOLS) == FAILED
    assert item_category("It is sunny.", final_answer, GENERIC_TOOLS) == "exact"
    assert item_category('get_wind(city="Rome")', final_answer, GENERIC_TOOLS) == "wrong_tool"


def test_item_category_is_the_irm_category_against_every_acceptable_set():
    assert item_category('get_weather(city="Paris", days=3, unit="celsius")', ONE_CALL, GENERIC_TOOLS) == "exact"
    assert item_category('get_weather(city="Paris")', ONE_CALL, GENERIC_TOOLS) == "redundant_or_missing"
    assert item_category("no call", ONE_CALL, GENERIC_TOOLS) == "unparsable_or_unknown_tool"
