"""Readers: tool-use data in the common formats -> ``list[Trajectory]``.

``read_trajectories(path, format="auto")`` picks a reader from ``FORMATS`` (``detect_format`` looks
at the path and the first record) and returns validated ``Trajectory`` records. Each reader is one
small generator that turns the records of its format into trajectories; the shared work (loading
JSON / JSONL, locating errors, validating, parsing call text with ``tl_lightning.calls``) lives in
the helpers below.

Errors. A malformed record becomes a ``DataError`` naming the file, the record (index and id) and
the field: a dotted path into the source record (``messages[3].tool_calls[0].function.arguments``)
for what the reader finds while converting, a path into the ``Trajectory`` (``messages[3].calls[0].name``)
for what ``validate_trajectory`` finds afterwards (e.g. a call to a tool that is not in the list).
``on_error="raise"`` raises the first one; ``on_error="skip"`` drops the record and counts it in the
``ReadReport`` (``read_trajectories_with_report``), so nothing disappears silently. A file that
cannot be read at all (truncated JSON list, not UTF-8, missing schema file) always raises: there is
no record to skip; so does a read that finds no record at all (an empty list or file). In JSON Lines files each line is a record, so a truncated line is a skippable record error.

Formats (see ``../shared/data/FORMATS.md`` for the public sources):

- ``openai``: ``{"messages": [...], "tools": [...]}`` with assistant ``tool_calls`` and role ``tool``
  (JSON list or JSONL). The project's normalized format: ``write_jsonl`` writes it, adding ``id``,
  ``meta`` and, on assistant messages, ``alternatives`` (other correct call sets, same encoding as
  ``tool_calls``); reading it back gives equal records.
- ``tl``: the TL-Training authors' raw format: ``[{"role": "System"|"User"|"Assistant"|"Output",
  "content"}]``; the System content holds the tools as Python signatures with docstrings, assistant
  calls are python-form ``name(k='v')``.
- ``sharegpt``: ``{"conversations": [{"from", "value"}], "tools": ...}``.
- ``rotbench`` (= ``tooleyes``): ShareGPT-shaped ReAct records whose tool list is JSON inside the
  system prompt; the last assistant value may be a list of acceptable calls. ToolEyes' raw
  ``{"query", "path"}`` records take their tools from ``<path>/config_gpt4.json``.
- ``toolalpaca``, ``bfcl``, ``apibank``, ``sgd``, ``taubench``, ``sealtools``: see their readers.
- ``synthetic``: not a file but a built-in world, named by a source string such as
  ``synthetic:heldout_domains`` or ``synthetic-sft:train?n=400`` (grammar in
  ``tl_lightning.data.world.spec``).

Known defects of the public files are repaired where the intent is unambiguous, and every repair
is recorded in the trajectory's ``meta`` (``repaired_inputs``: ToolAlpaca gold inputs that are not
JSON; ``repaired_gold_names``: a BFCL answer naming a tool without its module, or naming another
function where only one is declared (``bfcl_declared_name``); ``duplicate_tools``:
a tool name a prompt declares twice; ``original_id``: an id a file repeats).

Where tools are parsed out of a system prompt (``tl``, ``rotbench``, ``sharegpt`` without a
``tools`` key) the prompt is moved to ``meta["system_prompt"]`` instead of staying a message: the
renderer writes the tool list itself, so keeping the prompt would show the tools twice.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tl_lightning.bfcl_answers import bfcl_answer_from_calls, bfcl_declared_name, bfcl_reference_call
from tl_lightning.calls import ParseFailure, parse_call, parse_calls, split_top_level
from tl_lightning.data.world.spec import is_synthetic_spec, parse_spec, read_spec
from tl_lightning.records import (
    DataError,
    Message,
    ToolCall,
    ToolSpec,
    Trajectory,
    validate_trajectory,
)

ON_ERROR = ("raise", "skip")
SYNTHETIC = "synthetic"
"""The format of the built-in worlds' source strings (``synthetic:<split>``, see ``world.spec``)."""


@dataclass(frozen=True)
class ReadOptions:
    """What a reader may need besides the path: side files that are not where they usually are."""

    tools_path: Path | None = None
    answers_path: Path | None = None


@dataclass(frozen=True)
class EmptyFile:
    """A file that holds no record (API-Bank ships one 0-byte dialogue file): reported, not an error."""

    path: str


@dataclass
class ReadReport:
    """The outcome of one read: how many trajectories were read, every record that was skipped
    (with its error) and every file that held no record."""

    source: str
    format: str
    read: int = 0
    errors: list[DataError] = field(default_factory=list)
    empty_files: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "format": self.format, "read": self.read, "skipped": self.skipped,
                "errors": [str(e) for e in self.errors], "empty_files": list(self.empty_files)}


# A reader yields, per source record, the trajectory or the DataError that record raised (and an
# EmptyFile for a file without records, where a file is a record).
Reader = Callable[[Path, ReadOptions], Iterator[Trajectory | DataError | EmptyFile]]


# =============================================================================================
# shared helpers: loading, locating errors, checking fields


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file; ``DataError`` naming the file when it cannot be read or is not
    UTF-8 (every reader, and the predictions file of ``evaluate``, read through here)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read: {e}", source=str(path)) from None
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); save it as UTF-8",
                        source=str(path)) from None


def _invalid_json(path: Path, e: json.JSONDecodeError) -> DataError:
    return DataError(f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno}); truncated or not JSON",
                     source=str(path))


def _load_json(path: Path) -> Any:
    """The whole file as one JSON value; ``DataError`` naming the file (and position) if it is not."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise _invalid_json(path, e) from None


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """``(record index, value or DataError)`` per non-empty line of a JSON Lines file."""
    index = 0
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield index, json.loads(line)
        except json.JSONDecodeError as e:
            yield index, DataError(f"invalid JSON on line {line_no} ({e.msg} at column {e.colno})",
                                   source=str(path), index=index)
        index += 1


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    """``(record index, record or DataError)`` of a JSON list, a single JSON object, or JSON Lines
    (``.jsonl``, and ``.json`` files holding one object per line, as BFCL's do)."""
    if path.suffix == ".jsonl":
        yield from _jsonl_records(path)
        return
    text = read_text(path)
    if not text.strip():
        return  # an empty file holds no records (the read says so), it is not broken JSON
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg != "Extra data":
            raise _invalid_json(path, e) from None
        yield from _jsonl_records(path)
        return
    yield from enumerate(data if isinstance(data, list) else [data])


def _record_id(record: Any) -> str | None:
    if isinstance(record, dict):
        for key in ("id", "dialogue_id", "task_id"):
            if isinstance(record.get(key), (str, int)) and not isinstance(record.get(key), bool):
                return str(record[key])
    return None


def _build(source: Path, index: int, record: Any, build: Callable[[], Trajectory],
           record_id: str | None = None) -> Trajectory | DataError:
    """Run ``build`` and validate its trajectory; any problem becomes a located ``DataError``.

    Readers check the fields they use and raise ``DataError`` with the field path; the
    ``KeyError``/``TypeError``/``AttributeError`` net catches a wrong shape nobody checked for, so
    one odd record never aborts a file with a bare traceback.
    """
    if isinstance(record, DataError):
        return record
    rid = record_id if record_id is not None else _record_id(record)
    try:
        return validate_trajectory(build())
    except DataError as e:
        return e.located(source=str(source), index=index, record_id=rid)
    except (KeyError, TypeError, AttributeError) as e:
        return DataError(f"unexpected record structure ({type(e).__name__}: {e})",
                         source=str(source), index=index, record_id=rid)


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str = "", default: Any = ...) -> Any:
    """``obj[key]`` checked to be a ``kind``; ``DataError`` with field ``where.key`` otherwise."""
    path = f"{where}.{key}" if where else key
    if not isinstance(obj, dict):
        raise DataError(f"expected an object, got {type(obj).__name__}", field=where or None)
    if key not in obj or obj[key] is None:
        if default is not ...:
            return default
        raise DataError(f"missing field {key!r}", field=path)
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _as_tuple(kind):
        names = "/".join(k.__name__ for k in _as_tuple(kind))
        raise DataError(f"expected {names}, got {type(value).__name__}", field=path)
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _tools_from_list(raw: Any, where: str) -> tuple[ToolSpec, ...]:
    """ToolSpecs from a list of ``{"name", "description", "parameters"}`` / OpenAI tool dicts."""
    if isinstance(raw, str):  # some ShareGPT exports store the tool list as a JSON string
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"tool list is not valid JSON ({e.msg})", field=where) from None
    if not isinstance(raw, list):
        raise DataError(f"tool list must be a list, got {type(raw).__name__}", field=where)
    tools = []
    for i, spec in enumerate(raw):
        try:
            tools.append(ToolSpec.from_dict(spec))
        except DataError as e:
            raise e.located(field_prefix=f"{where}[{i}]") from None
    return tuple(tools)


