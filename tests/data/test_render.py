"""Rendering: the paper's codellama format (exact text, jinja equality, spans, end markers) and
chat templates (SmolLM2's, which ignores tools; a Hermes-style one with tools; one rejecting role
"tool")."""

from __future__ import annotations

import copy
import json

import jinja2
import pytest

from tl_lightning.data.mae import Sample, apply_mae
from tl_lightning.data.render import (
    CODELLAMA_TEMPLATE,
    OUTPUT_PREFIX,
    PROMPT_FORMATS,
    format_tools_codellama,
    render_continuation,
    render_prompt,
    render_sample,
    template_support,
)
from tl_lightning.records import Message, ToolCall, ToolSpec, Trajectory


def spec(name: str, description: str, required=(), optional=()) -> ToolSpec:
    props = {p: {"type": t, "description": d} for p, t, d in (*required, *optional)}
    return ToolSpec(name, description, {"type": "object", "properties": props,
                                        "required": [p for p, _, _ in required]})


# The authors' README example (seeds/000_*.txt), the system message content as printed there.
README_SYSTEM = json.loads(
    r'"Function:\ndef random_advice():\n    \"\"\"\n    Returns a random advice slip as a slip object.\n    \"\"\"\n\nFunction:\ndef advice_by_id(slip_id:str):\n    \"\"\"\n    If an advice slip is found with the corresponding {slip_id}, a slip object is returned.\n\n    Args:\n        slip_id (string): The unique ID of this advice slip.\n    \"\"\"\n\nFunction:\ndef search_advice(query:str):\n    \"\"\"\n    If an advice slip is found, containing the corresponding search term in {query}, an array of slip objects is returned inside a search object.\n\n    Args:\n        query (string): The search query provided.\n    \"\"\"\n\nFunction:\ndef ask_to_user(question:str):\n    \"\"\"\n    You can ask user for guidance when you think you need more information to handle the task, but you should use this tool as less as you can.\n\n    Args:\n        question (string): The question you want to ask to user.\n    \"\"\"\n\nFunction:\ndef finish(answer:str):\n    \"\"\"\n    Finish the task and give your answer.\n\n    Args:\n        answer (string): Your answer for the task.\n    \"\"\"\n\n"'
)

README_TOOLS = (
    spec("random_advice", "Returns a random advice slip as a slip object."),
    spec("advice_by_id", "If an advice slip is found with the corresponding {slip_id}, a slip object is returned.",
         required=[("slip_id", "string", "The unique ID of this advice slip.")]),
    spec("search_advice", "If an advice slip is found, containing the corresponding search term in {query}, "
         "an array of slip objects is returned inside a search object.",
         required=[("query", "string", "The search query provided.")]),
    spec("ask_to_user", "You can ask user for guidance when you think you need more information to handle the "
         "task, but you should use this tool as less as you can.",
         required=[("question", "string", "The question you want to ask to user.")]),
    spec("finish", "Finish the task and give your answer.",
         required=[("answer", "string", "Your answer for the task.")]),
)

PAPER_TOOLS = (
    spec("getPaperDetails", "Details of a paper.", required=[("title", "string", "The title.")]),
    spec("getPapersByKeywords", "Papers matching keywords.", required=[("query", "string", "Keywords.")],
         optional=[("venue", "string", "Venue."), ("limit", "integer", "How many.")]),
    spec("finish", "Finish the task.", required=[("answer", "string", "The answer.")]),
)
PAPER_GOLD = ToolCall("getPapersByKeywords", {"query": "tool learning", "venue": "ICLR", "limit": 1})


def call_turn(*calls: ToolCall, content: str = "") -> Message:
    return Message("assistant", content, calls=calls)


def conversation() -> Trajectory:
    """system, user, failed call, error, text question, user, parallel calls, outputs, final call."""
    return Trajectory("conv", PAPER_TOOLS, (
        Message("system", "Be brief."),
        Message("user", "Find ICLR papers on tool learning."),
        call_turn(ToolCall("getPaperDetail", {"title": "x"})),
        Message("tool", "name 'getPaperDetail' is not defined"),
        Message("assistant", "How many papers?"),
        Message("user", "One. Also details of 'TL-Training'."),
        call_turn(PAPER_GOLD, ToolCall("getPaperDetails", {"title": "TL-Training"}), content="Thought: two calls"),
        Message("tool", "[...]"),
        Message("tool", "{...}"),
        call_turn(ToolCall("finish", {"answer": "Done: ünïcode"})),
    ))


