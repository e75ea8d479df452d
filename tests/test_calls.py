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
)
from tl_lightning.data.records import ToolCall

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
