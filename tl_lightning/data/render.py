"""Render samples to text, with the character spans of every supervised turn, call, tool name
and argument value (tokenize.py turns these spans into labels and PKT weights).

Two prompt formats (``PROMPT_FORMATS``):

``codellama`` — the paper's format (TL-Training README and code):

- each tool is a Python signature with a docstring; the layout follows the authors' README
  example exactly: ``Function:\\ndef name(req:str, opt:int = None):\\n    \"\"\"\\n    description
  \\n\\n    Args:\\n        req (string): desc\\n    \"\"\"`` — Python type names in the signature,
  JSON type names in ``Args``, required parameters first, no ``Args`` block for a tool without
  parameters, every tool block followed by a blank line (so the system text ends with ``\\n\\n``);
- the system message is the tool block, followed by the trajectory's own system text if it has
  one (the tools come first, as in the paper, where the system message was only the tools);
- a call is ``name(key="json value", n=1)`` (``calls.format_call_spans(call, "python")``); parallel
  calls one per line; free text of an assistant call turn (e.g. a ReAct thought) on the line before;
- roles ``System``, ``User``, ``Assistant``, ``Output``, joined by the paper's chat template
  (``CODELLAMA_TEMPLATE``): ``Role: content`` separated by ``\\n``, the last message followed by
  the end marker ``</s>``, a generation prompt ``\\nAssistant:``.

  End marker: the paper writes ``</s>`` because that is CodeLLaMA's eos. We write the tokenizer's
  eos text instead (``</s>`` for Llama tokenizers, ``<|im_end|>`` for SmolLM2), so the model learns
  to emit its real eos token and generation stops there. Without a tokenizer: ``</s>``.

  Every assistant turn ends with the end marker, in training texts and in generation prompts
  alike, whether it is a target, a turn MAE dropped, or context: so a generation prompt is the
  exact prefix of every training text holding that turn, and "no end marker" never marks a turn
  as different (a failed call, say). The paper's template writes the marker after the last message
  only; in its (``per_turn``) layout every target is the last message, so its supervised span is
  content + end marker, as here. Earlier assistant turns are where we differ: the template writes
  only ``\n`` after them (the authors' README example prompt has ``...search_advice(...)\nOutput:``),
  we write the end marker before that ``\n``, so that both layouts teach the same thing, end every
  assistant turn with eos (``\n`` cannot be the stop signal: parallel calls are one per line). Our
  text equals the paper's template applied to messages whose assistant contents end with the end
  marker (except a last assistant message, where the template writes it).

``chat_template`` — the tokenizer's own template with ``tools=`` (the HF convention): tools as
OpenAI function specs, assistant calls as OpenAI ``tool_calls`` (arguments as a dict, as HF
templates expect), outputs as role ``tool``. What the template cannot express we do ourselves:

- a template that never mentions ``tools``: the tool list goes into the system message (a one-line
  instruction and a JSON list, before the trajectory's own system text);
- a template that never mentions ``tool_calls``: calls are written into the assistant content as
  ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks, one per line;
- a template that rejects role ``tool``: outputs become ``user`` messages prefixed ``Output: ``.

Spans come from rendering prefixes: a target turn starts where the conversation before it plus the
generation prompt ends, and ends where the conversation up to and including it ends (trailing
whitespace excluded), so it holds the template's end-of-turn text (``<|im_end|>``). Call names and
values are located inside that span: exactly where we wrote them, or, where the template wrote the
``tool_calls``, by searching the name (as a JSON string first) and then each value (JSON text, or
the raw string) in order. A value the template writes in a form we cannot find gets no span (it
only matters for ``exclude_value_end``); a name we cannot find is an error.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

from tl_lightning.calls import format_call_spans
from tl_lightning.data.mae import Sample
from tl_lightning.records import Message, ToolCall, ToolSpec, Trajectory

PROMPT_FORMATS = ("codellama", "chat_template")
DEFAULT_PROMPT_FORMAT = "codellama"
"""The format used when neither a config nor the model's record (``prompt_record.FORMAT_RECORD``) names one."""