def _first_of_each_name(tools: tuple[ToolSpec, ...], meta: dict[str, Any]) -> tuple[ToolSpec, ...]:
    """Keep the first tool of each name. Benchmark prompts sometimes declare a name twice (RoTBench's
    Formula-1 tools list a second ``drivers`` that describes teams); the model sees the prompt's first
    one under that name, and the later ones are kept in ``meta["duplicate_tools"]``."""
    kept: dict[str, ToolSpec] = {}
    for t in tools:
        if t.name in kept:
            meta.setdefault("duplicate_tools", []).append(t.to_openai()["function"])
        else:
            kept[t.name] = t
    return tuple(kept.values())


def _require_tools(tools: tuple[ToolSpec, ...] | None, messages: Iterable[Message],
                   where: str) -> tuple[ToolSpec, ...]:
    """A record that calls tools must say which tools exist."""
    if tools is None:
        if any(m.calls for m in messages):
            raise DataError("the record makes tool calls but has no tool list", field=where)
        return ()
    return tools


def _arguments(raw: Any, where: str) -> dict[str, Any]:
    """Call arguments given as a dict or a JSON-encoded string."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as e:
            raise DataError(f"arguments are not valid JSON ({e.msg})", field=where) from None
    if not isinstance(raw, dict):
        raise DataError(f"arguments must be an object, got {type(raw).__name__}", field=where)
    return raw


# Text that is meant as a call: it starts with ``name(`` (or ``[name(``) or a JSON call object, has a
# ``<tool_call>`` block, or a ReAct ``Action:`` line followed by ``Action Input:``. Prose such as
# "Paris (the capital)" or an answer quoting JSON further down is not.
_CALL_LIKE = re.compile(r'\A\s*(\[\s*)?[A-Za-z_][\w.\-]*\(|\A\s*\[?\s*\{\s*"(name|function|tool_calls)"'
                        r"|<tool_call>|^\s*Action\s*:.*\n\s*Action\s*Input\s*:", re.M)
_REACT_ACTION = re.compile(r"^\s*Action\s*:", re.M)


def _react_thought(text: str) -> str:
    """The free text before a ReAct ``Action:`` (without its ``Thought:`` label); "" for other
    renderings, whose call is the whole text."""
    if not _REACT_ACTION.search(text):
        return ""
    before = _REACT_ACTION.split(text, maxsplit=1)[0]
    return re.sub(r"^\s*Thought\s*:\s*", "", before).strip()


def _calls_from_text(text: str, where: str) -> tuple[ToolCall, ...]:
    calls = parse_calls(text)
    if isinstance(calls, ParseFailure):
        raise DataError(f"cannot parse the call ({calls.reason}): {text[:120]!r}", field=where)
    return tuple(calls)


def _assistant_from_text(text: str, where: str) -> Message:
    """An assistant turn whose calls are written in its text (python form, ReAct, JSON,
    ``<tool_call>``). Text that does not look like a call is a plain answer; text that looks like
    one must parse."""
    if not _CALL_LIKE.search(text):
        return Message("assistant", text)
    return Message("assistant", _react_thought(text), _calls_from_text(text, where))


def _assistant_from_candidates(candidates: list[Any], where: str) -> Message:
    """A gold turn given as a list of acceptable call texts: the first is ``calls``, the rest
    ``alternatives``."""
    if not candidates:
        raise DataError("empty list of candidate answers", field=where)
    sets = []
    for i, text in enumerate(candidates):
        if not isinstance(text, str):
            raise DataError(f"a candidate must be a string, got {type(text).__name__}", field=f"{where}[{i}]")
        sets.append(_calls_from_text(text, f"{where}[{i}]"))
    return Message("assistant", _react_thought(candidates[0]), sets[0], tuple(sets[1:]))


def _tool_list_in_prompt(prompt: str) -> list[Any] | None:
    """The JSON tool list written inside a system prompt (RoTBench/ToolEyes), or None."""
    start = prompt.find("[{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(prompt, start)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


# JSON-schema types for the type names the sources use (Python names, BFCL's, ToolAlpaca's).
_TYPE_NAMES = {
    "str": "string", "string": "string", "datetime": "string", "date": "string",
    "int": "integer", "integer": "integer", "float": "number", "number": "number", "double": "number",
    "bool": "boolean", "boolean": "boolean", "list": "array", "array": "array", "tuple": "array",
    "dict": "object", "object": "object",
}


def _schema_for_type(name: str) -> dict[str, Any]:
    """A JSON-schema fragment for a type name such as ``str``, ``List[str]``, ``Array[string]``;
    ``{}`` (any value) for names we do not know."""
    name = name.strip()
    generic = re.fullmatch(r"(?i)(list|array|tuple)\s*\[\s*(\w+)\s*\]", name)
    if generic:
        return {"type": "array", "items": _schema_for_type(generic.group(2))}
    kind = _TYPE_NAMES.get(name) or _TYPE_NAMES.get(name.lower())
    return {"type": kind} if kind else {}


def _object_schema(properties: dict[str, dict[str, Any]], required: Iterable[str] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


def _find_side_file(candidates: Iterable[Path], what: str, source: Path) -> Path:
    candidates = list(candidates)
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(f"{what} not found (looked for {', '.join(str(c) for c in candidates)}; "
                    "pass its path explicitly)", source=str(source))


# =============================================================================================
# openai (also the normalized format)


def _content_text(raw: Any, where: str) -> str:
    """Message content: a string, None, or OpenAI's list of ``{"type": "text", "text"}`` parts."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in raw):
        return "".join(p["text"] for p in raw)
    raise DataError(f"content must be a string, got {type(raw).__name__}", field=where)


def _openai_call(raw: Any, where: str) -> ToolCall:
    fn = _get(raw, "function", dict, where) if isinstance(raw, dict) and "function" in raw else raw
    fwhere = f"{where}.function" if fn is not raw else where
    name = _get(fn, "name", str, fwhere)
    return ToolCall(name, _arguments(fn.get("arguments", {}), f"{fwhere}.arguments"))


def _openai_calls(raw: Any, where: str) -> tuple[ToolCall, ...]:
    if not isinstance(raw, list):
        raise DataError(f"expected a list of tool calls, got {type(raw).__name__}", field=where)
    return tuple(_openai_call(c, f"{where}[{j}]") for j, c in enumerate(raw))


_OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
                 "tool": "tool", "function": "tool"}


def _openai_messages(raw: Any, where: str) -> tuple[Message, ...]:
    """OpenAI chat messages -> Messages. A tool message without a ``name`` takes it from the call
    its ``tool_call_id`` answers."""
    if not isinstance(raw, list):
        raise DataError(f"expected a list of messages, got {type(raw).__name__}", field=where)
    names_by_call_id: dict[str, str] = {}
    messages = []
    for i, m in enumerate(raw):
        mw = f"{where}[{i}]"
        role = _OPENAI_ROLES.get(_get(m, "role", str, mw))
        if role is None:
            raise DataError(f"unknown role {m['role']!r}", field=f"{mw}.role")
        content = _content_text(m.get("content"), f"{mw}.content")
        if role == "assistant":
            calls = _openai_calls(m["tool_calls"], f"{mw}.tool_calls") if m.get("tool_calls") else ()
            if m.get("function_call"):  # the pre-tools OpenAI API: one call per message
                calls += (_openai_call(m["function_call"], f"{mw}.function_call"),)
            for j, c in enumerate(m.get("tool_calls") or []):
                if isinstance(c, dict) and isinstance(c.get("id"), str):
                    names_by_call_id[c["id"]] = calls[j].name
            alternatives = tuple(_openai_calls(alt, f"{mw}.alternatives[{a}]")
                                 for a, alt in enumerate(_get(m, "alternatives", list, mw, [])))
            messages.append(Message("assistant", content, calls, alternatives))
        elif role == "tool":
            name = m.get("name") or names_by_call_id.get(m.get("tool_call_id") or "")
            if name is not None and not isinstance(name, str):
                raise DataError(f"expected str, got {type(name).__name__}", field=f"{mw}.name")
            messages.append(Message("tool", content, name=name))
        else:
            messages.append(Message(role, content))
    return tuple(messages)


def _openai_record(path: Path, index: int, rec: Any, fmt: str = "openai") -> Trajectory:
    messages = _openai_messages(_get(rec, "messages", list), "messages")
    tools = _require_tools(_tools_from_list(rec["tools"], "tools") if rec.get("tools") is not None else None,
                           messages, "tools")
    meta = dict(_get(rec, "meta", dict, default={}))
    for key, value in (("source", str(path)), ("format", fmt), ("index", index)):
        meta.setdefault(key, value)  # a normalized file keeps the provenance of the original
    rid = _record_id(rec)
    return Trajectory(rid if rid is not None else f"{path.stem}-{index}", tools, messages, meta)