def codellama_messages(traj: Trajectory) -> list[dict]:
    """The messages the paper's template sees, written out independently of render.py: every
    assistant content ends with the end marker, except a last message's (the template writes it)."""
    roles = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Output"}
    out = []
    for i, m in enumerate(traj.messages):
        if m.role == "assistant" and m.calls:
            content = "\n".join(([m.content] if m.content else []) + [
                f"{c.name}(" + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in c.arguments.items()) + ")"
                for c in m.calls])
        else:
            content = m.content
        if m.role == "assistant" and i < len(traj.messages) - 1:
            content += "</s>"
        out.append({"role": roles[m.role], "content": content})
    if traj.tools:
        tools = format_tools_codellama(traj.tools)
        if out and out[0]["role"] == "System":
            out[0]["content"] = tools + out[0]["content"]
        else:
            out.insert(0, {"role": "System", "content": tools})
    return out


def jinja(messages, add_generation_prompt=False) -> str:
    return jinja2.Template(CODELLAMA_TEMPLATE).render(messages=messages, add_generation_prompt=add_generation_prompt)


# ------------------------------------------------------------------------------------ codellama


def test_readme_example_tools_render_exactly():
    assert format_tools_codellama(README_TOOLS) == README_SYSTEM


def test_readme_example_prompt_renders_exactly():
    """The README's inference example, but for the end marker after the earlier call (render.py:
    every assistant turn ends with it, so the prompt is the prefix of the training text)."""
    traj = Trajectory("readme", README_TOOLS, (
        Message("user", "Could you give me some advice about 'love'?"),
        call_turn(ToolCall("search_advice", {"query": "love"})),
        Message("tool", "..."),
    ))
    expected = ("System: " + README_SYSTEM + "\nUser: Could you give me some advice about 'love'?"
                '\nAssistant: search_advice(query="love")</s>\nOutput: ...\nAssistant:')
    assert render_prompt(traj, 3) == expected
    assert render_prompt(traj, 1) == "System: " + README_SYSTEM + "\nUser: Could you give me some advice about 'love'?" \
        "\nAssistant:"  # the single-turn prompt, as the paper's template writes it
    rendered = render_sample(Sample("readme", Trajectory(traj.id, traj.tools, traj.messages[:2]), (1,)))
    assert rendered.text == expected[: expected.index("\nOutput")]


def test_optional_parameters_and_types():
    text = format_tools_codellama(PAPER_TOOLS[1:2])
    assert text == ('Function:\ndef getPapersByKeywords(query:str, venue:str = None, limit:int = None):\n'
                    '    """\n    Papers matching keywords.\n\n    Args:\n        query (string): Keywords.\n'
                    '        venue (string): Venue.\n        limit (integer): How many.\n    """\n\n')


def test_per_turn_samples_equal_the_papers_jinja_template():
    traj = conversation()
    samples, _ = apply_mae([traj], layout="per_turn")
    assert [s.targets for s in samples] == [(4,), (6,), (9,)]
    for sample in samples:
        rendered = render_sample(sample)
        assert rendered.text == jinja(codellama_messages(sample.trajectory))
        index = sample.targets[0]
        prompt = render_prompt(traj, index)
        assert prompt == jinja(codellama_messages(Trajectory("p", traj.tools, traj.messages[:index])), True)
        # what the model sees before its turn + the supervised text = the training text
        [target] = rendered.targets
        assert rendered.text[:target.start] == prompt + " "
        assert target.end == len(rendered.text)


def test_every_assistant_turn_ends_with_the_end_marker():
    traj = conversation()
    [sample], _ = apply_mae([traj], layout="trajectory")
    rendered = render_sample(sample)
    # = the paper's template on messages whose non-last assistant contents end with </s>
    assert rendered.text == jinja(codellama_messages(traj))
    # the failed call MAE dropped ends like every other turn: "no marker" never means "failed"
    assert 'getPaperDetail(title="x")</s>\nOutput: name' in rendered.text
    for index in traj.assistant_turns():
        assert rendered.text.startswith(render_prompt(traj, index))
        assert render_prompt(traj, index) == jinja(codellama_messages(Trajectory("p", traj.tools,
                                                                                 traj.messages[:index])), True)
    texts = [rendered.text[t.start:t.end] for t in rendered.targets]
    assert texts == ["How many papers?</s>",
                     'Thought: two calls\ngetPapersByKeywords(query="tool learning", venue="ICLR", limit=1)\n'
                     'getPaperDetails(title="TL-Training")</s>',
                     'finish(answer="Done: ünïcode")</s>']
    assert "getPaperDetail(title" in rendered.text  # the failed call stays as context
    assert not any(t.message_index == 2 for t in rendered.targets)


