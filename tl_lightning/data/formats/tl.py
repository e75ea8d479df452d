"""``tl``: the TL-Training authors' raw format, ``[{"role": "System"|"User"|"Assistant"|"Output",
"content"}]`` (a bare list, or under ``conversations`` / ``messages``). The System content holds the
tools as Python signatures with docstrings (the paper's prompt, ``render.format_tools_codellama``),
assistant calls are python-form ``name(k='v')``. The System prompt moves to
``meta["system_prompt"]``: the renderer writes the tool list itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tl_lightning.data.formats.fields import (
    assistant_from_text,
    chat_turns,
    get_field,
    object_schema,
    require_tools,
    schema_for_type,
    split_params,
)
from tl_lightning.data.formats.reading import Format, Origin, ReadOptions, read_records
from tl_lightning.records import DataError, Message, ToolSpec, Trajectory


_TL_ROLES = {"system": "system", "user": "user", "assistant": "assistant", "output": "tool",
             "function": "tool", "observation": "tool", "tool": "tool"}
_FUNCTION_BLOCK = re.compile(r"Function:\s*\n(def .*?\n\s*\"\"\"(?:.*?)\"\"\")", re.S)
_SIGNATURE = re.compile(r"def\s+(?P<name>[^\s(]+)\s*\((?P<params>.*)\)\s*(->.*)?:\s*$")
_ARG_DOC = re.compile(r"^(?P<name>[^\s(]+)\s*\((?P<type>[^)]*)\)\s*:\s?(?P<desc>.*)$")


def _signature_params(params: str) -> list[tuple[str, str, bool]]:
    """``a:str, b: int = None`` -> ``[(name, annotation, has_default), ...]``."""
    out = []
    for param in split_params(params):
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
        schema = schema_for_type(doc_type) or schema_for_type(annotation)
        if doc_desc:
            schema["description"] = doc_desc
        properties[name] = schema
        if not has_default:
            required.append(name)
    return ToolSpec(sig.group("name"), description, object_schema(properties, required))


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


def _tl_record(rec: Any, origin: Origin) -> Trajectory:
    where = "messages"
    if isinstance(rec, dict):
        where = "conversations" if "conversations" in rec else "messages"
        raw = get_field(rec, where, list)
    elif isinstance(rec, list):
        raw, where = rec, ""
    else:
        raise DataError(f"a record must be a list of messages or an object, got {type(rec).__name__}")
    tools: tuple[ToolSpec, ...] | None = None
    meta = origin.meta()
    messages = []
    for i, m in enumerate(raw):
        mw = f"{where}[{i}]" if where else f"[{i}]"
        role = _TL_ROLES.get(get_field(m, "role", str, mw).lower())
        if role is None:
            raise DataError(f"unknown role {m['role']!r}", field=f"{mw}.role")
        content = get_field(m, "content", str, mw)
        if role == "system" and "Function:" in content:
            found, rest = _tools_from_signature_docs(content, f"{mw}.content")
            tools = (tools or ()) + found
            meta["system_prompt"] = content
            if rest:
                messages.append(Message("system", rest))
        elif role == "assistant":
            messages.append(assistant_from_text(content, f"{mw}.content"))
        else:
            messages.append(Message(role, content))
    tools = require_tools(tools, messages, f"{where}[0].content" if where else "[0].content")
    return Trajectory(origin.record_id(rec), tools, tuple(messages), meta)


def read_tl(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """The TL-Training raw format: conversations of ``{"role": System/User/Assistant/Output, "content"}``."""
    yield from read_records(path, "tl", _tl_record)


# The role names of the authors' format (the ``openai`` entry takes the lower-case ones).
_TL_ROLE_NAMES = {"System", "User", "Assistant", "Output", "output"}


def _is_tl_record(record: Any) -> bool:
    """A bare list of ``{"role", ...}`` messages, or chat turns that use the authors' role names."""
    if isinstance(record, list):
        return bool(record) and isinstance(record[0], dict) and "role" in record[0]
    turns = chat_turns(record)
    return turns is not None and "role" in turns[0] and bool(
        {t.get("role") for t in turns if isinstance(t, dict)} & _TL_ROLE_NAMES)


FORMAT = Format("tl", read_tl, matches_record=_is_tl_record)
