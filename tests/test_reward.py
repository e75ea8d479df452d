"""reward.py: each row of the reward table (docs/design.md, "The IRM reward"), the value rules, gold alternatives, and fuzz."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tl_lightning.calls import STYLES, format_call, parse_call, parse_calls
from tl_lightning.records import DataError, Message, ToolCall, ToolSpec
from tl_lightning.reward import (
    CATEGORIES,
    DEFAULT_TABLE,
    RewardTable,
    classify_call,
    irm_reward,
    values_equal,
)

WEATHER = ToolSpec("get_weather", "Weather of a city.", {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"type": "string"},
                   "tags": {"type": "array", "items": {"type": "string"}},
                   "where": {"type": "object", "properties": {"zip": {"type": "string"}}}},
    "required": ["city"],
})
WIND = ToolSpec("get_wind", "Wind of a city.", {"type": "object", "properties": {"city": {"type": "string"}}})
TOOLS = [WEATHER, WIND]
GOLD = ToolCall("get_weather", {"city": "Paris", "days": 3})


def test_table_matches_design():
    assert dict(zip(CATEGORIES, DEFAULT_TABLE.values())) == {
        "unparsable_or_unknown_tool": -2.0,
        "wrong_tool": -1.5,
        "hallucinated_redundant_missing": -1.8,
        "hallucinated_and_redundant_or_missing": -1.3,
        "redundant_and_missing": -1.0,
        "hallucinated": -0.8,
        "redundant_or_missing": -0.5,
        "wrong_value": -0.25,
        "exact": 1.0,
    }
    with pytest.raises(ValueError, match="unknown reward category"):
        DEFAULT_TABLE.value("fine")
    with pytest.raises(AttributeError):
        DEFAULT_TABLE.exact = 2.0  # frozen


# one hand-made prediction per table row (python form, the paper's rendering)
ROWS = [
    ("unparsable_or_unknown_tool", "I don't know."),
    ("unparsable_or_unknown_tool", 'get_weather(city="Paris", 3)'),
    ("unparsable_or_unknown_tool", 'get_time(city="Paris", days=3)'),
    ("wrong_tool", 'get_wind(city="Paris")'),
    ("hallucinated_redundant_missing", 'get_weather(city="Paris", unit="C", mood="happy")'),  # +mood +unit -days
    ("hallucinated_and_redundant_or_missing", 'get_weather(city="Paris", mood="happy")'),  # +mood -days
    ("hallucinated_and_redundant_or_missing", 'get_weather(city="Paris", days=3, unit="C", mood="x")'),
    ("redundant_and_missing", 'get_weather(city="Paris", unit="C")'),  # +unit -days
    ("hallucinated", 'get_weather(city="Paris", days=3, mood="happy")'),
    ("redundant_or_missing", 'get_weather(city="Paris", days=3, unit="C")'),
    ("redundant_or_missing", 'get_weather(city="Paris")'),
    ("wrong_value", 'get_weather(city="London", days=3)'),
    ("exact", 'get_weather(days=3, city="Paris")'),
]


@pytest.mark.parametrize("category, prediction", ROWS)
def test_each_table_row(category, prediction):
    assert classify_call(prediction, GOLD, TOOLS) == category
    assert irm_reward(prediction, GOLD, TOOLS) == DEFAULT_TABLE.value(category)


def test_every_category_has_a_row():
    assert {category for category, _ in ROWS} == set(CATEGORIES)


@pytest.mark.parametrize("style", STYLES)
def test_every_rendering_scores_the_same(style):
    for category, prediction in ROWS[3:]:  # the rows that parse
        call = parse_call(prediction)
        assert classify_call(format_call(call, style), GOLD, TOOLS) == category
        assert classify_call(call, GOLD, TOOLS) == category  # a ToolCall directly
        assert classify_call([call], GOLD, TOOLS) == category  # a turn's parsed calls


def test_a_turns_parsed_calls_score_like_its_text():
    text = 'get_weather(city="Paris", days=3)\nget_weather(city="Rome", days=3)'  # the gold call, one more
    assert classify_call(parse_calls(text), GOLD, TOOLS) == classify_call(text, GOLD, TOOLS) == "redundant_or_missing"
    assert classify_call([], GOLD, TOOLS) == "unparsable_or_unknown_tool"  # no call at all


def test_configurable_values():
    table = RewardTable(exact=2.0, wrong_value=0.0)
    assert irm_reward('get_weather(city="Paris", days=3)', GOLD, TOOLS, table) == 2.0
    assert irm_reward('get_weather(city="Rome", days=3)', GOLD, TOOLS, table) == 0.0
    assert irm_reward("nothing", GOLD, TOOLS, table) == -2.0


def test_gold_key_missing_from_schema_is_not_hallucinated():
    gold = ToolCall("get_weather", {"city": "Paris", "lang": "fr"})  # the schema forgot "lang"
    assert classify_call('get_weather(city="Paris", lang="fr")', gold, TOOLS) == "exact"
    assert classify_call('get_weather(city="Paris", lang="en")', gold, TOOLS) == "wrong_value"


def test_gold_alternatives_best_wins():
    alternatives = [ToolCall("get_wind", {"city": "Paris"}), 'get_weather(city="Paris", days=3)']
    assert classify_call('get_weather(city="Paris", days=3)', alternatives, TOOLS) == "exact"
    assert classify_call('get_wind(city="Rome")', alternatives, TOOLS) == "wrong_value"
    assert classify_call('get_weather(city="Paris")', alternatives, TOOLS) == "redundant_or_missing"
    # Message.acceptable(): a tuple of call sets
    turn = Message("assistant", calls=(GOLD,), alternatives=((ToolCall("get_wind", {"city": "Paris"}),),))
    assert classify_call('get_wind(city="Paris")', turn.acceptable(), TOOLS) == "exact"
    # a custom table decides which alternative is best
    upside_down = RewardTable(wrong_tool=5.0)
    assert classify_call('get_wind(city="Rome")', alternatives, TOOLS, upside_down) == "wrong_tool"


def test_unusable_gold_never_raises():
    assert classify_call('get_weather(city="Paris")', "not a call", TOOLS) == "wrong_tool"
    assert classify_call('get_weather(city="Paris")', [], TOOLS) == "wrong_tool"
    assert classify_call("garbage", [], TOOLS) == "unparsable_or_unknown_tool"
    with pytest.raises(TypeError, match="gold must be"):
        classify_call('get_weather(city="Paris")', 42, TOOLS)  # type: ignore[arg-type]


def test_extra_calls_beside_a_single_gold_call_are_redundant():
    # hedging with a second call is not free: the surplus call counts like a redundant key
    assert classify_call('get_weather(city="Paris", days=3)\nget_wind(city="Paris")', GOLD, TOOLS) == "redundant_or_missing"
    assert classify_call('[get_wind(city="Paris"), get_weather(city="Paris", days=3)]', GOLD, TOOLS) == "redundant_or_missing"
    assert classify_call('[get_wind(city="Paris"), get_wind(city="Rome")]', GOLD, TOOLS) == "wrong_tool"


# ---------------------------------------------------------------------------------- parallel calls

WIND_PARIS = ToolCall("get_wind", {"city": "Paris"})
PARALLEL = Message("assistant", calls=(GOLD, WIND_PARIS)).acceptable()  # one set of two calls
BOTH = 'get_weather(city="Paris", days=3)\nget_wind(city="Paris")'


@pytest.mark.parametrize("category, prediction", [
    ("exact", BOTH),
    ("exact", '[get_wind(city="Paris"), get_weather(days=3, city="Paris")]'),  # any order
    ("redundant_or_missing", 'get_weather(city="Paris", days=3)'),  # a gold call missing
    ("redundant_or_missing", 'get_wind(city="Paris")'),
    ("redundant_or_missing", BOTH + '\nget_wind(city="Rome")'),  # an extra call to a listed tool
    ("unparsable_or_unknown_tool", BOTH + '\nget_time(city="Paris")'),  # an extra call to an unlisted tool
    ("wrong_tool", 'get_weather(city="Paris", days=3)\nget_weather(city="Paris", days=4)'),
    ("wrong_value", 'get_weather(city="Paris", days=3)\nget_wind(city="Rome")'),
    ("redundant_or_missing", 'get_weather(city="Paris")\nget_wind(city="Paris")'),  # a key missing in one call
    ("redundant_and_missing", 'get_weather(city="Paris", days=3, unit="C")'),  # a surplus key, a call missing
    ("redundant_and_missing", 'get_weather(city="Paris", days=3, unit="C")\nget_wind()'),  # surplus key, missing key
    ("hallucinated", 'get_weather(city="Paris", days=3)\nget_wind(city="Paris", mood="calm")'),
    ("hallucinated_and_redundant_or_missing", 'get_weather(city="Paris", days=3, mood="x")'),  # + a call missing
    ("unparsable_or_unknown_tool", "no call at all"),
])
def test_parallel_gold_needs_every_call(category, prediction):
    """A gold turn of several calls needs all of them, in any order: a missing call counts like a
    missing key, an extra call to a listed tool like a redundant one, to an unlisted tool the turn
    is unknown-tool (reward.py docstring)."""
    assert classify_call(prediction, PARALLEL, TOOLS) == category
    assert irm_reward(prediction, PARALLEL, TOOLS) == DEFAULT_TABLE.value(category)


def test_parallel_gold_pairs_calls_of_one_tool_by_their_best_pairing():
    paris, london = GOLD, ToolCall("get_weather", {"city": "London", "days": 3})
    gold = [[paris, london]]  # a list holding one call set
    assert classify_call('get_weather(city="London", days=3)\nget_weather(city="Paris", days=3)', gold, TOOLS) == "exact"
    assert classify_call('get_weather(city="London", days=3)', gold, TOOLS) == "redundant_or_missing"
    assert classify_call('get_weather(city="Rome", days=3)\nget_weather(city="Paris", days=3)', gold,
                         TOOLS) == "wrong_value"
    # a call text holding several calls is one call set too
    assert classify_call(BOTH, '[get_wind(city="Paris"), get_weather(city="Paris", days=3)]', TOOLS) == "exact"
    # the best alternative wins: a one-call alternative accepts the weather call alone
    turn = Message("assistant", calls=(GOLD, WIND_PARIS), alternatives=((GOLD,),))
    assert classify_call('get_weather(city="Paris", days=3)', turn.acceptable(), TOOLS) == "exact"
    # an alternative with a part that cannot be matched is skipped as a whole
    assert classify_call(BOTH, [[GOLD, "not a call"]], TOOLS) == "wrong_tool"


def test_many_predicted_calls_stay_cheap():
    gold = [[ToolCall("get_weather", {"city": c, "days": 3}) for c in ("A", "B", "C", "D", "E", "F")]]
    prediction = "\n".join(f'get_weather(city="{i}", days=3)' for i in range(60))
    started = time.perf_counter()
    assert classify_call(prediction, gold, TOOLS) == "redundant_or_missing"  # wrong values hidden by extras
    assert time.perf_counter() - started < 5.0


def test_real_bfcl_parallel_golds_need_every_call(shared_data):
    from tl_lightning.evaluate import gold_prediction, load_items

    items = load_items("bfcl", shared_data / "BFCL_v3" / "BFCL_v3_parallel.json")
    assert all(len(item.gold[0]) >= 2 for item in items)
    for item in items:
        calls = gold_prediction(item).split("\n")
        assert classify_call("\n".join(reversed(calls)), item.gold, item.tools) == "exact", item.id
        assert classify_call(calls[0], item.gold, item.tools) == "redundant_or_missing", item.id


def test_openai_tool_dicts():
    tools = [WEATHER.to_openai(), {"name": "get_wind", "description": "", "parameters": WIND.parameters}]
    assert classify_call('get_weather(city="Paris", days=3)', GOLD, tools) == "exact"
    assert classify_call('get_wind(city="Paris")', GOLD, tools) == "wrong_tool"
    with pytest.raises(DataError):
        classify_call('get_wind(city="Paris")', GOLD, [{"description": "no name"}])


def test_tool_without_schema():
    tools = [ToolSpec("ping")]
    assert classify_call("ping()", ToolCall("ping"), tools) == "exact"
    assert classify_call("ping(x=1)", ToolCall("ping"), tools) == "hallucinated"


# ---------------------------------------------------------------------------------- value rule

STRING = {"type": "string"}
INTEGER = {"type": "integer"}


@pytest.mark.parametrize("predicted, gold, schema, equal", [
    ("Paris", "Paris", STRING, True),
    ("paris", "Paris", STRING, False),  # strings exactly: case counts
    (" Paris", "Paris", STRING, False),  # ... and whitespace
    (5, "5", STRING, True),  # the model left out the quotes of a string parameter
    ("5", 5, STRING, True),  # the data stored a string parameter as a number
    (5, "5.0", STRING, True),
    (5, "05", STRING, False),  # "05" is not a JSON number
    (True, "true", STRING, True),
    (True, "True", STRING, False),
    (5, "5", INTEGER, False),  # a string where the schema wants a number
    ("5", 5, INTEGER, False),
    (5, "5", {}, False),  # no declared type: types must agree
    (5, "5", {"type": ["string", "null"]}, True),
    (5, 5.0, INTEGER, True),  # JSON has one number type
    (2.5, 2.5, {"type": "number"}, True),
    (2.5, 2.4, {"type": "number"}, False),
    (True, 1, INTEGER, False),  # booleans are not numbers
    (False, 0, {}, False),
    (None, None, {}, True),
    (None, "None", STRING, False),
    (None, 0, {}, False),
    ((1, 2), [1, 2], {}, True),  # tuples are JSON arrays
    ([1, 2], [2, 1], {}, False),  # order counts
    ([1, 2], [1, 2, 3], {}, False),
    ([5], ["5"], {"type": "array", "items": STRING}, True),  # the rule applies inside arrays
    ([5], ["5"], {"type": "array", "items": INTEGER}, False),
    ({"zip": 75001}, {"zip": "75001"}, WEATHER.properties["where"], True),  # ... and objects
    ({"zip": "75001"}, {"zip": "75001", "x": 1}, {}, False),
    ({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]}, {}, True),
])
def test_value_rule(predicted, gold, schema, equal):
    assert values_equal(predicted, gold, schema) is equal
    assert values_equal(gold, predicted, schema) is equal  # symmetric


def test_value_rule_in_a_call():
    assert classify_call("get_weather(city='Paris', days=3.0)", GOLD, TOOLS) == "exact"
    assert classify_call("get_weather(city='Paris', days='3')", GOLD, TOOLS) == "wrong_value"  # integer param
    gold = ToolCall("get_wind", {"city": "75001"})
    assert classify_call("get_wind(city=75001)", gold, TOOLS) == "exact"  # string param


def test_real_rotbench_golds_are_exact_against_themselves(shared_data):
    records = json.loads((shared_data / "RoTBench" / "First_Turn" / "clean.json").read_text())
    for record in records[:30]:
        system = record["conversations"][0]["value"]
        tools = json.loads(system[system.find("["):-13])
        golds = record["conversations"][-1]["value"]
        for text in golds:
            assert classify_call(text, golds, tools) == "exact", text
        assert irm_reward("Thought: no idea", golds, tools) == -2.0


# ---------------------------------------------------------------------------------- fuzz

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6) | st.sampled_from(["5", "true", "3.0"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)
tool_names = st.sampled_from(["get_weather", "get_wind", "f", "search"])
param_names = st.sampled_from(["city", "days", "unit", "tags", "where", "q", "x"])
schemas = st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "array", "object"])})
tool_specs = st.builds(
    lambda name, props: ToolSpec(name, "", {"type": "object", "properties": props}),
    tool_names, st.dictionaries(param_names, schemas, max_size=4))
tool_lists = st.lists(tool_specs, max_size=4) | st.lists(tool_specs.map(ToolSpec.to_openai), max_size=3)
gold_calls = st.builds(ToolCall, tool_names, st.dictionaries(param_names, json_values, max_size=4))
gold_items = gold_calls | st.builds(format_call, gold_calls, st.sampled_from(STYLES)) | st.text(max_size=20)
golds = gold_items | st.lists(gold_items, max_size=3)
predictions = (
    st.text()
    | st.builds(format_call, gold_calls, st.sampled_from(STYLES))
    | st.tuples(st.text(max_size=10), st.builds(format_call, gold_calls, st.sampled_from(STYLES)),
                st.text(max_size=10)).map("".join)
    | gold_calls
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(predictions, golds, tool_lists)
def test_fuzz_reward_is_always_a_table_value(prediction, gold, tools):
    category = classify_call(prediction, gold, tools)
    assert category in CATEGORIES
    assert irm_reward(prediction, gold, tools) in DEFAULT_TABLE.values()


call_sets = st.lists(gold_calls | st.builds(format_call, gold_calls, st.sampled_from(STYLES)), min_size=1, max_size=3)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(predictions, st.lists(call_sets, max_size=3), tool_lists)
def test_fuzz_call_set_gold_is_always_a_table_value(prediction, gold, tools):
    assert classify_call(prediction, gold, tools) in CATEGORIES


@settings(max_examples=200, deadline=None)
@given(st.lists(gold_calls, min_size=1, max_size=4), tool_lists, st.randoms())
def test_fuzz_call_set_against_itself_in_any_order_is_exact_when_listed(calls, tools, rng):
    listed = {t.name if isinstance(t, ToolSpec) else t["function"]["name"] for t in tools}
    shuffled = rng.sample(calls, len(calls))
    expected = "exact" if {c.name for c in calls} <= listed else "unparsable_or_unknown_tool"
    prediction = "\n".join(format_call(c, "json") for c in shuffled)
    assert classify_call(prediction, [calls], tools) == expected


@settings(max_examples=200, deadline=None)
@given(gold_calls, tool_lists)
def test_fuzz_gold_against_itself_is_exact_when_listed(call, tools):
    listed = {t.name if isinstance(t, ToolSpec) else t["function"]["name"] for t in tools}
    for style in STYLES:
        expected = "exact" if call.name in listed else "unparsable_or_unknown_tool"
        assert classify_call(format_call(call, style), call, tools) == expected