def test_call_spans_point_at_names_and_values():
    [sample], _ = apply_mae([conversation()], layout="trajectory")
    rendered = render_sample(sample)
    parallel = rendered.targets[1]
    assert [c.name for c in parallel.calls] == ["getPapersByKeywords", "getPaperDetails"]
    for call, gold in zip(parallel.calls, conversation().messages[6].calls):
        assert rendered.text[call.name_start:call.name_end] == gold.name
        assert [rendered.text[s:e] for s, e in call.value_spans] == [json.dumps(v) for v in gold.arguments.values()]
        assert rendered.text[call.start:call.end].startswith(gold.name + "(")
        assert rendered.text[call.start:call.end].endswith(")")
    assert rendered.targets[0].calls == ()
    assert rendered.tool_names == ("getPaperDetails", "getPapersByKeywords", "finish")


def test_end_marker_is_the_tokenizers_eos(smollm2_tokenizer):
    [sample], _ = apply_mae([conversation()], layout="trajectory")
    rendered = render_sample(sample, tokenizer=smollm2_tokenizer)
    assert "</s>" not in rendered.text
    assert rendered.text.endswith('finish(answer="Done: ünïcode")<|im_end|>')
    assert rendered.text[rendered.targets[0].start:rendered.targets[0].end] == "How many papers?<|im_end|>"


def test_own_system_text_follows_the_tools():
    rendered = render_sample(Sample("s", conversation(), (4,)))
    assert rendered.text.startswith("System: " + format_tools_codellama(PAPER_TOOLS) + "Be brief.\nUser: ")
    no_tools = Trajectory("n", (), (Message("user", "hi"), Message("assistant", "hello")))
    assert render_sample(Sample("n", no_tools, (1,))).text == "User: hi\nAssistant: hello</s>"


# ------------------------------------------------------------------------------- chat templates


HERMES_TEMPLATE = """\
{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0].role == 'system' %}{{ messages[0].content + '\\n\\n' }}{% endif %}
{{- '# Tools\\n<tools>' }}
{%- for tool in tools %}{{ '\\n' + tool | tojson }}{% endfor %}
{{- '\\n</tools><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'assistant' %}
{{- '<|im_start|>assistant\\n' + message.content }}
{%- for tc in message.tool_calls | default([]) %}
{{- '\\n<tool_call>\\n{"name": "' + tc.function.name + '", "arguments": ' + tc.function.arguments | tojson + '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}
{%- elif message.role != 'system' %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"""

STRICT_ROLES_TEMPLATE = """\
{%- for message in messages %}
{%- if message.role not in ['system', 'user', 'assistant'] %}{{ raise_exception('unknown role') }}{% endif %}
{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"""


def with_template(tokenizer, template: str):
    clone = copy.copy(tokenizer)
    clone.chat_template = template
    return clone


def test_smollm2_template_gets_tools_injected(smollm2_tokenizer):
    support = template_support(smollm2_tokenizer)
    assert (support.tools, support.tool_calls, support.tool_role) == (False, False, True)
    [sample], _ = apply_mae([conversation()], layout="trajectory")
    rendered = render_sample(sample, "chat_template", smollm2_tokenizer)
    text = rendered.text
    assert text.startswith("<|im_start|>system\nYou can call these tools.")
    assert '"name": "getPapersByKeywords"' in text and "Be brief.<|im_end|>" in text
    assert "<|im_start|>tool\nname 'getPaperDetail' is not defined<|im_end|>" in text
    spans = [text[t.start:t.end] for t in rendered.targets]
    assert spans[0] == "How many papers?<|im_end|>"
    assert spans[1] == ('Thought: two calls\n<tool_call>\n{"name": "getPapersByKeywords", "arguments": '
                        '{"query": "tool learning", "venue": "ICLR", "limit": 1}}\n</tool_call>\n<tool_call>\n'
                        '{"name": "getPaperDetails", "arguments": {"title": "TL-Training"}}\n</tool_call><|im_end|>')
    for target in rendered.targets:
        assert text[:target.start].endswith("<|im_start|>assistant\n")
        prompt = render_prompt(sample.trajectory, target.message_index, "chat_template", smollm2_tokenizer)
        assert text[:target.start] == prompt
        for call, gold in zip(target.calls, sample.trajectory.messages[target.message_index].calls):
            assert text[call.name_start:call.name_end] == gold.name
            assert [text[s:e] for s, e in call.value_spans] == \
                [json.dumps(v, ensure_ascii=False) for v in gold.arguments.values()]


