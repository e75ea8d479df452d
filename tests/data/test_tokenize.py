"""Spans -> tokens: labels, key tokens and PKT weights, with SmolLM2's tokenizer and with a
tokenizer built here whose tokens straddle the span edges."""

from __future__ import annotations

import pytest
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from tests.data.test_render import PAPER_GOLD, PAPER_TOOLS, conversation
from tl_lightning.data.mae import LAYOUTS, Sample, apply_mae
from tl_lightning.data.render import PROMPT_FORMATS, render_prompt, render_sample
from tl_lightning.data.tokenize import (
    common_prefix_length,
    bos_to_add,
    encode_prompt,
    key_char_offsets,
    key_token_weight,
    tokenize_rendered,
)
from tl_lightning.losses import IGNORE_INDEX
from tl_lightning.records import Message, ToolCall, ToolSpec, Trajectory


def paper_sample() -> Sample:
    """The paper's example: three tools, gold getPapersByKeywords(query='tool learning', ...)."""
    traj = Trajectory("paper", PAPER_TOOLS, (
        Message("user", "Find one ICLR paper about tool learning."),
        Message("assistant", calls=(PAPER_GOLD,)),
    ))
    return Sample("paper", traj, (1,))


def overlapping(offsets, start: int, end: int) -> list[int]:
    """Token indices whose [a, b) overlaps [start, end), written out independently."""
    return [t for t, (a, b) in enumerate(offsets) if a < b and a < end and b > start]


def holding(offsets, char: int) -> int:
    [t] = [t for t, (a, b) in enumerate(offsets) if a <= char < b]
    return t


def chunk_tokenizer(texts: list[str], bos: bool = False) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over 4-character chunks: its tokens cut through words and span
    edges wherever the chunk grid falls (the grid restarts after each special token)."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]{1,4}"), behavior="isolated")
    special = ["[UNK]", "</s>"] + (["<s>"] if bos else [])
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=special))
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="</s>",
                                   bos_token="<s>" if bos else None)


# ----------------------------------------------------------------------------------- key chars


def test_key_char_offsets():
    assert common_prefix_length("getPapersByKeywords", "getPaperDetails") == 8
    assert key_char_offsets("getPapersByKeywords", ["getPaperDetails", "finish"], 10) == [10, 18]
    assert key_char_offsets("getX", ["get", "getX", "getY"], 0) == [0, 3]  # prefix other; itself ignored
    assert key_char_offsets("get", ["getX"], 5) == [5]  # gold is a prefix of the other: no departure
    # ... unless the token after the name is marked: that is where the two part
    assert key_char_offsets("get", ["getX", "get"], 5, name_end_key=True) == [5, 8]
    assert key_char_offsets("getX", ["get"], 0, name_end_key=True) == [0, 3]  # the other way round: as before
    assert key_char_offsets("search", ["finish", "lookup"], 0) == [0]
    assert key_char_offsets("abc", ["abd", "abx", "ax"], 0) == [0, 1, 2]


def test_key_token_weight_clips():
    assert key_token_weight(18, 2, 9.0) == 9.0
    assert key_token_weight(18, 2, 20.0) == 9.0
    assert key_token_weight(1, 2, 9.0) == 1.0
    assert key_token_weight(10, 4, 9.0) == 2.5
    assert key_token_weight(10, 4, 1.0) == 1.0


# ------------------------------------------------------------------------------ paper's example


def test_paper_example_key_tokens_with_smollm2(smollm2_tokenizer):
    rendered = render_sample(paper_sample(), tokenizer=smollm2_tokenizer)
    assert rendered.text.endswith('Assistant: getPapersByKeywords(query="tool learning", venue="ICLR", limit=1)<|im_end|>')
    sample = tokenize_rendered(rendered, smollm2_tokenizer, w_max=20.0)
    tokens = smollm2_tokenizer.convert_ids_to_tokens(sample.input_ids)
    keys = [t for t, k in zip(tokens, sample.key_mask) if k]
    assert keys == ["Ġget", "apers"]

    # |NK| computed independently: tokens overlapping the call + end marker, minus the 2 keys
    encoding = smollm2_tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    assert sample.input_ids == encoding["input_ids"]  # no BOS: SmolLM2 adds none to plain text
    start = rendered.text.rindex("getPapersByKeywords(")  # the call, not the signature
    turn = overlapping(encoding["offset_mapping"], start, len(rendered.text))
    assert tokens[turn[0]] == "Ġget" and tokens[turn[-1]] == "<|im_end|>"
    non_key = len(turn) - 2
    expected = min(max(non_key / 2, 1.0), 20.0)
    assert expected > 1
    key_weights = [w for w, k in zip(sample.loss_weights, sample.key_mask) if k]
    assert key_weights == [expected, expected]
    assert sorted(set(w for w, k in zip(sample.loss_weights, sample.key_mask) if not k)) == [0.0, 1.0]
    assert [t for t, label in enumerate(sample.labels) if label != IGNORE_INDEX] == turn
    assert all(sample.labels[t] == sample.input_ids[t] for t in turn)

    clipped = tokenize_rendered(rendered, smollm2_tokenizer)  # w_max = 9, the paper's
    assert [w for w, k in zip(clipped.loss_weights, clipped.key_mask) if k] == [min(expected, 9.0)] * 2


