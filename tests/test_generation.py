"""The one generation path (tl_lightning/generation.py): where answers end (``StopRule``), the
stopping criterion's lengths, seeded Gumbel-max sampling (its distribution, and draws that do not
depend on the other rows), and ``generate`` on tiny-llama against transformers' own greedy search."""

from __future__ import annotations

import pytest
import torch

from tl_lightning.generation import (
    GumbelSampling,
    StopCriteria,
    StopRule,
    generate,
    sampling_seed,
    single_call_rule,
)
from tl_lightning.modeling import TINY_LLAMA, load_model
from tl_lightning.records import ToolCall

AFTER_CALL = StopRule(after_call=True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ where answers end


@pytest.mark.parametrize("text,answer", [
    ('search(q="x")</s> and more', 'search(q="x")'),
    ('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>', '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'),
    ('search(q="x")\nsearch(q="y")\n', 'search(q="x")'),
    ('Thought: look it up\nAction: search\nAction Input: {"q": "x"}\nObservation: ...',
     'Thought: look it up\nAction: search\nAction Input: {"q": "x"}'),
    ('Action: search\nAction Input: {\n  "q": "x"\n}\nmore', 'Action: search\nAction Input: {\n  "q": "x"\n}'),
])
def test_answers_end_after_the_call(text, answer):
    assert AFTER_CALL.cut(text) == answer


def test_unfinished_answers_go_on_and_rl_answers_end_at_the_turn_only():
    assert AFTER_CALL.end('search(q="x"') is None
    assert AFTER_CALL.end("Thought: I should search\nAction: sea") is None
    assert AFTER_CALL.end('search(q="x")') is None  # no newline yet: more text may follow
    # parallel calls (BFCL), and RL rollouts: only an end marker ends the answer, so a second
    # (hedging) call stays in the text the reward scores
    turn = StopRule()
    assert turn.end('f(a=1)\ng(b=2)\n') is None
    assert turn.cut('f(a=1)\ng(b=2)</s>') == "f(a=1)\ng(b=2)"
    assert turn.cut(" x(a=1)<|im_end|>junk</s>") == "x(a=1)"
    assert turn.cut('x(a=1)\nUser: thanks') == "x(a=1)"


def test_single_call_rule_follows_the_gold_call_sets():
    one, two = ToolCall("f", {}), ToolCall("g", {})
    assert single_call_rule(((one,), (two,))).after_call  # alternatives of one call each
    assert not single_call_rule(((one, two),)).after_call  # parallel calls


def test_stopping_records_each_rows_length_at_its_stop(smollm2_tokenizer):
    tok = smollm2_tokenizer
    prompt = tok("User: hi\nAssistant:", add_special_tokens=False)["input_ids"]
    call = tok(' get_weather(city="Paris")</s>', add_special_tokens=False)["input_ids"]
    call_line = tok(' get_weather(city="Paris")\n', add_special_tokens=False)["input_ids"]
    R = len(call) + 3
    filler = tok(" and more text that goes on", add_special_tokens=False)["input_ids"] * R
    rows = [call + filler[:3],                                 # stops when "</s>" completes (several tokens)
            filler[:1] + [tok.eos_token_id] + filler[:R - 2],  # stops at eos
            filler[:R],                                        # never stops
            (call_line + filler)[:R],                          # stops at the newline after the call...
            (call_line + filler)[:R]]                          # ... only where the rule says so
    rules = [StopRule()] * 3 + [AFTER_CALL, StopRule()]
    ids = torch.tensor([prompt + r for r in rows])
    stopper = StopCriteria(tok, len(prompt), rules, [tok.eos_token_id])
    for step in range(1, R + 1):
        done = stopper(ids[:, :len(prompt) + step], scores=None)
    assert stopper.lengths == [len(call), 2, None, len(call_line), None]
    assert done.tolist() == [True, True, False, True, False]


# ------------------------------------------------------------------ seeded sampling


def test_sampling_seeds_are_stable_and_tell_their_parts_apart():
    assert sampling_seed([5, 6, 7], 0, 3, 1) == sampling_seed([5, 6, 7], 0, 3, 1)
    seeds = {sampling_seed([5, 6, 7], 0, 3, k) for k in range(8)} | {sampling_seed([5, 6], 7, 0, 3, 0)}
    assert len(seeds) == 9 and all(0 <= s < 2**63 for s in seeds)


def test_gumbel_sampling_draws_from_the_tempered_top_p_distribution():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    n = 4000
    sampler = GumbelSampling(range(n), temperature=0.5, top_p=1.0)
    draws = sampler(torch.zeros(n, 1, dtype=torch.long), logits.expand(n, 4).clone()).argmax(-1)
    expected = torch.softmax(logits / 0.5, -1)
    observed = torch.bincount(draws, minlength=4).float() / n
    # binomial standard errors are below 0.008 here: 4 of them is a loose but meaningful bound
    assert (observed - expected).abs().max() < 0.03
    # top-p 0.8 keeps the two most likely tokens at T=1 (0.64 + 0.24 >= 0.8)
    top = GumbelSampling(range(n), temperature=1.0, top_p=0.8)
    assert set(top(torch.zeros(n, 1, dtype=torch.long), logits.expand(n, 4).clone()).argmax(-1).tolist()) == {0, 1}
    with pytest.raises(ValueError, match="temperature"):
        GumbelSampling([0], temperature=0.0, top_p=1.0)


def test_a_rows_draws_depend_on_its_seed_only():
    torch.manual_seed(0)
    scores = torch.randn(3, 50)
    alone = GumbelSampling([11], 1.0, 1.0)(torch.zeros(1, 1, dtype=torch.long), scores[1:2].clone())
    batched = GumbelSampling([7, 11, 13], 1.0, 1.0)(torch.zeros(3, 1, dtype=torch.long), scores.clone())
    torch.testing.assert_close(batched[1:2], alone)


# ------------------------------------------------------------------ generate on tiny-llama


@pytest.fixture(scope="module")
def tiny():
    return load_model(TINY_LLAMA).eval()


def left_padded(tokenizer, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    P = max(len(p) for p in prompts)
    ids = torch.tensor([[tokenizer.pad_token_id] * (P - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


@pytest.mark.slow
def test_greedy_generate_matches_transformers_greedy_search(tiny, smollm2_tokenizer):
    tok = smollm2_tokenizer
    prompts = [tok("User: weather in Paris?\nAssistant:")["input_ids"], tok("User: hi\nAssistant:")["input_ids"]]
    ids, mask = left_padded(tok, prompts)
    rollout = generate(tiny, tok, ids, mask, max_new_tokens=6)
    reference = tiny.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    R = rollout.response_mask.shape[1]
    assert torch.equal(rollout.sequences, reference[:, :ids.shape[1] + R])
    assert tiny.training is False and len(rollout.texts) == 2
    with pytest.raises(ValueError, match="LEFT-padded"):
        generate(tiny, tok, ids.flip(1), mask.flip(1), max_new_tokens=2)


@pytest.mark.slow
def test_a_sampled_completion_does_not_depend_on_its_batch(tiny, smollm2_tokenizer):
    """The same prompt and seed give the same tokens alone or beside another (longer) prompt:
    what makes N processes sample like one."""
    tok = smollm2_tokenizer
    short = tok("User: hi\nAssistant:")["input_ids"]
    longer = tok("User: what is the weather in Paris today?\nAssistant:")["input_ids"]
    kwargs = dict(max_new_tokens=8, do_sample=True, temperature=1.0)
    alone = generate(tiny, tok, *left_padded(tok, [short]), seeds=[42], **kwargs)
    batched = generate(tiny, tok, *left_padded(tok, [longer, short]), seeds=[7, 42], **kwargs)
    n = int(alone.response_mask.sum())
    assert torch.equal(batched.response_ids[1, :n], alone.response_ids[0, :n])
    assert int(batched.response_mask[1].sum()) == n
    other_seed = generate(tiny, tok, *left_padded(tok, [short]), seeds=[43], **kwargs)
    assert not torch.equal(other_seed.response_ids, alone.response_ids)


class ForceToken:
    """A constraint: every row writes ``token``."""

    def __init__(self, token: int) -> None:
        self.token = token

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.token] = 0.0
        return forced


@pytest.mark.slow
def test_recorded_log_probs_are_the_raw_tempered_ones_whatever_the_constraint(tiny, smollm2_tokenizer):
    """``logprobs=True`` records each token's log-prob under softmax(raw logits / temperature), before
    the constraint (``logits_processors``) and the sampling noise: a forward pass over the finished
    sequences gives the same values."""
    tok = smollm2_tokenizer
    ids, mask = left_padded(tok, [tok("User: hi\nAssistant:")["input_ids"],
                                  tok("User: weather in Paris today?\nAssistant:")["input_ids"]])
    sampled = generate(tiny, tok, ids, mask, max_new_tokens=5, do_sample=True, temperature=0.7, seeds=[1, 2],
                       logprobs=True)
    forced = generate(tiny, tok, ids, mask, max_new_tokens=4, logprobs=True, logits_processors=[ForceToken(42)])
    assert (forced.response_ids == 42).all()
    for rollout, temperature in ((sampled, 0.7), (forced, 1.0)):
        P, R = rollout.prompt_length, rollout.response_mask.shape[1]
        with torch.no_grad():
            logits = tiny(input_ids=rollout.sequences, attention_mask=rollout.attention_mask,
                          position_ids=rollout.position_ids).logits[:, P - 1:P + R - 1]
        expected = torch.log_softmax(logits / temperature, -1).gather(-1, rollout.response_ids[..., None])[..., 0]
        keep = rollout.response_mask.bool()
        torch.testing.assert_close(rollout.logprobs[keep], expected[keep], rtol=0, atol=1e-5)
    assert generate(tiny, tok, ids, mask, max_new_tokens=2).logprobs is None
