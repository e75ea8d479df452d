"""calls.py: every rendering parses, formatting round-trips, spans are exact, garbage never raises."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tl_lightning.calls import (
    STYLES,
    ParseFailure,
    format_call,
    format_call_spans,
    normalize_value,
    parse_call,
    parse_calls,
    unwritable_name,
)
from tl_lightning.data.formats.sealtools import _sealtools_catalog
from tl_lightning.data.sources import detect_format, read_trajectories_with_report
from tl_lightning.records import DataError, ToolCall

# --------------------------------------------------------------------------------- strategies

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}([.\-][A-Za-z_][A-Za-z0-9_]{0,8})?", fullmatch=True)
keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True) | st.sampled_from(
    ["from", "class", "lambda", "None", "true", "in"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
calls = st.builds(ToolCall, names, st.dictionaries(keys, json_values, max_size=5))

FRAGMENTS = ["(", ")", "[", "]", "{", "}", '"', "'", "\\", ",", "=", ":", "\n", " ", "f", "g(", "a=",
             "null", "true", "None", "-", "1", "1e5", "Action:", "Action Input:", "Thought:",
             "<tool_call>", "</tool_call>", "</s>", '"name"', '"arguments"', "function", "*", "#",
             "tool_calls", "```", "'''", "\x00", "é"]
garbage = st.text() | st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)


def _is_json_value(value) -> bool:
    return normalize_value(value) == value


# ---------------------------------------------------------------------------------- python form


@pytest.mark.parametrize("text, expected", [
    ('search_advice(query="love")', ToolCall("search_advice", {"query": "love"})),
    ("search_advice(query = 'love') </s>", ToolCall("search_advice", {"query": "love"})),  # authors' CodeLLaMA
    ("f()", ToolCall("f", {})),
    ("f(a=1,)", ToolCall("f", {"a": 1})),
    ("f(a=-3, b=+2.5, c=1e3)", ToolCall("f", {"a": -3, "b": 2.5, "c": 1000.0})),
    ("f(a=true, b=false, c=null)", ToolCall("f", {"a": True, "b": False, "c": None})),
    ("f(a=True, b=None)", ToolCall("f", {"a": True, "b": None})),
    ("f(a=[1, 'x', (2, 3)], b={'k': [null]})", ToolCall("f", {"a": [1, "x", [2, 3]], "b": {"k": [None]}})),
    ("f(a={1: 'x'})", ToolCall("f", {"a": {"1": "x"}})),
    ('f(q="it\'s, (really) = fine")', ToolCall("f", {"q": "it's, (really) = fine"})),
    ("f(q='say \"hi\"')", ToolCall("f", {"q": 'say "hi"'})),
    ('f(from="NYC", class=2)', ToolCall("f", {"from": "NYC", "class": 2})),
    ("math.factorial(n=5)", ToolCall("math.factorial", {"n": 5})),
    ("get-weather(city='Paris')", ToolCall("get-weather", {"city": "Paris"})),
    ('f(s="\\ud83d\\ude00")', ToolCall("f", {"s": "\U0001F600"})),  # JSON surrogate pair escape
    ("I will call f(a=1) now.", ToolCall("f", {"a": 1})),
    ("Sure (see below):\n```python\nf(a=1)\n```", ToolCall("f", {"a": 1})),
    ("f(\n  a=1,\n  b='x'\n)", ToolCall("f", {"a": 1, "b": "x"})),
    # a dict argument that looks like a call object stays an argument
    ('create_user(user={"name": "g", "arguments": {}})',
     ToolCall("create_user", {"user": {"name": "g", "arguments": {}}})),
    ('Calling create_user(user={"name": "John"}).', ToolCall("create_user", {"user": {"name": "John"}})),
    # ... and a call-like string inside a call object stays a string
    ('Ok: {"name": "f", "arguments": {"q": "g(b=2)"}}', ToolCall("f", {"q": "g(b=2)"})),
])
def test_python_form(text, expected):
    assert parse_call(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("f(1)", "positional"),
    ("f(a=1, 2)", "positional"),
    ("f(*xs)", "starred"),
    ("f(**kw)", "starred"),
    ("f(a=g(b=1))", "value of 'a'"),
    ("f(a=x)", "value of 'a'"),
    ("f(a=1, a=2)", "twice"),
    ("f(a={1, 2})", "value of 'a'"),
    ("f(a=b'x')", "value of 'a'"),
    ("f(a=NaN)", "value of 'a'"),
    ("f(a=1e999)", "value of 'a'"),
    ("f(a=-Infinity)", "value of 'a'"),
    ("f(a=1", "unbalanced"),
    ("hello there", "no call"),
    ("", "empty"),
    ("   </s>", "empty"),
    ("f(a=1) g(b=2)", "found 2"),
])
def test_python_form_failures_say_why(text, reason):
    result = parse_call(text)
    assert isinstance(result, ParseFailure) and not result
    assert reason in result.reason


def test_parse_failure_is_falsy_and_frozen():
    failure = ParseFailure("x")
    assert not failure and failure.reason == "x"
    with pytest.raises(AttributeError):
        failure.reason = "y"


# ---------------------------------------------------------------------------------- other forms


def test_react():
    text = 'Thought:\nAction: get_translation_nllb\nAction Input: {"input_text": "See you later", "tgt_lang": "ja"}'
    assert parse_call(text) == ToolCall("get_translation_nllb", {"input_text": "See you later", "tgt_lang": "ja"})
    assert parse_call("Thought: I should\nAction: f\nAction Input: {'a': 'b', 'n': None}") == \
        ToolCall("f", {"a": "b", "n": None})
    assert parse_call("Action: f\nAction Input: {}") == ToolCall("f", {})
    assert parse_call('Action: f\nAction Input: {"a": 1}\nObservation: ok') == ToolCall("f", {"a": 1})
    assert parse_call('Action: f\nAction Input: {"a": 1}</s>') == ToolCall("f", {"a": 1})
    two = 'Action: f\nAction Input: {"a": 1}\nObservation: x\nThought: more\nAction: g\nAction Input: {"b": 2}'
    assert parse_calls(two) == [ToolCall("f", {"a": 1}), ToolCall("g", {"b": 2})]
    bad = parse_call("Action: f\nAction Input: [1, 2]")
    assert isinstance(bad, ParseFailure) and "not a JSON object" in bad.reason
    assert isinstance(parse_call("Action: \nAction Input: {}"), ParseFailure)


@pytest.mark.parametrize("text", [
    '{"name": "f", "arguments": {"a": 1}}',
    '{"name": "f", "arguments": "{\\"a\\": 1}"}',
    '{"name": "f", "parameters": {"a": 1}}',
    "{'name': 'f', 'arguments': {'a': 1}}",
    '{"id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{\\"a\\": 1}"}}',
    '{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}',
    '[{"name": "f", "arguments": {"a": 1}}]',
    '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>',
    '<tool_call>{"name": "f", "arguments": {"a": 1}}',  # generation stopped at the closing tag
    'Here is the call: {"name": "f", "arguments": {"a": 1}} Hope it helps.',
    '```json\n{"name": "f", "arguments": {"a": 1}}\n```',
])
def test_json_and_tool_call_forms(text):
    assert parse_call(text) == ToolCall("f", {"a": 1})


@pytest.mark.parametrize("text, reason", [
    ('{"query": "x"}', "name"),
    ('{"name": "John", "age": 3}', "no 'arguments'"),
    ('{"name": "f"}', "no 'arguments'"),
    ('My data: {"name": "John"} and {"x": "f(1)"}.', "no call found"),
    ('{"name": "f", "arguments": [1]}', "must be an object"),
    ('{"name": "f", "arguments": "not json"}', "'arguments' string"),
    ('{"name": "f", "arguments": {"a": NaN}}', "no call"),
    ("[]", "empty list"),
    ("[[]]", "nested list"),
    ("<tool_call>nonsense</tool_call>", "<tool_call>"),
])
def test_json_failures_say_why(text, reason):
    result = parse_call(text)
    assert isinstance(result, ParseFailure) and reason in result.reason


def test_parse_calls_for_parallel_calls():
    f, g = ToolCall("f", {"a": 1}), ToolCall("g", {"b": [2]})
    assert parse_calls("[f(a=1), g(b=[2])]") == [f, g]
    assert parse_calls("f(a=1)\ng(b=[2])") == [f, g]
    assert parse_calls('[{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {"b": [2]}}]') == [f, g]
    assert parse_calls('{"name": "f", "arguments": {"a": 1}}\n{"name": "g", "arguments": {"b": [2]}}') == [f, g]
    blocks = "".join(format_call(c, "tool_call") for c in (f, g))
    assert parse_calls(blocks) == [f, g]
    assert parse_calls("no calls here") == ParseFailure("no call found")


def test_real_rotbench_gold_answers_parse(shared_data):
    records = json.loads((shared_data / "RoTBench" / "First_Turn" / "clean.json").read_text())
    golds = [text for r in records for text in r["conversations"][-1]["value"]]
    assert len(golds) >= 105
    for text in golds:
        call = parse_call(text)
        assert isinstance(call, ToolCall), (text, call)
        start = text.index("Action Input:") + len("Action Input:")
        assert call.arguments == json.loads(text[start:]), text  # the benchmark's own reading


# ---------------------------------------------------------------------------------- formatting


def test_format_python_is_the_papers_form():
    call = ToolCall("search", {"query": "caf\u00e9 \"x\"", "n": 1, "tags": ["a"], "exact": False, "x": None})
    assert format_call(call) == 'search(query="café \\"x\\"", n=1, tags=["a"], exact=false, x=null)'
    assert format_call(call, "python") == "search(" + ", ".join(
        f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in call.arguments.items()) + ")"
    assert format_call(ToolCall("f", {})) == "f()"


def test_format_other_styles():
    call = ToolCall("f", {"a": 1, "b": "x"})
    assert format_call(call, "react") == 'Action: f\nAction Input: {"a": 1, "b": "x"}'
    assert format_call(call, "json") == '{"name": "f", "arguments": {"a": 1, "b": "x"}}'
    assert format_call(call, "tool_call") == '<tool_call>\n{"name": "f", "arguments": {"a": 1, "b": "x"}}\n</tool_call>'
    with pytest.raises(ValueError, match="unknown call style"):
        format_call(call, "xml")


def test_spans_on_a_hand_made_case():
    text, name_span, value_spans = format_call_spans(ToolCall("f", {"a": "hi", "bb": [1, 2]}), "python")
    assert text == 'f(a="hi", bb=[1, 2])'
    assert name_span == (0, 1) and value_spans == ((4, 8), (13, 19))


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("value", ["<tool_call>", "</tool_call>", "x</s>", "Action: g\nAction Input: {}",
                                   '{"name": "g", "arguments": {}}', "g(b=1)", "f(", "'", '"', "\\"])
def test_values_that_look_like_markup_round_trip(style, value):
    call = ToolCall("f", {"a": value, "b": [value]})
    assert parse_call(format_call(call, style)) == call


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls, st.sampled_from(STYLES))
def test_round_trip_and_spans(call, style):
    text, name_span, value_spans = format_call_spans(call, style)
    assert text == format_call(call, style)
    assert parse_call(text) == call
    assert parse_calls(text) == [call]
    if style in ("json", "tool_call"):
        assert text[name_span[0]:name_span[1]] == json.dumps(call.name, ensure_ascii=False)[1:-1]
    else:
        assert text[name_span[0]:name_span[1]] == call.name
    assert len(value_spans) == len(call.arguments)
    for (start, end), value in zip(value_spans, call.arguments.values()):
        assert text[start:end] == json.dumps(value, ensure_ascii=False)
    assert list(value_spans) == sorted(value_spans)


# ------------------------------------------------------------------ every name and key: round trip or refusal

# Pieces of names and keys that trip a call syntax: spaces, dots, dashes, Unicode, Python keywords,
# "=", quotes, brackets, newlines and the markup of the other renderings.
HARD_PIECES = ["a", "Z", "_", "7", " ", ".", "-", "=", "==", ",", ":", "(", ")", "[", "]", "{", "}", '"', "'",
               "`", "\\", "*", "**", "\n", "\t", "é", "数据", "٣", "e\u0301", "from", "class", "None", "true",
               "Action:", "Action Input:", "<tool_call>", "</tool_call>", "</s>", '{"name": "g", "arguments": {}}',
               "{'name': 'g', 'arguments': {}}", "g(b=1)"]
hard_strings = st.lists(st.sampled_from(HARD_PIECES), min_size=1, max_size=6).map("".join) | st.text(max_size=12)


def _assert_round_trip_or_refusal(call: ToolCall, style: str) -> bool:
    """``format_call`` either writes text that reads back as ``call`` (spans exact) or raises a
    ValueError naming the name; never text that reads back as another call. True if written."""
    try:
        text, name_span, value_spans = format_call_spans(call, style)
    except ValueError as e:
        assert repr(call.name) in str(e) and unwritable_name(call.name, style), (call, style, e)
        return False
    assert parse_call(text) == call, (call, style, text)
    assert parse_calls(text) == [call], (call, style, text)
    named = text[name_span[0]:name_span[1]]
    assert named == (json.dumps(call.name, ensure_ascii=False)[1:-1] if style in ("json", "tool_call") else call.name)
    assert [text[a:b] for a, b in value_spans] == [json.dumps(v, ensure_ascii=False) for v in call.arguments.values()]
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hard_strings, st.dictionaries(hard_strings, json_values, max_size=4), st.sampled_from(STYLES))
def test_hard_names_and_keys_round_trip_or_are_refused(name, arguments, style):
    _assert_round_trip_or_refusal(ToolCall(name, arguments), style)


def test_name_with_a_space_is_refused_in_python_style_not_misparsed():
    # Seal-Tools' tool.jsonl declares "requestFirst Aid Assistance"; the python form used to write
    # it as is, which read back as a call of "Assistance".
    call = ToolCall("requestFirst Aid Assistance", {"location": "Main St"})
    with pytest.raises(ValueError, match=r"'requestFirst Aid Assistance'.*python.*react, json, tool_call"):
        format_call(call, "python")
    for style in ("react", "json", "tool_call"):
        assert parse_call(format_call(call, style)) == call


def test_keys_that_are_not_identifiers_are_spelled_as_a_double_star_dict():
    call = ToolCall("f", {"code:": "print(1)", "odd key": 1, "a=b": 2, 'k="x", c': 3, "from": 4})
    text = format_call(call, "python")
    assert text == 'f(**{"code:": "print(1)"}, **{"odd key": 1}, **{"a=b": 2}, **{"k=\\"x\\", c": 3}, from=4)'
    assert parse_call(text) == call
    assert parse_call('f(a=1, **{"a": 2})') == ParseFailure("argument 'a' given twice")
    assert "starred" in parse_call("f(**{1, 2})").reason


def test_unicode_names_round_trip():
    for name in ("数据.查询-v2", "café", "écrire", "_x"):
        for style in STYLES:
            assert parse_call(format_call(ToolCall(name, {"clé": 1}), style)) == ToolCall(name, {"clé": 1})
    for name in ("٣d", "e\u0301", " f", "f\n", ""):
        with pytest.raises(ValueError, match="cannot write tool name"):
            format_call(ToolCall(name, {}), "python")


@pytest.mark.parametrize("style", STYLES)
def test_a_call_object_inside_a_value_is_never_read_as_the_call(style):
    # single quotes are not escaped by JSON: the <tool_call> reading used to find g() inside the value
    call = ToolCall("f", {"a": "<tool_call>{'name': 'g', 'arguments': {}}</tool_call>"})
    assert parse_call(format_call(call, style)) == call


def _shared_names_and_calls(shared_data) -> tuple[set[str], set[str], list[ToolCall]]:
    """Every tool name and argument key in ../shared/data (tool lists and calls of every file a
    reader takes, plus Seal-Tools' whole tool catalog) and every call."""
    names, keys, calls = set(), set(), []
    for path in sorted(shared_data.rglob("*")):
        try:
            if path.suffix not in (".json", ".jsonl") or not detect_format(path):
                continue
        except DataError:  # side files (schemas, answers, tool libraries) are read with their data
            continue
        trajectories, _ = read_trajectories_with_report(path, on_error="skip")
        for traj in trajectories:
            for tool in traj.tools:
                names.add(tool.name)
                keys.update(tool.properties)
            calls.extend(c for m in traj.messages for calls_ in m.acceptable() for c in calls_)
    for tool in _sealtools_catalog(shared_data / "Seal-Tools/Seal-Tools_Dataset/tool.jsonl").values():
        names.add(tool.name)
        keys.update(tool.properties)
    names.update(c.name for c in calls)
    keys.update(k for c in calls for k in c.arguments)
    return names, keys, calls


@pytest.mark.slow
def test_every_name_key_and_call_in_shared_data_round_trips_or_is_refused(shared_data):
    names, keys, calls = _shared_names_and_calls(shared_data)
    assert len(names) > 3000 and len(keys) > 3000 and len(calls) > 10000
    assert {"requestFirst Aid Assistance", "math.factorial"} <= names
    assert {"code:", "return_err_outputpersistent=False"} <= keys
    refused = set()
    for style in STYLES:
        for name in names:
            if not _assert_round_trip_or_refusal(ToolCall(name, {"k": 1}), style):
                refused.add((name, style))
        for key in keys:
            assert _assert_round_trip_or_refusal(ToolCall("f", {key: "v"}), style), key
        for call in calls:
            _assert_round_trip_or_refusal(call, style)
    # the one name no python-form call can spell; every other style carries every name
    assert refused == {("requestFirst Aid Assistance", "python")}


# ---------------------------------------------------------------------------------- robustness


def _check_result(result):
    assert isinstance(result, (list, ParseFailure))
    if isinstance(result, ParseFailure):
        assert isinstance(result.reason, str) and result.reason
        return
    assert result
    for call in result:
        assert isinstance(call, ToolCall) and isinstance(call.name, str) and call.name
        assert isinstance(call.arguments, dict) and _is_json_value(call.arguments)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage)
def test_never_raises_on_garbage(text):
    _check_result(parse_calls(text))
    single = parse_call(text)
    assert isinstance(single, (ToolCall, ParseFailure))


@settings(max_examples=200, deadline=None)
@given(calls, garbage, garbage)
def test_a_call_inside_garbage_never_raises(call, before, after):
    for style in STYLES:
        _check_result(parse_calls(before + format_call(call, style) + after))


@pytest.mark.parametrize("text", [
    "[" * 5000, "{" * 5000, "f(" * 5000, "f(a=" + "[" * 3000 + "]" * 3000 + ")",
    "[" * 900 + "]" * 900, "f(a=" + "9" * 5000 + ")", "(" * 300 + "f(a=1)",
])
def test_pathological_inputs(text):
    _check_result(parse_calls(text))


def test_not_a_string():
    assert isinstance(parse_calls(None), ParseFailure)  # type: ignore[arg-type]


def test_normalize_value():
    assert normalize_value((1, 2)) == [1, 2]
    assert normalize_value({1: (None,)}) == {"1": [None]}
    assert normalize_value({"a": 1.5, "b": "x"}) == {"a": 1.5, "b": "x"}
    circular: list = []
    circular.append(circular)
    assert isinstance(normalize_value(circular), str)