CODELLAMA_TEMPLATE = (
    "{% for message in messages %}{{message['role'] + ': ' + message['content']}}{% if loop.last %}"
    "{% if add_generation_prompt %}{{ '\\nAssistant:' }}{% else %}{{ '</s>'}}{% endif %}"
    "{% else %}{{ '\\n' }}{% endif %}{% endfor %}"
)
"""The paper's chat template, verbatim (``render_sample`` / ``render_prompt`` write the same text
without jinja; the tests check they agree)."""

CODELLAMA_ROLES = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Output"}
PAPER_END_MARKER = "</s>"
CODELLAMA_GENERATION_PROMPT = "\nAssistant:"

PYTHON_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
                "array": "list", "object": "dict", "null": "None", "any": "Any"}

TOOLS_INSTRUCTION = ('You can call these tools. To call one, reply with {"name": <tool name>, '
                     '"arguments": <arguments object>} inside <tool_call></tool_call> tags, '
                     "one block per call.")
OUTPUT_PREFIX = "Output: "


@dataclass(frozen=True)
class CallSpan:
    """Where one call sits in the rendered text: ``[start, end)`` the call (for a call written by
    the template: from its name to the end of its last value), ``[name_start, name_end)`` the tool
    name, ``value_spans`` each found argument value's ``[start, end)`` (a string's quotes included
    where the text has them)."""

    name: str
    start: int
    end: int
    name_start: int
    name_end: int
    value_spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class TargetSpan:
    """The supervised text of one assistant turn, ``[start, end)``: its content and its end
    marker (``</s>``, ``<|im_end|>``, ...), and the spans of its calls."""

    message_index: int
    start: int
    end: int
    calls: tuple[CallSpan, ...]


@dataclass(frozen=True)
class Rendered:
    """A rendered sample: the text, its target spans (in text order) and the names of every tool
    offered (PKT needs them to find where the gold name departs from the others)."""

    text: str
    targets: tuple[TargetSpan, ...]
    tool_names: tuple[str, ...]


# --------------------------------------------------------------------------------------- codellama


def _schema_type(schema: Any) -> str:
    """The JSON type name of a parameter schema (``"a|b"`` for a list of types, ``any`` if none)."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, list):
        return "|".join(str(k) for k in kind)
    return str(kind) if kind else "any"


def _python_type(json_type: str) -> str:
    return "|".join(PYTHON_TYPES.get(t, t) for t in json_type.split("|"))


def format_tool_codellama(tool: ToolSpec) -> str:
    """One tool as the paper's Python signature with docstring (see the module docstring)."""
    properties = tool.properties
    required = tool.required
    optional = [p for p in properties if p not in required]
    params = [f"{p}:{_python_type(_schema_type(properties.get(p)))}" for p in required]
    params += [f"{p}:{_python_type(_schema_type(properties.get(p)))} = None" for p in optional]
    text = f'Function:\ndef {tool.name}({", ".join(params)}):\n    """\n    {tool.description}'
    if required or optional:
        text += "\n\n    Args:"
        for p in required + optional:
            schema = properties.get(p)
            description = schema.get("description", "") if isinstance(schema, dict) else ""
            text += f"\n        {p} ({_schema_type(schema)}): {description}"
    return text + '\n    """'


def format_tools_codellama(tools: Sequence[ToolSpec]) -> str:
    """The paper's system text: every tool block followed by a blank line."""
    return "".join(format_tool_codellama(t) + "\n\n" for t in tools)


@dataclass(frozen=True)
class _PlacedCall:
    """A call we wrote into an assistant turn: its text, offset in the turn and its spans."""

    call: ToolCall
    offset: int
    text: str
    name_span: tuple[int, int]
    value_spans: tuple[tuple[int, int], ...]

    def at(self, base: int) -> CallSpan:
        """Its ``CallSpan`` when the turn's text starts at ``base`` in the rendered text."""
        start = base + self.offset
        return CallSpan(self.call.name, start, start + len(self.text), start + self.name_span[0],
                        start + self.name_span[1], tuple((start + s, start + e) for s, e in self.value_spans))


def _assistant_body(message: Message, style: str) -> tuple[str, list[_PlacedCall]]:
    """The text of an assistant turn as we write it (its free text, then one call per line in
    ``style``) and where each call sits in it."""
    body = message.content.strip() if message.calls else message.content
    placed = []
    for call in message.calls:
        text, name_span, value_spans = format_call_spans(call, style)
        if body:
            body += "\n"
        placed.append(_PlacedCall(call, len(body), text, name_span, tuple(value_spans)))
        body += text
    return body, placed