def test_w_max_one_gives_all_ones(smollm2_tokenizer):
    rendered = render_sample(paper_sample(), tokenizer=smollm2_tokenizer)
    sample = tokenize_rendered(rendered, smollm2_tokenizer, w_max=1.0)
    assert all(w == (1.0 if label != IGNORE_INDEX else 0.0) for w, label in zip(sample.loss_weights, sample.labels))
    assert sum(sample.key_mask) == 2
    with pytest.raises(ValueError, match="w_max"):
        tokenize_rendered(rendered, smollm2_tokenizer, w_max=0.5)


def test_exclude_value_end_shrinks_non_key_count(smollm2_tokenizer):
    rendered = render_sample(paper_sample(), tokenizer=smollm2_tokenizer)
    full = tokenize_rendered(rendered, smollm2_tokenizer, w_max=100.0)
    excluded = tokenize_rendered(rendered, smollm2_tokenizer, w_max=100.0, exclude_value_end=True)
    encoding = smollm2_tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    [target] = rendered.targets
    [call] = target.calls
    value_ends = {holding(offsets, end - 1) for _, end in call.value_spans}
    assert len(value_ends) == 3
    turn = overlapping(offsets, target.start, target.end)
    assert max(full.loss_weights) == (len(turn) - 2) / 2
    assert max(excluded.loss_weights) == (len(turn) - 2 - len(value_ends)) / 2
    assert all(excluded.loss_weights[t] == 1.0 for t in value_ends)  # not up-weighted
    assert excluded.labels == full.labels


def test_weights_are_per_turn_in_a_trajectory(smollm2_tokenizer):
    [sample], _ = apply_mae([conversation()], layout="trajectory")
    rendered = render_sample(sample, "chat_template", smollm2_tokenizer)
    tokenized = tokenize_rendered(rendered, smollm2_tokenizer, w_max=100.0)
    encoding = smollm2_tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    assert tokenized.target_turns == 3
    supervised = set()
    for target in rendered.targets:
        turn = overlapping(offsets, target.start, target.end)
        supervised.update(turn)
        keys = [t for t in turn if tokenized.key_mask[t]]
        weights = {tokenized.loss_weights[t] for t in keys}
        if not target.calls:  # a text turn: no key tokens, all ones
            assert keys == [] and {tokenized.loss_weights[t] for t in turn} == {1.0}
            continue
        expected_keys = {holding(offsets, c) for call in target.calls
                         for c in key_char_offsets(call.name, rendered.tool_names, call.name_start)}
        assert set(keys) == expected_keys
        assert weights == {(len(turn) - len(keys)) / len(keys)}
    assert {t for t, label in enumerate(tokenized.labels) if label != IGNORE_INDEX} == supervised
    assert all((w == 0.0) == (label == IGNORE_INDEX) for w, label in zip(tokenized.loss_weights, tokenized.labels))


# ------------------------------------------------------------------- a second, straddling tokenizer


