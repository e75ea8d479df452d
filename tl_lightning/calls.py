"""Parse and format tool calls in every rendering the project meets.

Renderings (``STYLES``):

- ``"python"``: the paper's form ``name(key="json-encoded value", n=1)``. Parsed with our own
  quote-aware splitter plus ``ast`` for each value (never ``eval``), so keys that are Python
  keywords (``from=``) and names with dots or hyphens (``math.factorial``, ``get-weather``) parse.
  Values may be JSON (``true``/``false``/``null``, ``"..."``) or Python literals (``'...'``,
  ``True``, ``None``, tuples); only keyword arguments count (a call is a mapping of names to values).
  A key that is not a Python identifier is written ``**{"odd key": value}`` (valid Python, read
  back as that key). A name is a letter or ``_`` followed by letters, digits, ``_``, ``.``, ``-``
  (Unicode letters too); other names (Seal-Tools' ``requestFirst Aid Assistance``) have no
  python-form spelling, and ``format_call`` refuses them in this style.
- ``"react"``: ``Action: name\\nAction Input: {json}`` (an optional ``Thought: ...`` before it; the
  input may also be a Python dict with single quotes).
- ``"json"``: ``{"name": ..., "arguments": {...}}``; when parsing, ``arguments`` may be a JSON-encoded
  string, ``parameters``/``args`` are accepted for ``arguments``, and OpenAI ``tool_calls`` entries
  ``{"type": "function", "function": {...}}`` and ``{"tool_calls": [...]}`` are unwrapped.
- ``"tool_call"``: the chat-template form ``<tool_call>\\n{json}\\n</tool_call>``.

Generated text is messy: end markers (``</s>``, ``<|im_end|>``), code fences and a sentence before
or after the call are tolerated. The parsers return a ``ParseFailure`` (falsy, with a reason) instead
of raising, on any string.

Round trip: ``parse_call(format_call(call, style)) == call`` for every call ``format_call`` writes;
where a style cannot carry a tool name (``format_call_spans`` says which styles can), it raises
``ValueError`` instead of writing text that would read back as another call.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tl_lightning.records import ToolCall

STYLES = ("python", "react", "json", "tool_call")

# End-of-turn markers of the chat formats we render; generated text often still carries one.
END_MARKERS = ("</s>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end|>", "<eos>")

_NAME = r"[^\W\d][\w.\-]*"  # a (Unicode) letter or "_", then letters, digits, "_", ".", "-"
_CALL_START = re.compile(rf"(?<![\w.\-])({_NAME})\s*\(")
_KEY = re.compile(r"\s*([^\s=,()\[\]{}'\"*]+)\s*=(?!=)")
_REACT = re.compile(r"Action\s*:[ \t]*(?P<name>[^\n]*)\n\s*Action[ \t]*Input\s*:[ \t]*")
# Characters the ReAct reading strips around a name (models often quote it).
_REACT_NAME_QUOTES = "`'\""
_REACT_INPUT_END = re.compile(r"\n\s*(?:Observation|Thought|Action|Final Answer)\s*:")
_TOOL_CALL_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_PAIRS = {"(": ")", "[": "]", "{": "}"}
_SCANNED = re.compile(r"""[\\'"()\[\]{},]""")  # what the bracket scanner looks at: quotes, escapes, brackets, commas
# Names that JSON writes and Python does not (and the reverse): both are accepted as values.
_NAMED_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
# Bound the work spent on hopeless text (e.g. thousands of "{"): a call is found long before.
_MAX_CANDIDATES = 200


@dataclass(frozen=True)
class ParseFailure:
    """Why a text is not a call. Falsy, so ``if call := parse_call(text):`` reads naturally."""

    reason: str

    def __bool__(self) -> bool:
        return False


# ---------------------------------------------------------------------------------------------
# literals


def _finite_float(text: str) -> float:
    """A JSON number as float; NaN and infinity (``1e999``) are no JSON values and compare unequal
    to themselves, so they are refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# Strict JSON: no NaN / Infinity, which json.loads accepts by default.
_JSON = json.JSONDecoder(parse_float=_finite_float, parse_constant=_refuse_constant)


def _literal_from_node(node: ast.AST) -> Any:
    """The JSON value of a literal expression node; ``ValueError`` if it is not a literal."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise ValueError(f"{node.value} is not a finite number")
        if isinstance(node.value, (str, int, float, bool)) or node.value is None:
            return node.value
        raise ValueError(f"unsupported constant {node.value!r}")
    if isinstance(node, ast.Name) and node.id in _NAMED_CONSTANTS:
        return _NAMED_CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal_from_node(node.operand)
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise ValueError("a sign before a non-number")
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal_from_node(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                raise ValueError("'**' inside a dict")
            out[_json_key(_literal_from_node(k))] = _literal_from_node(v)
        return out
    raise ValueError(f"not a literal: {type(node).__name__}")


def _json_key(key: Any) -> str:
    """A dict key as JSON writes it (``json.dumps({1: 0})`` gives ``{"1": 0}``)."""
    if isinstance(key, str):
        return key
    if isinstance(key, (bool, int, float)) or key is None:
        return json.dumps(key)
    raise ValueError(f"a dict key must be a string or a number, got {type(key).__name__}")


def parse_literal(text: str) -> Any | ParseFailure:
    """One value written as JSON or as a Python literal (``'x'``, ``True``, ``None``, tuples);
    JSON is tried first (it decodes ``\\u`` surrogate pairs and ``\\/`` as JSON means them)."""
    try:
        return _JSON.decode(text)
    except (ValueError, RecursionError):
        pass
    try:
        return _literal_from_node(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as e:
        return ParseFailure(f"not a JSON or Python literal: {e}")


# ---------------------------------------------------------------------------------------------
# bracket scanning


def _unquoted(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """``(index, character)`` of each bracket and comma of ``text[start:]`` that stands outside
    quoted strings (single or double quotes, backslash escapes). The one scanner behind bracket
    matching and argument splitting; it jumps from one such character to the next."""
    quote, escaped = "", -1
    for m in _SCANNED.finditer(text, start):
        i, ch = m.start(), m.group()
        if i == escaped:
            continue
        if quote:
            if ch == "\\":
                escaped = i + 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch != "\\":
            yield i, ch


def _balanced_end(text: str, open_at: int) -> int:
    """Index just past the bracket closing ``text[open_at]``, skipping brackets inside quoted
    strings; -1 when unbalanced or mismatched."""
    stack: list[str] = []
    for i, ch in _unquoted(text, open_at):
        if ch in _PAIRS:
            stack.append(_PAIRS[ch])
        elif ch in ")]}":
            if not stack or stack.pop() != ch:
                return -1
            if not stack:
                return i + 1
    return -1


def split_top_level(text: str) -> list[str]:
    """Split an argument list on the commas that are outside brackets and strings."""
    pieces, depth, start = [], 0, 0
    for i, ch in _unquoted(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    return pieces


# ---------------------------------------------------------------------------------------------
# python form


def _python_argument(piece: str) -> dict[str, Any] | ParseFailure:
    """One piece of an argument list: ``key=value``, or ``**{"key": value, ...}`` (how keys that
    are not identifiers are written)."""
    if piece.lstrip().startswith("**"):
        spelled = parse_literal(piece.lstrip()[2:])
        if isinstance(spelled, dict):
            return spelled
        return ParseFailure("starred arguments (*args / **kwargs) other than a **{...} literal")
    key_match = _KEY.match(piece)
    if key_match is None:
        if piece.lstrip().startswith("*"):
            return ParseFailure("starred arguments (*args / **kwargs)")
        return ParseFailure("positional arguments (only key=value arguments name a parameter)")
    key = key_match.group(1)
    value = parse_literal(piece[key_match.end():])
    if isinstance(value, ParseFailure):
        return ParseFailure(f"value of {key!r}: {value.reason}")
    return {key: value}


def _python_arguments(inner: str) -> dict[str, Any] | ParseFailure:
    """The keyword arguments between the parentheses of ``name(...)``."""
    pieces = split_top_level(inner)
    if pieces and not pieces[-1].strip():
        pieces.pop()  # "f()" and a trailing comma "f(a=1,)"
    arguments: dict[str, Any] = {}
    for piece in pieces:
        found = _python_argument(piece)
        if isinstance(found, ParseFailure):
            return found
        for key, value in found.items():
            if key in arguments:
                return ParseFailure(f"argument {key!r} given twice")
            arguments[key] = value
    return arguments


def _whole_python_call(text: str) -> list[ToolCall] | ParseFailure | None:
    """The verdict on ``text`` when it is one python-form call ``name(...)`` from its first to its
    last character (``f(1)`` reports "positional arguments"); None for any other text."""
    match = _CALL_START.match(text)
    if match is None or _balanced_end(text, match.end() - 1) != len(text):
        return None
    arguments = _python_arguments(text[match.end():-1])
    return [ToolCall(match.group(1), arguments)] if isinstance(arguments, dict) else arguments


# ---------------------------------------------------------------------------------------------
# JSON / OpenAI objects


def _calls_from_object(obj: Any) -> list[ToolCall] | ParseFailure:
    """Calls from a decoded JSON value: a call object, an OpenAI tool_calls entry or message, or a
    list of those."""
    if isinstance(obj, list):
        calls: list[ToolCall] = []
        for item in obj:
            if isinstance(item, list):  # one level only: nesting is no call format (and no recursion bomb)
                return ParseFailure("a nested list is not a call")
            found = _calls_from_object(item)
            if isinstance(found, ParseFailure):
                return found
            calls.extend(found)
        return calls if calls else ParseFailure("an empty list of calls")
    if not isinstance(obj, dict):
        return ParseFailure(f"a {type(obj).__name__} is not a call")
    if isinstance(obj.get("tool_calls"), list):
        return _calls_from_object(obj["tool_calls"])
    if isinstance(obj.get("function"), dict):
        return _calls_from_object(obj["function"])
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return ParseFailure("a call object needs a non-empty string 'name'")
    key = next((k for k in ("arguments", "parameters", "args") if k in obj), None)
    if key is None:  # {"name": "John", "age": 3} is data, not a call
        return ParseFailure("an object with a 'name' but no 'arguments' is not a call")
    raw = obj[key]
    if isinstance(raw, str):
        raw = parse_literal(raw) if raw.strip() else {}
        if isinstance(raw, ParseFailure):
            return ParseFailure(f"'arguments' string: {raw.reason}")
    if not isinstance(raw, dict):
        return ParseFailure(f"'arguments' must be an object, got {type(raw).__name__}")
    return [ToolCall(name.strip(), raw)]


def _object_at(text: str, start: int) -> tuple[Any, int] | None:
    """The JSON (or Python-literal) value starting at ``text[start]`` and the index past it."""
    try:
        return _JSON.raw_decode(text, start)
    except (ValueError, RecursionError):
        pass
    end = _balanced_end(text, start)
    if end < 0:
        return None
    value = parse_literal(text[start:end])
    return None if isinstance(value, ParseFailure) else (value, end)


def _embedded_calls(text: str) -> list[ToolCall] | ParseFailure:
    """Every call in ``text``, in order: python-form ``name(k=v, ...)`` and call objects
    ``{"name": ..., "arguments": ...}`` inside prose, a Python list or one per line. Whatever comes
    first is read whole, so a dict argument of a python call or a call-like string inside an object
    is never taken for a call of its own. Candidates that do not parse (``see (below)``) are
    skipped (a text that is one whole call never gets here: ``_whole_call`` reads it)."""
    calls: list[ToolCall] = []
    failures: list[ParseFailure] = []
    pos = 0
    for _ in range(_MAX_CANDIDATES):
        match = _CALL_START.search(text, pos)
        brace = text.find("{", pos)
        if match is None and brace < 0:
            break
        if brace >= 0 and (match is None or brace < match.start()):
            found = _object_at(text, brace)
            if found is None:
                pos = brace + 1
                continue
            obj, pos = found
            parsed = _calls_from_object(obj)
            if not isinstance(parsed, ParseFailure):
                calls.extend(parsed)
            continue
        end = _balanced_end(text, match.end() - 1)
        if end < 0:
            failures.append(ParseFailure(f"unbalanced parentheses after {match.group(1)!r}"))
            pos = match.end()
            continue
        arguments = _python_arguments(text[match.end():end - 1])
        if isinstance(arguments, ParseFailure):
            failures.append(ParseFailure(f"{match.group(1)}(...): {arguments.reason}"))
            pos = match.end()
            continue
        calls.append(ToolCall(match.group(1), arguments))
        pos = end
    if calls:
        return calls
    return failures[0] if failures else ParseFailure("no call found")


# ---------------------------------------------------------------------------------------------
# ReAct and <tool_call>


def _react_calls(text: str, matches: list[re.Match]) -> list[ToolCall] | ParseFailure:
    calls = []
    for match in matches:
        name = match.group("name").strip().strip(_REACT_NAME_QUOTES).strip()
        if not name:
            return ParseFailure("ReAct 'Action:' without a tool name")
        stop = _REACT_INPUT_END.search(text, match.end())
        raw = text[match.end():stop.start() if stop else len(text)].strip()
        if not raw or raw in ("None", "null"):
            calls.append(ToolCall(name, {}))
            continue
        found = _object_at(raw, 0) if raw.startswith("{") else None
        if found is None or not isinstance(found[0], dict):
            return ParseFailure(f"ReAct 'Action Input' of {name!r} is not a JSON object")
        calls.append(ToolCall(name, found[0]))
    return calls


def _whole_react_call(text: str) -> list[ToolCall] | ParseFailure | None:
    """The reading of ``text`` when it is one ReAct pair (a ``Thought:`` before it allowed) whose
    ``Action Input`` object ends the text; None for any other text."""
    matches = list(_REACT.finditer(text))
    if len(matches) != 1 or "<tool_call>" in text[:matches[0].start()]:
        return None
    rest = text[matches[0].end():]
    found = _object_at(rest, 0) if rest.startswith("{") else None
    if found is None or found[1] != len(rest):
        return None
    return _react_calls(text, matches)


def _whole_call(text: str) -> list[ToolCall] | ParseFailure | None:
    """The reading of a stripped text that is, from its first to its last character, one JSON
    value, one python-form call, one ReAct pair or one ``<tool_call>`` block holding one of those
    (each way ``format_call`` writes a call): read as that and nothing else, so markup inside a
    value or a name (``"</tool_call><tool_call>{'name': 'g', ...}"``) is never taken for a call of
    its own. None for any other text."""
    if text[:1] in ("{", "["):
        whole = parse_literal(text)
        if isinstance(whole, (dict, list)):
            return _calls_from_object(whole)
    if text.startswith("<tool_call>") and text.endswith("</tool_call>"):
        inner = text[len("<tool_call>"):-len("</tool_call>")].strip()
        found = _whole_call(inner) if inner else None
        if found is not None:
            return found
    python = _whole_python_call(text)
    return python if python is not None else _whole_react_call(text)


def _tool_call_blocks(blocks: list[str]) -> list[ToolCall] | ParseFailure:
    calls: list[ToolCall] = []
    for block in blocks:
        block = block.strip()
        found = _whole_call(block)
        if found is None:
            found = _embedded_calls(block)
        if isinstance(found, ParseFailure):
            return ParseFailure(f"<tool_call> block: {found.reason}")
        calls.extend(found)
    return calls


# ---------------------------------------------------------------------------------------------
# public parsing API


def _strip_end_markers(text: str) -> str:
    text = text.strip()
    stripped = True
    while stripped:
        stripped = False
        for marker in END_MARKERS:
            if text.endswith(marker):
                text = text[: -len(marker)].rstrip()
                stripped = True
    return text


def parse_calls(text: str) -> list[ToolCall] | ParseFailure:
    """All calls in ``text`` (parallel calls), in order; a ``ParseFailure`` when there is none.

    A text that is one whole rendering (a JSON/Python value: a call object, an OpenAI message or
    ``tool_calls`` list, a list of call objects; one python-form call; one ReAct pair; one
    ``<tool_call>`` block holding one of those) is read as that. Otherwise these readings are tried in order and the first that finds calls wins (so a
    value such as ``"<tool_call>"`` inside a python-form call does not derail it); when none does,
    the first one's failure is returned: ``<tool_call>`` blocks; ReAct ``Action:`` /
    ``Action Input:`` pairs; python-form calls and call objects inside prose, in a Python list or
    one per line (``f(a=1)``, ``[f(a=1), g(b=2)]``).
    """
    if not isinstance(text, str):
        return ParseFailure(f"expected a string, got {type(text).__name__}")
    text = _strip_end_markers(text)
    if not text:
        return ParseFailure("empty output")
    whole = _whole_call(text)
    if whole is not None:
        return whole
    readings = []
    blocks = _TOOL_CALL_BLOCK.findall(text)
    if blocks:
        readings.append(_tool_call_blocks(blocks))
    react = list(_REACT.finditer(text))
    if react:
        readings.append(_react_calls(text, react))
    readings.append(_embedded_calls(text))
    for found in readings:
        if not isinstance(found, ParseFailure):
            return found
    return readings[0]


def parse_call(text: str) -> ToolCall | ParseFailure:
    """The single call in ``text`` (see ``parse_calls`` for the renderings); a ``ParseFailure``
    when there is none or more than one."""
    calls = parse_calls(text)
    if isinstance(calls, ParseFailure):
        return calls
    if len(calls) != 1:
        return ParseFailure(f"expected one call, found {len(calls)}")
    return calls[0]


# ---------------------------------------------------------------------------------------------
# formatting


def _json(value: Any) -> str:
    """JSON text of a value; NaN and infinity are refused (``ValueError``): the parsers do not read
    them back."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def unwritable_name(name: Any, style: str) -> str | None:
    """Why ``format_call`` cannot write the tool name ``name`` in ``style`` so that ``parse_call``
    reads back the same name, or None when it can. Every parser strips the whitespace around a
    name; the python form knows only identifier-like names (``_NAME``); a ReAct name is one line
    and its surrounding quotes are stripped."""
    if not isinstance(name, str) or not name or name != name.strip():
        return "a tool name is a non-empty string without leading or trailing whitespace"
    if style == "python" and not re.fullmatch(_NAME, name):
        return ("a python-form name is a letter or '_' followed by letters, digits, '_', '.' or '-'; "
                "anything else (a space, a quote, a parenthesis) would read back as another call")
    if style == "react" and ("\n" in name or name[0] in _REACT_NAME_QUOTES or name[-1] in _REACT_NAME_QUOTES):
        return "a ReAct name is one line that neither starts nor ends with a quote or backtick"
    return None


def _check_writable(call: ToolCall, style: str) -> None:
    """``ValueError`` naming the name (and the styles that can carry it) or the key that ``style``
    cannot write unambiguously."""
    problem = unwritable_name(call.name, style)
    if problem is not None:
        carriers = [s for s in STYLES if unwritable_name(call.name, s) is None]
        raise ValueError(f"cannot write tool name {call.name!r} in the {style!r} call style: {problem} "
                         f"(styles that carry it: {', '.join(carriers) or 'none'})")
    for key in call.arguments:
        if not isinstance(key, str):
            raise ValueError(f"argument key {key!r} of {call.name!r} is not a string (JSON would turn it "
                             "into one, so it would not read back)")


def format_call_spans(call: ToolCall, style: str = "python"
                      ) -> tuple[str, tuple[int, int], tuple[tuple[int, int], ...]]:
    """``format_call``'s text plus the character span ``(start, end)`` of the tool name and of each
    argument value, in argument order. A value span covers the value's JSON text exactly (a string
    value's span includes its quotes); in the JSON styles the name span excludes the quotes.
    ``ValueError`` when ``style`` cannot carry the call's name (``unwritable_name``)."""
    if style not in STYLES:
        raise ValueError(f"unknown call style {style!r} (expected one of {STYLES})")
    _check_writable(call, style)
    if style == "python":
        text, value_spans = call.name + "(", []
        for i, (key, value) in enumerate(call.arguments.items()):
            bare = key.isidentifier()  # else spelled **{"odd key": value}, which Python itself reads
            text += (", " if i else "") + (key + "=" if bare else "**{" + _json(key) + ": ")
            value_spans.append((len(text), len(text) + len(_json(value))))
            text += _json(value) + ("" if bare else "}")
        return text + ")", (0, len(call.name)), tuple(value_spans)
    if style == "react":
        head = "Action: "
        name_span = (len(head), len(head) + len(call.name))
        prefix = head + call.name + "\nAction Input: "
        body, value_spans = _json_object_spans(call.arguments, len(prefix))
        return prefix + body, name_span, value_spans
    prefix = "<tool_call>\n" if style == "tool_call" else ""
    name_json = _json(call.name)
    head = prefix + '{"name": ' + name_json + ', "arguments": '
    name_span = (len(prefix) + len('{"name": ') + 1, len(prefix) + len('{"name": ') + len(name_json) - 1)
    body, value_spans = _json_object_spans(call.arguments, len(head))
    suffix = "}\n</tool_call>" if style == "tool_call" else "}"
    return head + body + suffix, name_span, value_spans


def _json_object_spans(arguments: dict[str, Any], offset: int) -> tuple[str, tuple[tuple[int, int], ...]]:
    """``json.dumps(arguments, ensure_ascii=False)`` (same separators) and its value spans,
    shifted by ``offset``."""
    text, spans = "{", []
    for i, (key, value) in enumerate(arguments.items()):
        text += (", " if i else "") + _json(key) + ": "
        spans.append((offset + len(text), offset + len(text) + len(_json(value))))
        text += _json(value)
    return text + "}", tuple(spans)


def format_call(call: ToolCall, style: str = "python") -> str:
    """``call`` as text in ``style``: ``"python"`` gives the paper's ``name(key="json value", n=1)``,
    ``"react"`` ``Action: name\\nAction Input: {json}``, ``"json"`` ``{"name": ..., "arguments": {...}}``,
    ``"tool_call"`` that JSON inside ``<tool_call>`` tags. ``parse_call`` reads each back;
    ``ValueError`` where that could not hold (``unwritable_name``)."""
    return format_call_spans(call, style)[0]


def normalize_value(value: Any) -> Any:
    """``value`` as JSON would give it back: tuples become lists, dict keys strings; values that are
    not JSON-serialisable become their ``str``. Used wherever two argument values are compared."""
    try:
        return json.loads(json.dumps(value, ensure_ascii=False, default=str))
    except (ValueError, TypeError, RecursionError):  # circular or absurdly deep: compare by identity
        return f"<unserialisable {type(value).__name__} at {id(value):x}>"