def read_openai(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """OpenAI chat records (JSON list or JSONL), also the project's normalized JSONL."""
    for index, rec in _records(path):
        yield _build(path, index, rec, lambda: _openai_record(path, index, rec))


# =============================================================================================
# tl: the TL-Training authors' raw format


_TL_ROLES = {"system": "system", "user": "user", "assistant": "assistant", "output": "tool",
             "function": "tool", "observation": "tool", "tool": "tool"}
_FUNCTION_BLOCK = re.compile(r"Function:\s*\n(def .*?\n\s*\"\"\"(?:.*?)\"\"\")", re.S)
_SIGNATURE = re.compile(r"def\s+(?P<name>[^\s(]+)\s*\((?P<params>.*)\)\s*(->.*)?:\s*$")
_ARG_DOC = re.compile(r"^(?P<name>[^\s(]+)\s*\((?P<type>[^)]*)\)\s*:\s?(?P<desc>.*)$")


def _split_params(text: str) -> list[str]:
    """A signature's parameters, split at top-level commas (types may be ``Dict[str, int]``)."""
    return [p.strip() for p in split_top_level(text) if p.strip()]


def _signature_params(params: str) -> list[tuple[str, str, bool]]:
    """``a:str, b: int = None`` -> ``[(name, annotation, has_default), ...]``."""
    out = []
    for param in _split_params(params):
        pm = re.match(r"(?P<name>[^\s:=]+)\s*(?::\s*(?P<ann>[^=]+?))?\s*(?P<default>=.*)?$", param)
        if pm and pm.group("name") not in ("self", "/") and not pm.group("name").startswith("*"):
            out.append((pm.group("name"), pm.group("ann") or "", pm.group("default") is not None))
    return out


def _args_section(args_doc: str, names: set[str]) -> dict[str, tuple[str, str]]:
    """``Args:`` lines ``name (type): description`` -> {name: (type, description)}. A line starts a
    new entry only when it names a parameter of the signature; other lines (also blank ones)
    continue the description before them, as a multi-line description is written."""
    documented: dict[str, tuple[str, str]] = {}
    last = None
    for line in re.sub(r"\n {0,4}$", "", args_doc).splitlines():
        m = _ARG_DOC.match(line.lstrip())
        if m and m.group("name") in names and m.group("name") not in documented:
            last = m.group("name")
            documented[last] = (m.group("type"), m.group("desc"))
        elif last:
            documented[last] = (documented[last][0], documented[last][1] + "\n" + re.sub(r"^ {1,8}", "", line))
    return documented


def _tool_from_signature_doc(block: str, where: str) -> ToolSpec:
    """One ``def name(a: str, b: int = None):`` + docstring block -> ToolSpec (JSON schema): a
    parameter without default is required; its type is the ``Args:`` type, else the annotation's.
    Descriptions are kept exactly as ``render.format_tools_codellama`` writes them (the indentation
    it adds is removed; a description's own line breaks stay)."""
    header, _, rest = block.partition("\n")
    sig = _SIGNATURE.match(header.strip())
    if not sig:
        raise DataError(f"cannot read the tool signature {header.strip()!r}", field=where)
    params = _signature_params(sig.group("params"))
    description, args_doc = _split_args_section(rest.split('"""', 2)[1])
    documented = _args_section(args_doc, {name for name, _, _ in params})
    properties, required = {}, []
    for name, annotation, has_default in params:
        doc_type, doc_desc = documented.get(name, ("", ""))
        schema = _schema_for_type(doc_type) or _schema_for_type(annotation)
        if doc_desc:
            schema["description"] = doc_desc
        properties[name] = schema
        if not has_default:
            required.append(name)
    return ToolSpec(sig.group("name"), description, _object_schema(properties, required))


def _split_args_section(doc: str) -> tuple[str, str]:
    """A docstring's description (without the 4-space indent of its first line) and its
    ``Args:`` section."""
    parts = re.split(r"^\s*Args:\s*$", doc, maxsplit=1, flags=re.M)
    description = re.sub(r"^\n {0,4}", "", parts[0]).rstrip("\n")
    if len(parts) == 1:  # the closing quotes' indentation follows the description
        description = re.sub(r"\n {0,4}$", "", description)
    return description.rstrip("\n"), parts[1] if len(parts) == 2 else ""


def _tools_from_signature_docs(text: str, where: str) -> tuple[tuple[ToolSpec, ...], str]:
    """All ``Function:`` blocks of a TL system prompt as ToolSpecs, and the text left over."""
    tools = tuple(_tool_from_signature_doc(m.group(1), where) for m in _FUNCTION_BLOCK.finditer(text))
    return tools, _FUNCTION_BLOCK.sub("", text).strip()


def _tl_record(path: Path, index: int, rec: Any) -> Trajectory:
    where = "messages"
    if isinstance(rec, dict):
        where = "conversations" if "conversations" in rec else "messages"
        raw = _get(rec, where, list)
    elif isinstance(rec, list):
        raw, where = rec, ""
    else:
        raise DataError(f"a record must be a list of messages or an object, got {type(rec).__name__}")
    tools: tuple[ToolSpec, ...] | None = None
    meta: dict[str, Any] = {"source": str(path), "format": "tl", "index": index}
    messages = []
    for i, m in enumerate(raw):
        mw = f"{where}[{i}]" if where else f"[{i}]"
        role = _TL_ROLES.get(_get(m, "role", str, mw).lower())
        if role is None:
            raise DataError(f"unknown role {m['role']!r}", field=f"{mw}.role")
        content = _get(m, "content", str, mw)
        if role == "system" and "Function:" in content:
            found, rest = _tools_from_signature_docs(content, f"{mw}.content")
            tools = (tools or ()) + found
            meta["system_prompt"] = content
            if rest:
                messages.append(Message("system", rest))
        elif role == "assistant":
            messages.append(_assistant_from_text(content, f"{mw}.content"))
        else:
            messages.append(Message(role, content))
    tools = _require_tools(tools, messages, f"{where}[0].content" if where else "[0].content")
    rid = _record_id(rec)
    return Trajectory(rid if rid is not None else f"{path.stem}-{index}", tools, tuple(messages), meta)


def read_tl(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """The TL-Training raw format: conversations of ``{"role": System/User/Assistant/Output, "content"}``."""
    for index, rec in _records(path):
        yield _build(path, index, rec, lambda: _tl_record(path, index, rec))


# =============================================================================================
# sharegpt, rotbench / tooleyes


_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                   "assistant": "assistant", "function_call": "assistant", "function": "tool",
                   "observation": "tool", "tool": "tool"}


def _sharegpt_messages(raw: Any, where: str) -> tuple[list[Message], str | None]:
    """ShareGPT turns -> Messages, plus the system prompt (kept out of the messages when it
    carries the tool list; the caller decides)."""
    if not isinstance(raw, list):
        raise DataError(f"expected a list of turns, got {type(raw).__name__}", field=where)
    messages, system = [], None
    for i, turn in enumerate(raw):
        tw = f"{where}[{i}]"
        speaker = _get(turn, "from", str, tw)
        role = _SHAREGPT_ROLES.get(speaker.lower())
        if role is None:
            raise DataError(f"unknown speaker {speaker!r}", field=f"{tw}.from")
        value = _get(turn, "value", (str, list), tw)
        if isinstance(value, list):
            if role != "assistant":
                raise DataError("only an assistant turn may list candidate answers", field=f"{tw}.value")
            messages.append(_assistant_from_candidates(value, f"{tw}.value"))
        elif speaker.lower() == "function_call":
            messages.append(Message("assistant", "", _calls_from_text(value, f"{tw}.value")))
        elif role == "assistant":
            messages.append(_assistant_from_text(value, f"{tw}.value"))
        elif role == "system" and i == 0:
            system = value
        else:
            messages.append(Message(role, value))
    return messages, system


def _sharegpt_record(path: Path, index: int, rec: Any, fmt: str) -> Trajectory:
    messages, system = _sharegpt_messages(_get(rec, "conversations", list), "conversations")
    meta: dict[str, Any] = {"source": str(path), "format": fmt, "index": index}
    for key in ("scenario", "path"):
        if key in rec:
            meta[key] = rec[key]
    tools = None
    if rec.get("tools") is not None:
        tools = _tools_from_list(rec["tools"], "tools")
    elif system is not None and (listed := _tool_list_in_prompt(system)) is not None:
        tools = _first_of_each_name(_tools_from_list(listed, "conversations[0].value"), meta)
    if system is not None:
        if tools is not None and rec.get("tools") is None:
            meta["system_prompt"] = system
        else:
            messages.insert(0, Message("system", system))
    if fmt == "rotbench" and tools is None:
        raise DataError("no tool list in the system prompt", field="conversations[0].value")
    tools = _require_tools(tools, messages, "tools")
    rid = _record_id(rec)
    return Trajectory(rid if rid is not None else f"{path.stem}-{index}", tools, tuple(messages), meta)


def read_sharegpt(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """ShareGPT ``{"conversations": [{"from", "value"}], "tools": ...}`` records. Without a ``tools``
    key the tool list is taken from the system prompt when it holds one as JSON."""
    for index, rec in _records(path):
        yield _build(path, index, rec, lambda: _sharegpt_record(path, index, rec, "sharegpt"))


def _tooleyes_root(path: Path, tool_path: str) -> Path:
    """The folder that ToolEyes' ``path`` values (``ToolEyes/Tool_Library/...``) are relative to."""
    for parent in path.resolve().parents:
        if (parent / tool_path).is_dir():
            return parent
    raise DataError(f"tool folder {tool_path!r} not found above {path}", field="path")


def _tooleyes_raw_record(path: Path, index: int, rec: Any, options: ReadOptions) -> Trajectory:
    """ToolEyes ``{"query", "path", "scenario"}``: the query, tools from ``<path>/config_gpt4.json``."""
    query, tool_path = _get(rec, "query", str), _get(rec, "path", str)
    config = (options.tools_path or _tooleyes_root(path, tool_path)) / tool_path / "config_gpt4.json"
    meta = {"source": str(path), "format": "rotbench", "index": index, "path": tool_path,
            "scenario": rec.get("scenario")}
    tools = _first_of_each_name(_tools_from_list(_load_json(config), "path"), meta)
    return Trajectory(f"{path.stem}-{index}", tools, (Message("user", query),), meta)


def read_rotbench(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """RoTBench and ToolEyes: ShareGPT-shaped ReAct conversations whose tool list is JSON in the
    system prompt; a last assistant value that is a list holds every acceptable call (``calls`` =
    the first, ``alternatives`` = the rest). ``meta`` keeps ``scenario`` (and ToolEyes' ``path``).
    ToolEyes has no gold: its records end with the user query."""
    for index, rec in _records(path):
        if isinstance(rec, dict) and "conversations" not in rec and "query" in rec:
            yield _build(path, index, rec, lambda: _tooleyes_raw_record(path, index, rec, options))
        else:
            yield _build(path, index, rec, lambda: _sharegpt_record(path, index, rec, "rotbench"))


# =============================================================================================
# toolalpaca


# ToolAlpaca's agent can offer this tool besides the API's functions (its agent/tools.py
# GetDetailsTool; the description is shortened). The simulated set's gold calls it (6 first steps),
# so every ToolAlpaca trajectory lists it.
TOOLALPACA_GET_DETAILS = ToolSpec(
    "getDetails",
    "If the user's question lacks the essential information needed to answer it effectively, or "
    "contains vague terms or pronouns without sufficient context, ask the user for the missing "
    "critical details.",
    _object_schema({"Question": {"type": "string",
                                 "description": "The question to prompt user to provide sufficient information."}},
                   ["Question"]),
)
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _toolalpaca_param(text: str) -> tuple[dict[str, Any], bool]:
    """``"Required. string. One of: [a, b]. desc"`` -> (schema, required)."""
    required = text.startswith("Required.")
    rest = text[len("Required."):].strip() if required else text.strip()
    kind = re.match(r"(Array\[(\w+)\]|\w+)", rest)
    schema = _schema_for_type(kind.group(1)) if kind else {}
    one_of = re.search(r"One of: \[([^\]]*)\]", rest)
    if one_of and schema.get("type") == "string":
        schema["enum"] = [v.strip() for v in one_of.group(1).split(",")]
    schema["description"] = rest
    return schema, required


def _toolalpaca_function(name: str, text: str, where: str) -> ToolSpec:
    """``"desc\\nParameters: {json}\\nOutput: ..."`` -> ToolSpec."""
    m = re.match(r"(?P<desc>.*?)(?:^|\n)Parameters: (?P<params>\{.*?\})\nOutput:", text, re.S)
    if not m:
        raise DataError("expected 'description\\nParameters: {...}\\nOutput: ...'", field=where)
    try:
        params = json.loads(m.group("params"))
    except json.JSONDecodeError as e:
        raise DataError(f"Parameters are not valid JSON ({e.msg})", field=where) from None
    properties, required = {}, []
    for pname, ptext in params.items():
        properties[pname], is_required = _toolalpaca_param(str(ptext))
        if is_required:
            required.append(pname)
    return ToolSpec(name, m.group("desc").strip(), _object_schema(properties, required))


def _openapi_operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(path, method, operation)`` of an OpenAPI document. AviationAPI's document nests its later
    paths inside ``/preferred-routes``; those count as paths too."""
    for path, item in (doc.get("paths") or {}).items():
        for key, value in (item or {}).items():
            if key.startswith("/") and isinstance(value, dict):
                yield from ((key, m, op) for m, op in value.items() if m in _HTTP_METHODS)
            elif key in _HTTP_METHODS and isinstance(value, dict):
                yield path, key, value


def _toolalpaca_undescribed_tools(rec: dict[str, Any]) -> list[ToolSpec]:
    """Operations of the API's OpenAPI ``Documentation`` that ``Function_Projection`` (the
    functions ``Function_Description`` describes) leaves out, named as ToolAlpaca names functions
    (``path_with_underscores_method``). Only AviationAPI has any: it describes 5 of its 10
    operations, yet 6 of its gold answers call the other 5."""
    try:
        doc = json.loads(rec.get("Documentation") or "{}")
    except json.JSONDecodeError:
        return []
    projected = {tuple(v) for v in (rec.get("Function_Projection") or {}).values() if isinstance(v, list)}
    tools = []
    for path, method, op in _openapi_operations(doc):
        if (path, method) in projected:
            continue
        properties, required = {}, []
        for p in op.get("parameters") or []:
            if isinstance(p, dict) and isinstance(p.get("name"), str):
                schema = dict(_schema_for_type(str((p.get("schema") or {}).get("type", ""))))
                schema["description"] = p.get("description") or ""
                properties[p["name"]] = schema
                if p.get("required"):
                    required.append(p["name"])
        tools.append(ToolSpec(f"{path.strip('/').replace('/', '_')}_{method}",
                              op.get("summary") or op.get("description") or "",
                              _object_schema(properties, required)))
    return tools


_PLACEHOLDER = re.compile(r"\$\{[^}\",]*\}?\"?")
_DOUBLED_KEY = re.compile(r"(\"[^\"]+\"):\s*\1:")


def _toolalpaca_input(raw: Any, where: str) -> tuple[dict[str, Any], bool]:
    """A gold ``Action_Input`` JSON string -> (arguments, repaired).

    36 of ToolAlpaca's gold inputs are not JSON. Two repairs make all of them load, and the trajectory
    records which steps were repaired (``meta["repaired_inputs"]``, with the raw strings):
    unquoted placeholders for a value the step cannot know yet (``${animeId from searchAnime}``,
    sometimes missing its ``}`` or followed by a stray quote) become that placeholder as a string;
    a doubled key (``"symbols": "symbols": [...]``) is written once.
    """
    if not isinstance(raw, str):
        raise DataError(f"expected a JSON string, got {type(raw).__name__}", field=where)
    try:
        return _arguments(raw, where), False
    except DataError:
        fixed = _DOUBLED_KEY.sub(r"\1:", raw)
        fixed = _PLACEHOLDER.sub(lambda m: json.dumps(m.group(0).rstrip('"').rstrip("}") + "}"), fixed)
        return _arguments(fixed, where), True


def _toolalpaca_tools(rec: dict[str, Any]) -> tuple[ToolSpec, ...]:
    described = _get(rec, "Function_Description", dict)
    tools = [_toolalpaca_function(name, _get(described, name, str, "Function_Description"),
                                  f"Function_Description.{name}")
             for name in described if name != "components"]
    tools += _toolalpaca_undescribed_tools(rec)
    if all(t.name != TOOLALPACA_GET_DETAILS.name for t in tools):
        tools.append(TOOLALPACA_GET_DETAILS)
    return tuple(tools)


def _toolalpaca_instruction(path: Path, api_index: int, rec: dict[str, Any], tools: tuple[ToolSpec, ...],
                            i: int) -> Trajectory:
    instruction = _get(rec, "Instructions", list)[i]
    if not isinstance(instruction, str):
        raise DataError(f"expected str, got {type(instruction).__name__}", field=f"Instructions[{i}]")
    answers = _get(rec, "Golden_Answers", list)
    if i >= len(answers) or not isinstance(answers[i], list) or not answers[i]:
        raise DataError("no gold steps for this instruction", field=f"Golden_Answers[{i}]")
    steps, repaired = [], []
    for s, step in enumerate(answers[i]):
        sw = f"Golden_Answers[{i}][{s}]"
        action = _get(step, "Action", str, sw)
        optional = action.startswith("[Optional]")  # one simulated answer marks a step optional
        arguments, was_repaired = _toolalpaca_input(step.get("Action_Input"), f"{sw}.Action_Input")
        if was_repaired:
            repaired.append({"step": s, "action_input": step["Action_Input"]})
        steps.append({"name": action.removeprefix("[Optional]"), "arguments": arguments, "optional": optional})
    first = ToolCall(steps[0]["name"], steps[0]["arguments"])
    meta = {"source": str(path), "format": "toolalpaca", "index": api_index, "api": rec.get("Name"),
            "instruction_index": i, "gold_steps": steps, "repaired_inputs": repaired}
    messages = (Message("user", instruction), Message("assistant", "", (first,)))
    return Trajectory(f"{rec.get('Name', path.stem)}-{i}", tools, messages, meta)


def read_toolalpaca(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """ToolAlpaca API records -> one trajectory per instruction: the instruction, then one assistant
    turn with the FIRST gold step (later steps need the outputs of earlier ones, which the data
    lacks; all steps are in ``meta["gold_steps"]``). Tools: the API's ``Function_Description``,
    operations its ``Documentation`` adds (see ``_toolalpaca_undescribed_tools``) and ``getDetails``.
    An error in an API's tool descriptions skips all of that API's instructions (one error)."""
    for api_index, rec in _records(path):
        if isinstance(rec, DataError):
            yield rec
            continue
        try:
            tools = _toolalpaca_tools(rec)
            instructions = _get(rec, "Instructions", list)
        except DataError as e:  # without its tools none of the API's instructions can load
            yield e.located(source=str(path), index=api_index,
                            record_id=rec.get("Name") if isinstance(rec, dict) else None)
            continue
        for i in range(len(instructions)):
            yield _build(path, api_index, rec, lambda: _toolalpaca_instruction(path, api_index, rec, tools, i),
                         record_id=f"{rec.get('Name', path.stem)}-{i}")


# =============================================================================================
# bfcl


def _bfcl_schema(node: Any) -> Any:
    """BFCL's parameter schema with ``"type": "dict"`` written ``"object"`` at every level (the
    other BFCL type names, e.g. ``float``/``tuple``/``any``, stay: its checker reads them)."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if out.get("type") == "dict":
        out["type"] = "object"
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _bfcl_schema(v) for k, v in out["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _bfcl_schema(out[key])
    return out


# Categories whose items expect no call (BFCL: "irrelevance" in the category name); they have no
# possible_answer records.
_BFCL_NO_CALL = "irrelevance"
# Categories whose values BFCL converts with Java / JavaScript type rules (java_type_converter /
# js_type_converter: values are source literals in strings, "new ArrayList<>(...)", "123L", "5n").
_BFCL_CONVERTED_LANGUAGES = ("java", "javascript")


def _bfcl_answers_path(path: Path, options: ReadOptions) -> Path:
    if options.answers_path is not None:
        return _find_side_file([options.answers_path], "BFCL answer file", path)
    return _find_side_file([path.parent / "possible_answer" / path.name,
                            path.parent.parent / "possible_answer" / path.name], "BFCL answer file", path)


@dataclass(frozen=True)
class _BfclAnswers:
    """A possible_answer file: its records by id, and why each unreadable line (by record index:
    BFCL keeps questions and answers in the same order) cannot be read."""

    source: Path
    by_id: dict[str, Any]
    broken: dict[int, str]


def _load_bfcl_answers(path: Path) -> _BfclAnswers:
    """Every line of a possible_answer file (JSON Lines); a line that is not a JSON object with a
    string ``id`` is kept as the reason its item cannot be scored, not as an error of the file."""
    by_id, broken = {}, {}
    for index, answer in _jsonl_records(path):
        if isinstance(answer, dict) and isinstance(answer.get("id"), str):
            by_id[answer["id"]] = answer
        else:
            broken[index] = str(answer if isinstance(answer, DataError) else
                                DataError("an answer record must be an object with a string 'id'",
                                          source=str(path), index=index))
    return _BfclAnswers(path, by_id, broken)


def _bfcl_category(rec: Any) -> str | None:
    """The BFCL category of a question record, from its id (``simple_0``, ``live_irrelevance_3-0-1``)."""
    rid = rec.get("id") if isinstance(rec, dict) else None
    return rid.rsplit("_", 1)[0] if isinstance(rid, str) else None


_ARITHMETIC = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
               ast.Div: lambda a, b: a / b}