def test_straddling_tokens_with_a_chunk_tokenizer():
    [sample], _ = apply_mae([conversation()], layout="trajectory")
    text = render_sample(sample).text
    tokenizer = chunk_tokenizer([text])
    rendered = render_sample(sample, tokenizer=tokenizer)
    assert rendered.text == text  # eos "</s>": same text as the paper's
    tokenized = tokenize_rendered(rendered, tokenizer, w_max=100.0)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    assert tokenized.input_ids == encoding["input_ids"]

    straddling = 0
    for target in rendered.targets:
        turn = overlapping(offsets, target.start, target.end)
        straddling += offsets[turn[0]][0] < target.start
        straddling += offsets[turn[-1]][1] > target.end
        assert all(tokenized.labels[t] == tokenized.input_ids[t] for t in turn)
        before, after = turn[0] - 1, turn[-1] + 1
        assert tokenized.labels[before] == IGNORE_INDEX and tokenized.loss_weights[before] == 0.0
        assert after == len(offsets) or tokenized.labels[after] == IGNORE_INDEX
        keys = {t for t in turn if tokenized.key_mask[t]}
        expected = {holding(offsets, c) for call in target.calls
                    for c in key_char_offsets(call.name, rendered.tool_names, call.name_start)}
        assert keys == expected
    assert straddling >= 2  # the test is only meaningful if tokens do cross span edges
    supervised = {t for t in range(len(offsets)) if any(overlapping([offsets[t]], x.start, x.end) for x in rendered.targets)}
    assert {t for t, label in enumerate(tokenized.labels) if label != IGNORE_INDEX} == supervised


def test_bos_is_added_once_when_the_tokenizer_uses_one():
    text = render_sample(paper_sample()).text
    tokenizer = chunk_tokenizer([text, "<s>" + text], bos=True)
    bos_id = tokenizer.bos_token_id
    assert tokenizer("abc")["input_ids"][0] == bos_id
    sample = tokenize_rendered(render_sample(paper_sample(), tokenizer=tokenizer), tokenizer)
    assert sample.input_ids[0] == bos_id and sample.input_ids.count(bos_id) == 1
    assert sample.labels[0] == IGNORE_INDEX and sample.loss_weights[0] == 0.0
    assert sample.input_ids[1:] == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert sum(sample.key_mask) == 2


@pytest.mark.parametrize("prompt_format", ["codellama", "chat_template"])
def test_both_layouts_supervise_the_same_tokens_with_the_same_weights(smollm2_tokenizer, prompt_format):
    def supervised_turns(layout):
        samples, _ = apply_mae([conversation()], layout=layout)
        turns = []
        for sample in samples:
            rendered = render_sample(sample, prompt_format, smollm2_tokenizer)
            tokenized = tokenize_rendered(rendered, smollm2_tokenizer)
            offsets = smollm2_tokenizer(rendered.text, add_special_tokens=False,
                                        return_offsets_mapping=True)["offset_mapping"]
            for target in rendered.targets:
                turn = overlapping(offsets, target.start, target.end)
                turns.append((target.message_index, tuple(tokenized.labels[t] for t in turn),
                              tuple(tokenized.loss_weights[t] for t in turn)))
        return sorted(turns)

    per_turn, trajectory = supervised_turns("per_turn"), supervised_turns("trajectory")
    assert [t[0] for t in per_turn] == [4, 6, 9]
    assert per_turn == trajectory


# ------------------------------------------------------------- generation prompt = training prefix


def prompt_prefix_violations(trajs: list[Trajectory], prompt_format: str, tokenizer) -> list[str]:
    """Every (sample, assistant turn) where the generation prompt's token ids are not a prefix of
    the token ids of a training sample holding that turn. The samples: both MAE layouts (what
    the DataModule trains on, dropped turns as context) and the whole trajectory without targets
    (so every assistant turn is checked, also those after the last kept one).

    Texts are encoded in batches (the tokenizer's threads, not one call per text): the same ids
    ``encode_prompt`` and ``tokenize_rendered`` give (``test_training_ids_are_the_encoded_text``)."""
    if len(trajs) > 32:  # bounded memory: the texts of a long source hold millions of tokens
        return [v for k in range(0, len(trajs), 32)
                for v in prompt_prefix_violations(trajs[k:k + 32], prompt_format, tokenizer)]
    checks: list[tuple[str, int, int, int]] = []  # (sample id, turn, prompt text index, sample text index)
    texts: list[str] = []
    for traj in trajs:
        turns = traj.assistant_turns()
        prompt_at = {}
        for i in turns:
            prompt_at[i] = len(texts)
            texts.append(render_prompt(traj, i, prompt_format, tokenizer))
        samples = [s for layout in LAYOUTS for s in apply_mae([traj], layout=layout)[0]]
        samples.append(Sample(f"{traj.id}/context", traj, ()))
        for sample in samples:
            texts.append(render_sample(sample, prompt_format, tokenizer).text)
            checks += [(sample.id, i, prompt_at[i], len(texts) - 1) for i in turns
                       if i < len(sample.trajectory.messages)]
    ids = [bos_to_add(tokenizer, text) + list(encoded) for text, encoded
           in zip(texts, tokenizer(texts, add_special_tokens=False)["input_ids"])]
    return [f"{sample_id} turn {i}" for sample_id, i, p, t in checks if ids[t][:len(ids[p])] != ids[p]]