def _system_text(tools_text: str, messages: Sequence[Message], separator: str) -> tuple[str | None, int]:
    """The system message (tools first, then ``separator`` and the trajectory's own system text)
    and how many of ``messages`` it replaces (1 if the first message was a system message, else 0)."""
    own = messages[0].content if messages and messages[0].role == "system" else None
    consumed = 1 if own is not None else 0
    if not tools_text:
        return own, consumed
    if own:
        return tools_text + separator + own, consumed
    return tools_text, consumed


def _end_marker(tokenizer) -> str:
    eos = getattr(tokenizer, "eos_token", None) if tokenizer is not None else None
    return eos if isinstance(eos, str) and eos else PAPER_END_MARKER


def _codellama_text(traj: Trajectory, upto: int, end_marker: str,
                    generation_prompt: bool) -> tuple[str, dict[int, int]]:
    """The paper's template over ``traj.messages[:upto]`` (the tools in the system message), every
    assistant message ending with ``end_marker``; then the generation prompt, or (a training text)
    the template's end marker after a last message that is not an assistant's. Also returns where
    each message's content starts in the text."""
    system, consumed = _system_text(format_tools_codellama(traj.tools), traj.messages[:upto], "")
    entries: list[tuple[int | None, str, str]] = []  # (message index, role, content)
    if system is not None:
        entries.append((0 if consumed else None, "System", system))
    for i in range(consumed, upto):
        m = traj.messages[i]
        content = _assistant_body(m, "python")[0] + end_marker if m.role == "assistant" else m.content
        entries.append((i, CODELLAMA_ROLES[m.role], content))
    text, starts = "", {}
    for index, role, content in entries:
        text += ("\n" if text else "") + role + ": "
        if index is not None:
            starts[index] = len(text)
        text += content
    if entries and generation_prompt:
        text += CODELLAMA_GENERATION_PROMPT
    elif entries and entries[-1][1] != CODELLAMA_ROLES["assistant"]:
        text += end_marker
    return text, starts


def _render_codellama_sample(sample: Sample, tokenizer) -> Rendered:
    traj = sample.trajectory
    end_marker = _end_marker(tokenizer)
    text, starts = _codellama_text(traj, len(traj.messages), end_marker, generation_prompt=False)
    spans = []
    for index in sorted(sample.targets):
        body, placed = _assistant_body(traj.messages[index], "python")
        start = starts[index]
        spans.append(TargetSpan(index, start, start + len(body) + len(end_marker), tuple(p.at(start) for p in placed)))
    return Rendered(text, tuple(spans), tuple(traj.tool_names))


# ----------------------------------------------------------------------------------- chat template


@dataclass(frozen=True)
class TemplateSupport:
    """What a tokenizer's chat template can express by itself."""

    tools: bool
    tool_calls: bool
    tool_role: bool


_SUPPORT_CACHE: dict[str, TemplateSupport] = {}


def template_support(tokenizer) -> TemplateSupport:
    """Read the template source for ``tools`` / ``tool_calls`` and try a ``tool`` message."""
    source = getattr(tokenizer, "chat_template", None)
    if not isinstance(source, str) or not source:
        raise ValueError("prompt_format='chat_template' needs a tokenizer with a chat template "
                         "(use prompt_format='codellama' for a base model)")
    if source not in _SUPPORT_CACHE:
        probe = [{"role": "user", "content": "hi"}, {"role": "tool", "content": "out"}]
        try:
            tool_role = "out" in tokenizer.apply_chat_template(probe, tokenize=False)
        except Exception:  # the template raised on the role; any failure means "not supported"
            tool_role = False
        _SUPPORT_CACHE[source] = TemplateSupport("tools" in source, "tool_calls" in source, tool_role)
    return _SUPPORT_CACHE[source]


def format_tools_json(tools: Sequence[ToolSpec]) -> str:
    """The tool list injected into the system message of a template without ``tools``."""
    specs = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools]
    return TOOLS_INSTRUCTION + "\n" + json.dumps(specs, ensure_ascii=False)