def test_template_with_tools_renders_calls_itself(smollm2_tokenizer):
    tokenizer = with_template(smollm2_tokenizer, HERMES_TEMPLATE)
    support = template_support(tokenizer)
    assert (support.tools, support.tool_calls) == (True, True)
    [sample], _ = apply_mae([conversation()], layout="trajectory")
    rendered = render_sample(sample, "chat_template", tokenizer)
    text = rendered.text
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n<tools>\n")
    assert "You can call these tools" not in text  # the template lists them itself
    assert "<tool_response>\n[...]\n</tool_response>" in text
    parallel = rendered.targets[1]
    assert text[parallel.start:parallel.end] == (
        'Thought: two calls\n<tool_call>\n{"name": "getPapersByKeywords", "arguments": {"query": "tool learning", '
        '"venue": "ICLR", "limit": 1}}\n</tool_call>\n<tool_call>\n{"name": "getPaperDetails", "arguments": '
        '{"title": "TL-Training"}}\n</tool_call><|im_end|>')
    names = [text[c.name_start:c.name_end] for c in parallel.calls]
    assert names == ["getPapersByKeywords", "getPaperDetails"]
    assert all(parallel.start <= c.name_start and c.name_end <= parallel.end for c in parallel.calls)
    values = [text[s:e] for c in parallel.calls for s, e in c.value_spans]
    assert values == ['"tool learning"', '"ICLR"', "1", '"TL-Training"']
    final = rendered.targets[2]
    assert text[final.calls[0].value_spans[0][0]:final.calls[0].value_spans[0][1]] == '"Done: ünïcode"'


def test_template_rejecting_tool_role_gets_outputs_as_user(smollm2_tokenizer):
    tokenizer = with_template(smollm2_tokenizer, STRICT_ROLES_TEMPLATE)
    assert template_support(tokenizer).tool_role is False
    [sample], _ = apply_mae([conversation()], layout="trajectory")
    rendered = render_sample(sample, "chat_template", tokenizer)
    assert f"<|im_start|>user\n{OUTPUT_PREFIX}name 'getPaperDetail' is not defined<|im_end|>" in rendered.text
    assert len(rendered.targets) == 3


def test_template_that_rewrites_history_is_refused(smollm2_tokenizer):
    last_only = with_template(smollm2_tokenizer, "{% for m in messages %}{{ m.role }}: {{ m.content }}"
                              "{% if loop.last %} (latest){% endif %}\n{% endfor %}")
    [sample], _ = apply_mae([conversation()], layout="trajectory")
    with pytest.raises(ValueError, match="differently depending on what follows"):
        render_sample(sample, "chat_template", last_only)


# ---------------------------------------------------------------------------------------- errors


def test_bad_arguments_are_clear_errors(smollm2_tokenizer):
    traj = conversation()
    assert PROMPT_FORMATS == ("codellama", "chat_template")
    with pytest.raises(ValueError, match="unknown prompt format"):
        render_sample(Sample("c", traj, (4,)), "chatml")
    with pytest.raises(ValueError, match="needs a tokenizer"):
        render_sample(Sample("c", traj, (4,)), "chat_template")
    with pytest.raises(ValueError, match="not an assistant message"):
        render_sample(Sample("c", traj, (3,)))
    with pytest.raises(ValueError, match="outside"):
        render_prompt(traj, 99)
    no_template = with_template(smollm2_tokenizer, None)
    with pytest.raises(ValueError, match="chat template"):
        render_prompt(traj, 2, "chat_template", no_template)


@pytest.mark.parametrize("prompt_format", PROMPT_FORMATS)
def test_the_continuation_after_a_turn_joins_it_to_the_next_prompt(smollm2_tokenizer, prompt_format):
    """The text after an assistant call turn up to the next generation prompt: its outputs, in the
    format's tool-output role; appended to the text through the turn, it is the next prompt."""
    traj = conversation()
    turn = traj.assistant_turns()[0]
    nxt = next(i for i in range(turn + 1, len(traj.messages)) if traj.messages[i].role == "assistant")
    upto = Trajectory(traj.id, traj.tools, traj.messages[:nxt])
    continuation = render_continuation(upto, turn, prompt_format, smollm2_tokenizer)
    prompt = render_prompt(upto, nxt, prompt_format, smollm2_tokenizer)
    assert prompt.endswith(continuation)
    through = render_sample(Sample(traj.id, Trajectory(traj.id, traj.tools, traj.messages[:turn + 1]), (turn,)),
                            prompt_format, smollm2_tokenizer).text
    assert prompt == through.rstrip() + continuation if prompt_format == "chat_template" else through + continuation
    outputs = [m.content for m in traj.messages[turn + 1:nxt]]
    role = "\nOutput: " if prompt_format == "codellama" else "\n<|im_start|>tool\n"
    assert continuation.startswith(role + outputs[0]) and all(o in continuation for o in outputs)
    with pytest.raises(ValueError, match="not an assistant turn"):
        render_continuation(upto, turn + 1, prompt_format, smollm2_tokenizer)