def test_training_ids_are_the_encoded_text(smollm2_tokenizer):
    """What the prefix property test compares: a sample's training ids are its encoded text, as
    a prompt's are (so comparing encoded texts is comparing what training and generation see)."""
    from tl_lightning.data import world

    for traj in world.generate_trajectories(8, seed=1):
        for prompt_format in PROMPT_FORMATS:
            sample = apply_mae([traj], layout="trajectory")[0][0]
            rendered = render_sample(sample, prompt_format, smollm2_tokenizer)
            assert tokenize_rendered(rendered, smollm2_tokenizer).input_ids == encode_prompt(rendered.text,
                                                                                            smollm2_tokenizer)


# The long multi-turn sources: every turn's prompt and per-turn sample is a separate tokenization
# of a long prefix (SGD: 10k turns, tau-bench: 2.4k turns of ~4k tokens); minutes on 2 cores.
LONG_SOURCES = ("SGD/train", "tau-bench/historical_trajectories/gpt-4o-airline.json",
                "API-Bank/lv1-lv2-samples/level-1-given-desc")


def shared_sources() -> list:
    """Every trajectory source of ../shared/data (tests/data/test_sources.py's list and SGD), the
    long ones marked slow."""
    from tests.data.test_sources import SOURCES

    rels = [rel for rel, _, _ in SOURCES] + ["SGD/train"]
    return [pytest.param(rel, marks=pytest.mark.slow) if rel in LONG_SOURCES else rel for rel in rels]


@pytest.fixture(scope="module")
def synthetic_worlds() -> list[Trajectory]:
    """Both built-in worlds: the five-domain one and the procedural one (every split)."""
    from tl_lightning.data import synthetic, world

    trajs = synthetic.generate_trajectories(64, seed=0) + synthetic.generate_prompts(64, seed=0)
    for split in world.SPLITS:
        trajs += world.generate_trajectories(64, seed=0, split=split) + world.generate_prompts(64, seed=0, split=split)
    return trajs


@pytest.mark.parametrize("prompt_format", PROMPT_FORMATS)
def test_generation_prompt_is_a_prefix_of_the_training_sample_synthetic(synthetic_worlds, smollm2_tokenizer,
                                                                       prompt_format):
    violations = prompt_prefix_violations(synthetic_worlds, prompt_format, smollm2_tokenizer)
    assert not violations, f"{len(violations)} prompts are no prefix: {violations[:5]}"


@pytest.mark.parametrize("prompt_format", PROMPT_FORMATS)
@pytest.mark.parametrize("rel", shared_sources())
def test_generation_prompt_is_a_prefix_of_the_training_sample(shared_data, smollm2_tokenizer, rel, prompt_format):
    from tl_lightning.data.sources import read_trajectories

    trajs = read_trajectories(str(shared_data / rel))
    violations = prompt_prefix_violations(trajs, prompt_format, smollm2_tokenizer)
    assert not violations, f"{len(violations)} prompts are no prefix: {violations[:5]}"


def test_name_end_key_marks_the_token_after_a_gold_name_that_a_sibling_continues(smollm2_tokenizer):
    """``get_invoice`` vs ``get_invoice_status``: the model decides at the token after the name."""
    tools = (ToolSpec("get_invoice", parameters={"type": "object", "properties": {"invoice_id": {"type": "string"}}}),
             ToolSpec("get_invoice_status", parameters={"type": "object",
                                                        "properties": {"invoice_id": {"type": "string"}}}))
    traj = Trajectory("t", tools, (Message("user", "Show invoice INV-1."),
                                   Message("assistant", calls=(ToolCall("get_invoice", {"invoice_id": "INV-1"}),))))
    rendered = render_sample(Sample("t", traj, (1,)), "codellama", smollm2_tokenizer)
    marked = {}
    for name_end_key in (False, True):
        tok = tokenize_rendered(rendered, smollm2_tokenizer, name_end_key=name_end_key)
        marked[name_end_key] = [smollm2_tokenizer.decode([t]) for t, k in zip(tok.input_ids, tok.key_mask) if k]
    assert marked[False] == [" get"]
    assert marked[True][0] == " get" and marked[True][1].startswith("(")