def _chat_messages(traj: Trajectory, upto: int, support: TemplateSupport) -> list[dict[str, Any]]:
    """``traj.messages[:upto]`` as HF chat messages for a template with ``support``."""
    tools_text = "" if support.tools or not traj.tools else format_tools_json(traj.tools)
    system, consumed = _system_text(tools_text, traj.messages[:upto], "\n\n")
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system is not None else []
    for m in traj.messages[consumed:upto]:
        if m.role == "assistant" and m.calls and support.tool_calls:
            calls = [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                     for c in m.calls]
            out.append({"role": "assistant", "content": m.content, "tool_calls": calls})
        elif m.role == "assistant":
            out.append({"role": "assistant", "content": _assistant_body(m, "tool_call")[0]})
        elif m.role == "tool" and not support.tool_role:
            out.append({"role": "user", "content": OUTPUT_PREFIX + m.content})
        else:
            message = {"role": m.role, "content": m.content}
            if m.role == "tool" and m.name:
                message["name"] = m.name
            out.append(message)
    return out


def _apply(tokenizer, messages: list[dict], traj: Trajectory, support: TemplateSupport,
           add_generation_prompt: bool) -> str:
    tools = [t.to_openai() for t in traj.tools] if support.tools and traj.tools else None
    return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def _find_value(text: str, value: Any, start: int, end: int) -> tuple[int, int] | None:
    """The first rendering of ``value`` in ``text[start:end]``: its JSON text, its ASCII-escaped
    JSON text, or (a string) its raw characters."""
    candidates = [json.dumps(value, ensure_ascii=False), json.dumps(value)]
    if isinstance(value, str) and value:
        candidates.append(value)
    for candidate in candidates:
        at = text.find(candidate, start, end)
        if at >= 0:
            return at, at + len(candidate)
    return None


def _locate_template_calls(text: str, calls: Sequence[ToolCall], start: int, end: int,
                           index: int) -> tuple[CallSpan, ...]:
    """Find each call's name and values, in order, inside the turn ``text[start:end]`` that the
    template wrote."""
    found, cursor = [], start
    for call in calls:
        quoted = json.dumps(call.name, ensure_ascii=False)
        at = text.find(quoted, cursor, end)
        name_start = at + 1 if at >= 0 else text.find(call.name, cursor, end)
        if name_start < 0:
            raise ValueError(f"message {index}: the chat template did not write the name of the call "
                             f"to {call.name!r} where we can find it")
        name_end = cursor = name_start + len(call.name)
        values = []
        for value in call.arguments.values():
            span = _find_value(text, value, cursor, end)
            if span is not None:
                values.append(span)
                cursor = span[1]
        found.append(CallSpan(call.name, name_start, cursor, name_start, name_end, tuple(values)))
    return tuple(found)


def _render_chat_sample(sample: Sample, tokenizer) -> Rendered:
    traj = sample.trajectory
    support = template_support(tokenizer)
    n = len(traj.messages)
    text = _apply(tokenizer, _chat_messages(traj, n, support), traj, support, False)
    spans = []
    for index in sample.targets:
        before = _apply(tokenizer, _chat_messages(traj, index, support), traj, support, True)
        through = _apply(tokenizer, _chat_messages(traj, index + 1, support), traj, support, False).rstrip()
        if not (text.startswith(before) and text.startswith(through) and len(through) > len(before)):
            raise ValueError(f"sample {sample.id!r}: the chat template renders message {index} "
                             "differently depending on what follows, so its span cannot be found "
                             "by prefix rendering (use prompt_format='codellama')")
        start, end = len(before), len(through)
        message = traj.messages[index]
        if message.calls and support.tool_calls:
            calls = _locate_template_calls(text, message.calls, start, end, index)
        else:
            body, placed = _assistant_body(message, "tool_call")
            at = text.find(body, start, end)
            if at < 0:
                raise ValueError(f"sample {sample.id!r}: the chat template changed the text of "
                                 f"message {index}")
            calls = tuple(p.at(at) for p in placed)
        spans.append(TargetSpan(index, start, end, calls))
    return Rendered(text, tuple(spans), tuple(traj.tool_names))


# -------------------------------------------------------------------------------------- public API


def _check_format(prompt_format: str) -> None:
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt format {prompt_format!r} (expected one of {PROMPT_FORMATS})")


