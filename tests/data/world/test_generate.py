"""Trajectories, prompts and splits of the procedural world: determinism, no leak of held-out
domains or templates into training data, executable gold calls, failures MAE catches, lengths."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from tl_lightning.data.mae import DEFAULT_DETECTOR, apply_mae, select_turns
from tl_lightning.data.render import render_sample
from tl_lightning.data.tokenize import tokenize_rendered
from tl_lightning.data.world import ERROR_KINDS, SPLITS, World, generate_prompts, generate_tasks, generate_trajectories
from tl_lightning.data.world.queries import TEMPLATES, heldout_template_ids


@pytest.fixture(scope="module")
def world():
    return World(0)


@pytest.fixture(scope="module")
def train():
    """Training data as a model would see it: SFT trajectories and RL prompts."""
    return generate_trajectories(600, seed=0, error_rate=0.5) + generate_prompts(300, seed=0)


def _tool_names(trajs) -> set[str]:
    """Every tool name a trajectory mentions: offered, called (wrong calls included), or gold."""
    names = set()
    for t in trajs:
        names |= set(t.tool_names)
        for m in t.messages:
            names |= {c.name for s in m.acceptable() for c in s}
    return names


def test_same_seed_same_data_other_seed_other_data():
    for split in SPLITS:
        assert generate_trajectories(30, seed=7, split=split) == generate_trajectories(30, seed=7, split=split)
        assert generate_prompts(30, seed=7, split=split) == generate_prompts(30, seed=7, split=split)
        assert generate_trajectories(30, seed=7, split=split) != generate_trajectories(30, seed=8, split=split)
        assert generate_prompts(30, seed=7, split=split) != generate_prompts(30, seed=8, split=split)
    assert generate_tasks(30, seed=7) == generate_tasks(30, seed=7)
    assert generate_tasks(30, seed=7) != generate_tasks(30, seed=7, world_seed=1)
    # meta (not compared by ==) is deterministic too
    assert [t.meta for t in generate_trajectories(30, seed=7)] == [t.meta for t in generate_trajectories(30, seed=7)]


def test_no_tool_of_a_heldout_domain_appears_in_training_data(world, train):
    heldout_tools = {t.name for d in world.domains_of(True) for t in d.tools}
    train_tools = {t.name for d in world.domains_of(False) for t in d.tools}
    seen = _tool_names(train)
    assert not seen & heldout_tools
    assert {t.meta["domain"] for t in train} <= {d.name for d in world.domains_of(False)}
    heldout = generate_prompts(300, seed=0, split="heldout_domains")
    offered = {n for t in heldout for n in t.tool_names}
    assert offered <= heldout_tools and not offered & train_tools
    assert {t.meta["domain"] for t in heldout} == set(world.heldout_domains)  # every held-out domain is asked


def _template_regex(text: str) -> re.Pattern:
    """A template as a regex: its literal text, any text in each slot."""
    literal = re.split(r"\{\w+\}", text)
    return re.compile(".*?".join(re.escape(part) for part in literal), re.S)


def test_no_heldout_template_text_appears_in_training_queries(train):
    held = heldout_template_ids(0)
    assert len(held) == len(TEMPLATES)  # one per group
    queries = {t.messages[0].content for t in train}
    used = {tid for t in train for tid in t.meta["templates"]}
    assert not used & held and len(used) == sum(len(v) for v in TEMPLATES.values()) - len(held)
    for tid in held:
        group, index = tid.split("/")
        pattern = _template_regex(TEMPLATES[group][int(index)])
        assert not [q for q in queries if pattern.fullmatch(q)], tid
    asked = generate_prompts(300, seed=0, split="heldout_templates")
    assert {tid for t in asked for tid in t.meta["templates"]} == held
    assert not {t.messages[0].content for t in asked} & queries


def test_every_task_kind_and_error_kind_occurs(train):
    trajs = [t for t in train if t.messages[-1].role == "assistant" and not t.messages[-1].calls]
    assert Counter(t.meta["task_kind"] for t in trajs).keys() == {"single", "parallel", "two_step"}
    assert {k for t in trajs for k in t.meta["injected_errors"]} == set(ERROR_KINDS)
    assert any(len(m.calls) == 2 for t in trajs for m in t.messages)  # parallel calls in one turn


def test_gold_calls_execute_without_failure_with_the_offered_tools(world):
    for split in SPLITS:
        for p in generate_prompts(200, seed=1, split=split):
            for call_set in p.messages[-1].acceptable():
                for call in call_set:
                    result = world.execute(call, p.tools)
                    assert not result.failed, (p.id, call, result.output)


def test_mae_drops_exactly_the_failed_calls_and_successful_outputs_never_read_as_errors():
    for split in SPLITS:
        trajs = generate_trajectories(500, seed=2, split=split, error_rate=0.5)
        for t in trajs:
            selection = select_turns(t)
            assert len(selection.dropped) == len(t.meta["injected_errors"]), t.id
            for i in selection.kept:
                for m in t.messages[i + 1:]:
                    if m.role != "tool":
                        break
                    assert "error" not in m.content.lower() and DEFAULT_DETECTOR.match(m.content) is None, m.content
        _, report = apply_mae(trajs)
        assert {"is not defined", "positional argument", "unexpected keyword", "ConnectionError", '"error":'} <= set(
            report.dropped_by_pattern), report.dropped_by_pattern


def test_error_rate_zero_gives_clean_trajectories():
    assert all(not t.meta["injected_errors"] for t in generate_trajectories(100, seed=3, error_rate=0.0))
    with pytest.raises(ValueError, match="error_rate"):
        generate_trajectories(1, error_rate=1.5)
    with pytest.raises(ValueError, match="unknown split"):
        generate_prompts(1, split="test")


def test_two_step_tasks_use_the_id_the_first_output_gave():
    tasks = [t for t in generate_tasks(200, seed=4) if t.kind == "two_step"]
    assert tasks
    for task in tasks:
        first_id = next(iter(json.loads(task.outputs[0][0])[0].values()))
        assert first_id in task.steps[1][0].arguments.values()
        assert first_id not in task.query  # only the output holds it


def test_second_step_prompts_hold_the_first_call_and_its_output():
    prompts = generate_prompts(120, seed=5)
    second = [p for p in prompts if p.meta["step"] == 2]
    assert second
    for p in second:
        assert [m.role for m in p.messages] == ["user", "assistant", "tool", "assistant"]
        assert p.messages[1].calls and not DEFAULT_DETECTOR.match(p.messages[2].content)
        assert p.id.endswith("-step2") and p.id.replace("-step2", "-step1") in {q.id for q in prompts}


def test_alternatives_are_defaults_made_explicit_or_parallel_calls_swapped():
    prompts = generate_prompts(200, seed=6)
    assert any(p.messages[-1].alternatives for p in prompts)
    for p in prompts:
        gold = p.messages[-1]
        for alt in gold.alternatives:
            assert sorted(c.name for c in alt) == sorted(c.name for c in gold.calls)
            for call in alt:
                spec = p.tool(call.name)
                extra = {k: v for k, v in call.arguments.items() if all(k not in g.arguments for g in gold.calls)}
                assert all(spec.properties[k].get("default") == v for k, v in extra.items())


def test_queries_state_the_values_the_gold_call_copies():
    """Every string value of a first-step gold call is in the query (dates in the schema's format,
    quoted keywords, ids, names), every number in digits."""
    for p in generate_prompts(300, seed=7):
        if p.meta["step"] != 1:
            continue
        query = p.messages[0].content
        for call in p.messages[-1].calls:
            for key, value in call.arguments.items():
                values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
                for v in values:
                    if isinstance(v, bool):
                        continue
                    assert str(v) in query, (query, call)


# ---------------------------------------------------------------- lengths (stated in the package docstring)

LENGTH_BOUNDS = {("chat_template", "prompt"): 720, ("chat_template", "trajectory"): 1024,
                 ("codellama", "prompt"): 420, ("codellama", "trajectory"): 768}


@pytest.mark.slow
def test_sample_lengths_stay_within_the_stated_bounds(smollm2_tokenizer):
    """One gold call turn with its context (a prompt + its call, what RL and eval score) and a whole
    SFT trajectory, rendered in both prompt formats and tokenized with SmolLM2's tokenizer."""
    splits = ("train", "heldout_domains")
    data = {"prompt": [p for split in splits for p in generate_prompts(150, seed=0, split=split)],
            "trajectory": [t for split in splits for t in generate_trajectories(150, seed=0, split=split)]}
    for (fmt, what), bound in LENGTH_BOUNDS.items():
        samples, _ = apply_mae(data[what])
        lengths = sorted(len(tokenize_rendered(render_sample(s, fmt, smollm2_tokenizer), smollm2_tokenizer).input_ids)
                         for s in samples)
        pct = {q: lengths[min(len(lengths) - 1, len(lengths) * q // 100)] for q in (10, 50, 90)}
        print(f"{fmt:13} {what:10} p10 {pct[10]} p50 {pct[50]} p90 {pct[90]} max {lengths[-1]}")
        assert lengths[-1] <= bound and pct[50] <= 0.7 * bound