def _folded(node: ast.expr) -> ast.expr:
    """``1/6`` or ``500*500`` as one number constant (only + - * / of numbers; anything else as is)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _folded(node.operand)
        if isinstance(inner, ast.Constant) and isinstance(inner.value, (int, float)):
            return ast.Constant(-inner.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _folded(node.left), _folded(node.right)
        numbers = [n.value for n in (left, right) if isinstance(n, ast.Constant)
                   and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)]
        if len(numbers) == 2 and not (isinstance(node.op, ast.Div) and numbers[1] == 0):
            return ast.Constant(_ARITHMETIC[type(node.op)](*numbers))
    return node


def _bfcl_exec_call(text: str, tools: tuple[ToolSpec, ...], where: str) -> ToolCall:
    """A BFCL ``exec_*`` answer (a Python call expression) -> ToolCall via ``parse_call``. Three of
    them pass an argument by position (``calculate_mean([1, 3])``) or write a value as arithmetic
    (``p=1/6``); those are first rewritten as keyword arguments (positions named by the tool's
    parameter order) with the arithmetic done, which needs the tool list ``calls.py`` does not have."""
    call = parse_call(text)
    if not isinstance(call, ParseFailure):
        return call
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if isinstance(node, ast.Call):
        spec = next((t for t in tools if t.name == ast.unparse(node.func)), None)
        names = list(spec.properties) if spec else []
        if len(node.args) <= len(names):
            keywords = [ast.keyword(n, v) for n, v in zip(names, node.args)] + list(node.keywords)
            rewritten = ast.Call(node.func, [], [ast.keyword(k.arg, _folded(k.value)) for k in keywords])
            retry = parse_call(ast.unparse(rewritten))
            if not isinstance(retry, ParseFailure):
                return retry
    raise DataError(f"cannot parse the call ({call.reason})", field=where)


def _declared_name(name: str, tools: tuple[ToolSpec, ...], repairs: dict[str, str], where: str) -> str:
    """``bfcl_declared_name``, recording a changed name in ``repairs``; ``DataError`` when the name
    stands for no declared function."""
    declared = bfcl_declared_name(name, tools)
    if declared not in {t.name for t in tools}:
        raise DataError(f"the answer names {name!r}, which is not among the declared functions "
                        f"{sorted(t.name for t in tools)}", field=where)
    if declared != name:
        repairs[name] = declared
    return declared


def _bfcl_gold(answer: Any, tools: tuple[ToolSpec, ...], where: str,
               repairs: dict[str, str]) -> tuple[ToolCall, ...]:
    """BFCL ``ground_truth`` -> its reference calls (``bfcl_reference_call`` per entry), after
    checking the shape of the answer; ``exec_*`` answers are call strings."""
    truth = _get(answer, "ground_truth", list, where)
    tools_by_name = {t.name: t for t in tools}
    calls = []
    for j, entry in enumerate(truth):
        ew = f"{where}.ground_truth[{j}]"
        if isinstance(entry, str):
            call = _bfcl_exec_call(entry, tools, ew)
            calls.append(ToolCall(_declared_name(call.name, tools, repairs, ew), call.arguments))
            continue
        if not isinstance(entry, dict) or len(entry) != 1:
            raise DataError("expected {tool name: {parameter: [acceptable values]}}", field=ew)
        (name, params), = entry.items()
        if not isinstance(params, dict):
            raise DataError(f"expected an object of parameters, got {type(params).__name__}",
                            field=f"{ew}.{name}")
        for p, values in params.items():
            if not isinstance(values, list) or not values:
                raise DataError("expected a non-empty list of acceptable values", field=f"{ew}.{name}.{p}")
        name = _declared_name(name, tools, repairs, ew)
        calls.append(bfcl_reference_call(name, params, tools_by_name.get(name)))
    if not calls:
        raise DataError("an empty ground truth (only the irrelevance categories expect no call)",
                        field=f"{where}.ground_truth")
    return tuple(calls)


def _bfcl_answer_meta(rid: str, index: int, tools: tuple[ToolSpec, ...],
                      answers: _BfclAnswers) -> tuple[tuple[ToolCall, ...], dict[str, Any]]:
    """The gold calls of question ``rid`` (record ``index``) and the meta its answer brings. A
    malformed answer record (not JSON, wrong shape, naming no declared function) makes the item
    unscorable: no gold call, ``bfcl_ground_truth = {"unscorable": why}``; the other items of the
    file are read as usual. A question without any answer record is an error of that record."""
    if rid not in answers.by_id:
        if index in answers.broken:
            return (), {"bfcl_ground_truth": {"unscorable": answers.broken[index]}}
        raise DataError("no answer with this id in the possible_answer file", field="id")
    answer, repairs = answers.by_id[rid], {}
    try:
        gold = _bfcl_gold(answer, tools, "possible_answer", repairs)
    except DataError as e:
        reason = str(e.located(source=str(answers.source), record_id=rid))
        return (), {"bfcl_ground_truth": {"unscorable": reason}}
    meta: dict[str, Any] = {"bfcl_ground_truth": answer["ground_truth"]}
    if repairs:
        meta["repaired_gold_names"] = repairs
    if any(isinstance(entry, str) for entry in answer["ground_truth"]):
        # exec_* answers are call strings: keep them, and give the checker the usual form
        # {name: {param: [value]}} (one acceptable value each)
        meta["bfcl_exec_ground_truth"] = answer["ground_truth"]
        meta["bfcl_ground_truth"] = bfcl_answer_from_calls(gold)
    if "execution_result_type" in answer:
        meta["execution_result_type"] = answer["execution_result_type"]
    return gold, meta


def _bfcl_record(path: Path, index: int, rec: Any, answers: _BfclAnswers | None) -> Trajectory:
    rid = _get(rec, "id", str)
    question = _get(rec, "question", list)
    messages = []
    for t, turn in enumerate(question):
        for i, m in enumerate(turn if isinstance(turn, list) else [turn]):
            mw = f"question[{t}][{i}]"
            role = _get(m, "role", str, mw)
            if role not in ("system", "user", "assistant"):
                raise DataError(f"unexpected role {role!r}", field=f"{mw}.role")
            messages.append(Message(role, _get(m, "content", str, mw)))
    functions = _get(rec, "function", list)
    tools = _tools_from_list([dict(f, parameters=_bfcl_schema(f.get("parameters"))) if isinstance(f, dict) else f
                              for f in functions], "function")
    category = _bfcl_category(rec)
    if _BFCL_NO_CALL in category:  # gold: no call; abstaining passes, any call fails
        gold, answer_meta = (), {"bfcl_ground_truth": []}
    else:
        gold, answer_meta = _bfcl_answer_meta(rid, index, tools, answers)
    messages.append(Message("assistant", "", gold))
    meta = {"source": str(path), "format": "bfcl", "index": index, "category": category, **answer_meta}
    return Trajectory(rid, tools, tuple(messages), meta)


def read_bfcl(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """BFCL v3 question file + its ``possible_answer`` file (found beside it, or ``answers_path``):
    one trajectory per item, the gold calls in one assistant turn (several for parallel items:
    ``bfcl_reference_calls``, the calls BFCL's checker accepts); the full acceptable values in
    ``meta["bfcl_ground_truth"]`` (``{name: {param: [values]}}`` per call, for ``exec_*`` too; their
    call strings are in ``meta["bfcl_exec_ground_truth"]``). Answer names go through
    ``bfcl_declared_name``. Irrelevance items (no answer file needed) have no gold call and an
    empty ground truth. An item whose answer record is malformed is read unscorable
    (``_bfcl_answer_meta``). The Java and JavaScript categories are refused (``DataError`` naming
    the category): BFCL converts their values with its own type rules, which this scorer does not
    implement, and Python's rules would score them wrong."""
    answers = None
    for index, rec in _records(path):
        category = _bfcl_category(rec) or ""
        if category.split("_")[-1] in _BFCL_CONVERTED_LANGUAGES:
            raise DataError(f"BFCL category {category!r} is not supported: BFCL scores it after converting "
                            "each value with its Java/JavaScript type rules (values are source literals "
                            "such as 'new ArrayList<>(...)' or '5L'), which this scorer does not implement; "
                            "scoring it with the Python rules would be wrong", source=str(path), index=index)
        if answers is None and _BFCL_NO_CALL not in category:
            answers = _load_bfcl_answers(_bfcl_answers_path(path, options))
        yield _build(path, index, rec, lambda: _bfcl_record(path, index, rec, answers))


# =============================================================================================
# apibank


# API-Bank's level-2 tool-retrieval API, which all_apis.csv does not list (api-bank/apis/tool_search.py).
APIBANK_TOOL_SEARCHER = ToolSpec(
    "ToolSearcher", "Searches for relevant tools in library based on the keywords.",
    _object_schema({"keywords": {"type": "string", "description": "The keyword to search for."}}, ["keywords"]),
)


def _apibank_spec(name: str, description: str, inputs: Any) -> ToolSpec:
    """API-Bank's ``input_parameters`` (``{p: {"type": "str", "description"}}``) -> ToolSpec."""
    properties, required = {}, []
    for p, info in (inputs if isinstance(inputs, dict) else {}).items():
        info = info if isinstance(info, dict) else {}
        schema = dict(_schema_for_type(str(info.get("type", ""))))
        schema["description"] = str(info.get("description", ""))
        properties[p] = schema
        if info.get("required") is True:
            required.append(p)
    return ToolSpec(name, description, _object_schema(properties, required))


def _apibank_csv_tools(csv_path: Path) -> dict[str, ToolSpec]:
    """``all_apis.csv``: the ``api_info`` column holds ``description = ...`` and
    ``input_parameters = {...}`` Python assignments (read with ``ast.literal_eval``); one row
    (ImageCaption) has no api_info, its ``input_parameters`` column ``(image: str)`` is used."""
    tools = {}
    with io.StringIO(read_text(csv_path)) as f:
        for row in csv.DictReader(f):
            name = row.get("类名") or ""
            if not name:
                continue
            info: dict[str, Any] = {}
            try:
                for stmt in ast.parse(row.get("api_info") or "").body:
                    if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                        info[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except (SyntaxError, ValueError):
                info = {}
            if "input_parameters" not in info:
                signature = (row.get("input_parameters") or "").strip("() ")
                info["input_parameters"] = {p.split(":")[0].strip(): {"type": p.partition(":")[2].strip()}
                                            for p in _split_params(signature)}
            tools[name] = _apibank_spec(name, str(info.get("description") or ""), info["input_parameters"])
    return tools


def _apibank_csv_path(path: Path, options: ReadOptions) -> Path:
    """``tools_path``, else ``data/all_apis.csv`` in the API-Bank folder: the nearest ancestor of
    ``path`` (itself included) that has one."""
    if options.tools_path is not None:
        return _find_side_file([options.tools_path], "API-Bank all_apis.csv", path)
    return _find_side_file([p / "data" / "all_apis.csv" for p in (path, *path.parents)][:4],
                           "API-Bank all_apis.csv", path)


def _apibank_dialogue(path: Path, index: int, lines: list[Any], csv_tools: dict[str, ToolSpec]) -> Trajectory:
    """One dialogue file. ``User`` -> user, ``AI`` -> assistant text, ``API`` -> an assistant call
    (arguments = ``result.input``, the typed values the API received; ``param_dict`` where that is
    empty) and a tool message (``result.output``, JSON-encoded unless a string, or the exception).
    Tools: the APIs the dialogue calls, described as its own ToolSearcher results describe them,
    else as all_apis.csv does (whose parameter names differ from the dialogues' for many APIs)."""
    messages, tools, searched = [], {}, {}
    for i, line in enumerate(lines):
        where = f"line[{i}]"
        if isinstance(line, DataError):  # the dialogue is the record: name the line as its field
            raise DataError(line.reason, field=where)
        role = _get(line, "role", str, where)
        if role == "User":
            messages.append(Message("user", _get(line, "text", str, where)))
        elif role == "AI":
            messages.append(Message("assistant", _get(line, "text", str, where)))
        elif role == "API":
            name = _get(line, "api_name", str, where)
            result = _get(line, "result", dict, where)
            typed = isinstance(result.get("input"), dict)
            arguments = _arguments(result["input"] if typed else line.get("param_dict", {}),
                                   f"{where}.result.input" if typed else f"{where}.param_dict")
            messages.append(Message("assistant", "", (ToolCall(name, arguments),)))
            exception = result.get("exception")
            output = result.get("output")
            content = f"Exception: {exception}" if exception else output if isinstance(output, str) \
                else json.dumps(output, ensure_ascii=False)
            messages.append(Message("tool", content, name=name))
            if name == APIBANK_TOOL_SEARCHER.name:
                for found in output if isinstance(output, list) else [output]:
                    if isinstance(found, dict) and isinstance(found.get("name"), str):
                        searched[found["name"]] = _apibank_spec(found["name"], str(found.get("description", "")),
                                                                found.get("input_parameters"))
            spec = (APIBANK_TOOL_SEARCHER if name == APIBANK_TOOL_SEARCHER.name
                    else searched.get(name) or csv_tools.get(name))
            if spec is None:
                raise DataError(f"API {name!r} is in neither all_apis.csv nor a ToolSearcher result",
                                field=f"{where}.api_name")
            tools.setdefault(name, spec)
        else:
            raise DataError(f"unknown role {role!r} (expected User, AI or API)", field=f"{where}.role")
    meta = {"source": str(path), "format": "apibank", "index": index, "level": path.parent.name}
    return Trajectory(f"{path.parent.name}/{path.stem}", tuple(tools.values()), tuple(messages), meta)


def read_apibank(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError | EmptyFile]:
    """API-Bank dialogue files (one message per line); a directory reads every ``*.jsonl`` below it.
    Each file is one record, so with ``on_error="skip"`` a broken file is skipped and counted."""
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    csv_tools = _apibank_csv_tools(_apibank_csv_path(path, options))
    for index, file in enumerate(files):
        try:
            lines = [line for _, line in _jsonl_records(file)]
        except DataError as e:
            yield e.located(index=index)
            continue
        if not lines:
            yield EmptyFile(str(file))
            continue
        yield _build(file, index, lines, lambda: _apibank_dialogue(file, index, lines, csv_tools),
                     record_id=f"{file.parent.name}/{file.stem}")


# =============================================================================================
# sgd


def _sgd_intent_tools(service: dict[str, Any]) -> list[ToolSpec]:
    """One tool per intent: its required and optional slots as parameters (slot description,
    categorical ``possible_values`` as ``enum``, an optional slot's default as ``default``)."""
    slots = {s["name"]: s for s in service.get("slots", [])}
    tools = []
    for intent in service.get("intents", []):
        properties = {}
        optional = intent.get("optional_slots") or {}
        for name in list(intent.get("required_slots", [])) + list(optional):
            slot = slots.get(name, {})
            schema: dict[str, Any] = {"type": "string", "description": slot.get("description", "")}
            if slot.get("is_categorical") and slot.get("possible_values"):
                schema["enum"] = list(slot["possible_values"])
            if name in optional and optional[name] != "dontcare":
                schema["default"] = optional[name]
            properties[name] = schema
        tools.append(ToolSpec(intent["name"], intent.get("description", ""),
                              _object_schema(properties, intent.get("required_slots", []))))
    return tools


def _sgd_dialogue(path: Path, index: int, rec: Any, services: dict[str, dict[str, Any]]) -> Trajectory:
    """A dialogue. A call outside its services' intents is an error here (not agent history, as
    in tau-bench): SGD's calls come from the schema, so such a call means a broken record."""
    rid = _get(rec, "dialogue_id", str)
    tools: list[ToolSpec] = []
    for s, name in enumerate(_get(rec, "services", list)):
        if name not in services:
            raise DataError(f"service {name!r} is not in schema.json", field=f"services[{s}]")
        tools += _sgd_intent_tools(services[name])
    intents = {t.name for t in tools}
    messages = []
    for t, turn in enumerate(_get(rec, "turns", list)):
        tw = f"turns[{t}]"
        speaker, text = _get(turn, "speaker", str, tw), _get(turn, "utterance", str, tw)
        if speaker == "USER":
            messages.append(Message("user", text))
            continue
        if speaker != "SYSTEM":
            raise DataError(f"unknown speaker {speaker!r}", field=f"{tw}.speaker")
        frames = [(f, fr) for f, fr in enumerate(_get(turn, "frames", list, tw)) if "service_call" in fr]
        calls = tuple(ToolCall(_get(fr["service_call"], "method", str, f"{tw}.frames[{f}].service_call"),
                               _arguments(fr["service_call"].get("parameters", {}),
                                          f"{tw}.frames[{f}].service_call.parameters"))
                      for f, fr in frames)
        for (f, _), call in zip(frames, calls):
            if call.name not in intents:
                raise DataError(f"calls {call.name!r}, which is not an intent of {rec['services']}",
                                field=f"{tw}.frames[{f}].service_call.method")
        if calls:
            messages.append(Message("assistant", "", calls))
            messages += [Message("tool", json.dumps(fr.get("service_results", []), ensure_ascii=False),
                                 name=c.name) for (_, fr), c in zip(frames, calls)]
        messages.append(Message("assistant", text))
    meta = {"source": str(path), "format": "sgd", "index": index, "services": rec["services"]}
    return Trajectory(rid, tuple(tools), tuple(messages), meta)


def read_sgd(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """Schema-Guided Dialogue ``dialogues_*.json`` (a directory reads all of them) with the
    ``schema.json`` beside them (or ``tools_path``). Each ``service_call`` is an assistant call
    turn followed by a tool message with its ``service_results`` (JSON); the SYSTEM utterance
    follows as an assistant text turn. Tools: the intents of the dialogue's services."""
    files = sorted(path.glob("dialogues_*.json")) if path.is_dir() else [path]
    folder = path if path.is_dir() else path.parent
    schema_path = _find_side_file([options.tools_path or folder / "schema.json"], "SGD schema.json", path)
    schema = _load_json(schema_path)
    if not isinstance(schema, list):
        raise DataError("schema.json must be a list of services", source=str(schema_path))
    services = {s["service_name"]: s for s in schema if isinstance(s, dict) and "service_name" in s}
    for file in files:
        for index, rec in _records(file):
            yield _build(file, index, rec, lambda: _sgd_dialogue(file, index, rec, services))


# =============================================================================================
# taubench


def _taubench_tools_path(path: Path, options: ReadOptions) -> Path:
    """``<tau-bench>/<domain>_tools.json`` for ``<tau-bench>/historical_trajectories/<model>-<domain>.json``."""
    if options.tools_path is not None:
        return _find_side_file([options.tools_path], "tau-bench tool schemas", path)
    domain = path.stem.rsplit("-", 1)[-1]
    return _find_side_file([path.parent.parent / f"{domain}_tools.json", path.parent / f"{domain}_tools.json"],
                           "tau-bench tool schemas", path)


def _taubench_record(path: Path, index: int, rec: Any, tools: tuple[ToolSpec, ...]) -> Trajectory:
    messages = _openai_messages(_get(rec, "traj", list), "traj")
    task_id = _get(rec, "task_id", (int, str))
    meta = {"source": str(path), "format": "taubench", "index": index, "task_id": task_id,
            "trial": rec.get("trial"), "reward": rec.get("reward"), "info": rec.get("info")}
    return Trajectory(f"{path.stem}-task{task_id}-trial{rec.get('trial')}", tools, messages, meta)


def read_taubench(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """tau-bench historical trajectories (OpenAI messages under ``traj``) with the domain's tool
    schemas; ``meta`` keeps ``task_id``, ``trial``, ``reward`` and ``info``."""
    tools_path = _taubench_tools_path(path, options)
    try:
        tools = _tools_from_list(_load_json(tools_path), "tools")
    except DataError as e:
        raise e.located(source=str(tools_path)) from None
    for index, rec in _records(path):
        yield _build(path, index, rec, lambda: _taubench_record(path, index, rec, tools))


# =============================================================================================
# sealtools


def _sealtools_catalog(tools_path: Path) -> dict[str, ToolSpec]:
    """Seal-Tools ``tool.jsonl``: ``{api_name, api_description, parameters{p: {type, description}},
    required}`` per line."""
    catalog = {}
    for index, rec in _jsonl_records(tools_path):
        if isinstance(rec, DataError):
            raise rec
        try:
            name = _get(rec, "api_name", str)
            properties = {}
            for p, info in _get(rec, "parameters", dict).items():
                info = info if isinstance(info, dict) else {}
                properties[p] = dict(_schema_for_type(str(info.get("type", ""))),
                                     description=str(info.get("description", "")))
            catalog[name] = ToolSpec(name, str(rec.get("api_description", "")),
                                     _object_schema(properties, _get(rec, "required", list, default=[])))
        except DataError as e:
            raise e.located(source=str(tools_path), index=index) from None
    return catalog


def _sealtools_record(path: Path, index: int, rec: Any, catalog: dict[str, ToolSpec]) -> Trajectory:
    rid = _get(rec, "id", str)
    calls, tools = [], {}
    for j, c in enumerate(_get(rec, "calling", list)):
        name = _get(c, "api", str, f"calling[{j}]")
        if name not in catalog:
            raise DataError(f"API {name!r} is not in tool.jsonl", field=f"calling[{j}].api")
        tools.setdefault(name, catalog[name])
        calls.append(ToolCall(name, _arguments(c.get("parameters", {}), f"calling[{j}].parameters")))
    messages = (Message("user", _get(rec, "query", str)), Message("assistant", "", tuple(calls)))
    meta = {"source": str(path), "format": "sealtools", "index": index,
            "responses": [c.get("responses") for c in rec["calling"]]}
    return Trajectory(rid, tuple(tools.values()), messages, meta)


def read_sealtools(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """Seal-Tools ``{"id", "query", "calling": [{"api", "parameters", "responses"}]}``: the query and
    one assistant turn with every call (Seal-Tools scores the call list as a whole; a value
    ``"API_call_k"`` refers to an earlier call's output, kept as the string). Tools: the called APIs'
    schemas from ``tool.jsonl`` beside the file (or ``tools_path``)."""
    catalog = _sealtools_catalog(_find_side_file([options.tools_path or path.parent / "tool.jsonl"],
                                                 "Seal-Tools tool.jsonl", path))
    for index, rec in _records(path):
        yield _build(path, index, rec, lambda: _sealtools_record(path, index, rec, catalog))


# =============================================================================================
# registry, detection, entry points


FORMATS: dict[str, Reader] = {
    "openai": read_openai,
    "tl": read_tl,
    "sharegpt": read_sharegpt,
    "rotbench": read_rotbench,
    "tooleyes": read_rotbench,
    "toolalpaca": read_toolalpaca,
    "bfcl": read_bfcl,
    "apibank": read_apibank,
    "sgd": read_sgd,
    "taubench": read_taubench,
    "sealtools": read_sealtools,
}

# Files that sit beside the data but hold no trajectories: detection names them instead of guessing.
_SIDE_FILES = {
    "all_apis.csv": "the API-Bank tool schemas (read the lv1-lv2-samples dialogues)",
    "exceptions.json": "API-Bank's exception messages (read the lv1-lv2-samples dialogues)",
    "schema.json": "the SGD service schemas (read the dialogues_*.json files)",
    "tool.jsonl": "the Seal-Tools tool schemas (read dev.jsonl / test_*.jsonl)",
    "config_gpt4.json": "a ToolEyes tool list (read ToolEyes/Test_Data/*.json)",
}


def _first_record(path: Path) -> Any:
    for _, rec in _records(path):
        if isinstance(rec, DataError):
            raise rec
        return rec
    raise DataError("no records", source=str(path))


def _format_of_record(rec: Any) -> str | None:
    """The format a record's keys identify, or None."""
    if isinstance(rec, list):  # a bare conversation: the TL raw format
        return "tl" if rec and isinstance(rec[0], dict) and "role" in rec[0] else None
    if not isinstance(rec, dict):
        return None
    keys = set(rec)
    if {"question", "function"} <= keys:
        return "bfcl"
    if {"Function_Description", "Instructions"} <= keys:
        return "toolalpaca"
    if {"traj", "task_id"} <= keys:
        return "taubench"
    if {"dialogue_id", "turns"} <= keys:
        return "sgd"
    if {"query", "calling"} <= keys:
        return "sealtools"
    if {"query", "path"} <= keys:
        return "rotbench"
    if rec.get("role") in ("User", "AI", "API"):
        return "apibank"
    turns = rec.get("conversations", rec.get("messages"))
    if isinstance(turns, list) and turns and isinstance(turns[0], dict):
        if "from" in turns[0]:
            system = turns[0].get("value") if turns[0].get("from") == "system" else None
            react = isinstance(system, str) and "Action Input" in system and _tool_list_in_prompt(system)
            return "rotbench" if react and "tools" not in rec else "sharegpt"
        if "role" in turns[0]:
            roles = {t.get("role") for t in turns if isinstance(t, dict)}
            tl_roles = {"System", "User", "Assistant", "Output", "output"}
            return "tl" if roles & tl_roles else "openai"
    return None


def detect_format(path: str | Path) -> str:
    """The ``FORMATS`` name for ``path`` from its name and first record (``"synthetic"`` for a
    built-in world string, ``synthetic:<split>``); ``DataError`` when it is not a trajectory file
    (e.g. a schema or answer file) or nothing matches."""
    if is_synthetic_spec(path):
        parse_spec(path)
        return SYNTHETIC
    path = Path(path)
    if path.is_dir():
        if any(path.glob("dialogues_*.json")):
            return "sgd"
        first = next(iter(sorted(path.rglob("*.jsonl"))), None)
        if first is not None and _format_of_record(_first_record(first)) == "apibank":
            return "apibank"
        raise DataError("cannot tell the format of this directory (expected SGD dialogues_*.json or "
                        "API-Bank *.jsonl dialogues); pass format=", source=str(path))
    if not path.is_file():
        raise DataError("no such file or directory", source=str(path))
    if path.name in _SIDE_FILES:
        raise DataError(f"this is {_SIDE_FILES[path.name]}, not trajectories", source=str(path))
    if "possible_answer" in path.parts:
        raise DataError("this is a BFCL answer file; read the question file beside possible_answer/",
                        source=str(path))
    if path.name.endswith("_tools.json"):
        raise DataError("this is a tool schema file (tau-bench), not trajectories", source=str(path))
    if path.suffix not in (".json", ".jsonl"):
        raise DataError(f"not a JSON or JSONL file ({path.suffix or 'no suffix'})", source=str(path))
    if re.fullmatch(r"dialogues_\d+\.json", path.name):
        return "sgd"
    fmt = _format_of_record(_first_record(path))
    if fmt is None:
        raise DataError(f"cannot tell the format from the first record; pass one of {sorted(FORMATS)}",
                        source=str(path))
    return fmt


def _unique_ids(trajs: list[Trajectory]) -> list[Trajectory]:
    """Give a repeated id a ``#k`` suffix (ToolEyes repeats two queries): later steps key by id."""
    seen: dict[str, int] = {}
    out = []
    for t in trajs:
        n = seen.get(t.id, 0)
        seen[t.id] = n + 1
        out.append(t if n == 0 else
                   dataclasses.replace(t, id=f"{t.id}#{n + 1}", meta={**t.meta, "original_id": t.id}))
    return out


def read_trajectories_with_report(
    path: str | Path,
    format: str = "auto",
    on_error: str = "raise",
    tools_path: str | Path | None = None,
    answers_path: str | Path | None = None,
) -> tuple[list[Trajectory], ReadReport]:
    """Read ``path`` (file or directory) as ``format`` (``"auto"``: ``detect_format``).

    ``on_error="raise"``: the first malformed record raises its ``DataError``. ``"skip"``: malformed
    records are left out and listed in the report. ``tools_path`` / ``answers_path`` point at side
    files that are not where the format keeps them: the tool schemas (API-Bank ``all_apis.csv``,
    SGD ``schema.json``, tau-bench ``<domain>_tools.json``, Seal-Tools ``tool.jsonl``; for ToolEyes'
    raw file the folder holding ``ToolEyes/``) and BFCL's answer file.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if is_synthetic_spec(path):
        if format not in ("auto", SYNTHETIC):
            raise DataError(f"a built-in world string is read as format 'synthetic', not {format!r}", source=path)
        trajs = read_spec(path)
        return trajs, ReadReport(source=path, format=SYNTHETIC, read=len(trajs))
    path = Path(path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {sorted(FORMATS)} or 'auto'")
    options = ReadOptions(tools_path=Path(tools_path) if tools_path else None,
                          answers_path=Path(answers_path) if answers_path else None)
    report = ReadReport(source=str(path), format=fmt)
    trajs = []
    for item in FORMATS[fmt](path, options):
        if isinstance(item, EmptyFile):
            report.empty_files.append(item.path)
        elif isinstance(item, DataError):
            if on_error == "raise":
                raise item
            report.errors.append(item)
        else:
            trajs.append(item)
    if not trajs and not report.errors:
        raise DataError("no records", source=str(path))  # e.g. an empty list: nothing to train or score on
    trajs = _unique_ids(trajs)
    report.read = len(trajs)
    return trajs, report


def read_trajectories(
    path: str | Path,
    format: str = "auto",
    on_error: str = "raise",
    tools_path: str | Path | None = None,
    answers_path: str | Path | None = None,
) -> list[Trajectory]:
    """``read_trajectories_with_report`` without the report (with ``on_error="skip"`` prefer that
    one: it says what was skipped)."""
    return read_trajectories_with_report(path, format, on_error, tools_path, answers_path)[0]


# =============================================================================================
# writing the normalized format


def _openai_message(message: Message, call_ids: Iterator[str], pending: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.calls:
        out["tool_calls"] = []
        for call in message.calls:
            call_id = next(call_ids)
            pending.append(call_id)
            out["tool_calls"].append({"id": call_id, **call.to_openai()})
    if message.alternatives:
        out["alternatives"] = [[call.to_openai() for call in calls] for calls in message.alternatives]
    if message.role == "tool":
        call_id = pending.pop(0) if pending else None
        if message.name is not None:  # without a name, no id: the reader would name it after the call
            out["name"] = message.name
            if call_id is not None:
                out["tool_call_id"] = call_id
    return out


def trajectory_to_openai(traj: Trajectory) -> dict[str, Any]:
    """One trajectory as a normalized-format record (OpenAI messages + tools, ``id``, ``meta``).
    Tool messages answer the pending calls in order (``tool_call_id``)."""
    call_ids = (f"call_{i}" for i in range(1 << 30))
    pending: list[str] = []
    return {"id": traj.id, "tools": [t.to_openai() for t in traj.tools],
            "messages": [_openai_message(m, call_ids, pending) for m in traj.messages], "meta": traj.meta}


def write_jsonl(trajs: Iterable[Trajectory], path: str | Path) -> int:
    """Write the normalized JSONL that ``read_trajectories(path)`` reads back to equal records;
    returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for traj in trajs:
            try:
                line = json.dumps(trajectory_to_openai(traj), ensure_ascii=False)
            except (TypeError, ValueError) as e:
                raise DataError(f"not JSON-serialisable: {e}", record_id=traj.id, field="meta") from None
            f.write(line + "\n")
            count += 1
    return count