def choose_prompt_format(asked: str | None, recorded: str | None) -> str:
    """The prompt format to render in: ``asked`` (a config or flag) when given, else ``recorded``
    (what the model was trained with, from its exported folder or checkpoint), else
    ``DEFAULT_PROMPT_FORMAT``. Warns when ``asked`` is not ``recorded``: the model is then
    prompted in a format it was not trained on."""
    for name in (asked, recorded):
        if name is not None:
            _check_format(name)
    if asked is not None and recorded is not None and asked != recorded:
        warnings.warn(f"prompt_format={asked!r} was asked for, but the model was trained with {recorded!r} "
                      f"(recorded with it); rendering {asked!r}", stacklevel=2)
    return asked or recorded or DEFAULT_PROMPT_FORMAT


def call_syntax(prompt_format: str, tokenizer=None) -> str:
    """How assistant calls are written in ``prompt_format``: ``"python"`` (``name(k=v)``, the
    paper's), ``"tool_call"`` (``<tool_call>`` JSON blocks we write into the content) or
    ``"template"`` (the chat template writes the ``tool_calls`` itself)."""
    _check_format(prompt_format)
    if prompt_format == "codellama":
        return "python"
    return "template" if template_support(tokenizer).tool_calls else "tool_call"


def render_sample(sample: Sample, prompt_format: str = "codellama", tokenizer=None) -> Rendered:
    """``sample``'s text and the spans of its target turns (in message order).

    ``tokenizer``: for ``codellama``, optional (gives the end marker, its eos text); for
    ``chat_template``, required (its template renders the text).
    """
    _check_format(prompt_format)
    for index in sample.targets:
        if not 0 <= index < len(sample.trajectory.messages) or \
                sample.trajectory.messages[index].role != "assistant":
            raise ValueError(f"sample {sample.id!r}: target {index} is not an assistant message")
    if prompt_format == "codellama":
        return _render_codellama_sample(sample, tokenizer)
    if tokenizer is None:
        raise ValueError("prompt_format='chat_template' needs a tokenizer")
    return _render_chat_sample(Sample(sample.id, sample.trajectory, tuple(sorted(sample.targets))), tokenizer)


def render_prompt(traj: Trajectory, upto: int, prompt_format: str = "codellama", tokenizer=None) -> str:
    """The text of ``traj.messages[:upto]`` followed by the generation prompt for the assistant
    turn at ``upto`` (what the model sees before generating that turn): the training text of any
    sample holding that turn starts with it (``tokenizer`` as for ``render_sample``)."""
    _check_format(prompt_format)
    if not 0 <= upto <= len(traj.messages):
        raise ValueError(f"upto={upto} is outside the {len(traj.messages)} messages of {traj.id!r}")
    if prompt_format == "codellama":
        return _codellama_text(traj, upto, _end_marker(tokenizer), generation_prompt=True)[0]
    if tokenizer is None:
        raise ValueError("prompt_format='chat_template' needs a tokenizer")
    support = template_support(tokenizer)
    return _apply(tokenizer, _chat_messages(traj, upto, support), traj, support, True)


def render_continuation(traj: Trajectory, turn: int, prompt_format: str = "codellama", tokenizer=None) -> str:
    """The text between the end of the assistant turn ``traj.messages[turn]`` (its end marker) and
    the generation prompt after the last message: the messages that follow the turn (its tool
    outputs), exactly as the training texts hold them. A multi-turn rollout (``episodes.py``) puts
    it, encoded on its own, after the tokens the model generated for the turn, so the model's next
    context is the SFT text of the conversation (``tokenizer`` as for ``render_sample``)."""
    if not 0 <= turn < len(traj.messages) or traj.messages[turn].role != "assistant":
        raise ValueError(f"message {turn} of {traj.id!r} is not an assistant turn")
    through = Trajectory(traj.id, traj.tools, traj.messages[:turn + 1], traj.meta)
    rendered = render_sample(Sample(traj.id, through, (turn,)), prompt_format, tokenizer)
    turn_end = rendered.targets[0].end
    prompt = render_prompt(traj, len(traj.messages), prompt_format, tokenizer)
    if not prompt.startswith(rendered.text[:turn_end]):
        raise ValueError(f"{traj.id!r}: the {prompt_format} format renders assistant message {turn} differently "
                         "depending on what follows, so the text after it cannot be appended on its own")
    return prompt[turn_end:]
