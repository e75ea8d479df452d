"""The one batched generation path: RL rollouts (PPO and the group-relative estimators),
evaluation (``evaluate run``, ``ToolCallEvaluator``) and ``PKTModule.predict_step`` all call
``generate``.

- Prompts come LEFT-padded (B, P); each response is appended on the right and right-padded after
  its stop, so every row's prompt ends at column P.
- ``StopRule`` is the one place that decides where an answer ends: at an eos id, at end-of-turn
  text (``</s>``, ``<|im_end|>``, ``\\nUser:``, ...), and, with ``after_call``, at the first newline
  after a complete call (single-call prompts). The rule is per row.
- Sampling (``do_sample``) draws from ``softmax(logits / temperature)`` (top-p filtered) with the
  Gumbel-max trick, each row from its own seeded generator: a row's completion depends on its seed
  and its prompt only, never on the other rows, the padding or the number of processes.
- ``Rollout.position_ids`` are the positions ``generate`` used (left padding skipped), so forward
  passes over the rollout see what generation saw.
- ``synced`` keeps every process stepping until all are done: FSDP needs all ranks in each
  forward (their parameter all-gathers), however early one rank's rows stop.
- ``logprobs=True`` records each generated token's log-prob under ``softmax(logits / temperature)``
  of the raw logits (before any constraint or the sampling noise): the values a forward pass over
  the finished sequence gives (multi-turn rollouts check their token layout against them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tl_lightning.calls import END_MARKERS, ParseFailure, parse_call

# Text that ends an assistant turn: the chat formats' end markers, and the start of the next turn
# (a model that skips the end marker goes on with "\nUser: ..." in the paper's format).
TURN_END_MARKERS = END_MARKERS + ("<|im_start|>", "\nUser:", "\nOutput:", "\nSystem:", "\nAssistant:")


@dataclass(frozen=True)
class StopRule:
    """Where a generated answer ends: at the first of ``markers`` or, with ``after_call``, at the
    first newline that follows a complete call (``parse_call`` reads the text before it and no
    ``<tool_call>`` block is left open). Parallel calls (BFCL) span several lines: there only the
    markers end the answer. eos ids always end it."""

    after_call: bool = False
    markers: tuple[str, ...] = TURN_END_MARKERS

    def end(self, text: str) -> int | None:
        """The character index where the answer in ``text`` ends, or None while it goes on."""
        marker_at = min((i for i in (text.find(m) for m in self.markers) if i >= 0), default=None)
        head = text if marker_at is None else text[:marker_at]
        if self.after_call:
            newline = head.find("\n")
            while newline >= 0:
                line_head = head[:newline]
                inside_block = line_head.count("<tool_call>") > line_head.count("</tool_call>")
                if line_head.strip() and not inside_block and not isinstance(parse_call(line_head), ParseFailure):
                    return newline
                newline = head.find("\n", newline + 1)
        return marker_at

    def cut(self, text: str) -> str:
        """``text`` up to the end of its answer, stripped."""
        end = self.end(text)
        return (text if end is None else text[:end]).strip()


def single_call_rule(gold: Sequence[Sequence[Any]]) -> StopRule:
    """The rule for a prompt with acceptable call sets ``gold``: stop after a complete call when
    every set has one call; a prompt that wants several calls stops at end of turn only."""
    return StopRule(after_call=all(len(calls) == 1 for calls in gold))


def stop_token_ids(tokenizer, model) -> list[int]:
    """The eos ids of the tokenizer and of the model's generation config."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    return sorted(i for i in ids if i is not None)


class StopCriteria:
    """A ``generate`` stopping criterion applying each row's ``StopRule``. It records each row's
    response length (stop token included), so the response mask agrees with generation by
    construction even where pad == eos.

    Cost per step and row: one decode of a short tail (markers span at most as many tokens as
    they have characters, plus one straddling token), and a full decode only when the new token
    holds a newline and the row stops after a call."""

    def __init__(self, tokenizer, prompt_length: int, rules: Sequence[StopRule], stop_ids: Sequence[int]) -> None:
        self.tokenizer, self.prompt_length, self.rules = tokenizer, prompt_length, list(rules)
        self.stop_ids = set(stop_ids)
        self.window = max(len(m) for rule in self.rules for m in rule.markers) + 1
        self.lengths: list[int | None] = [None] * len(self.rules)

    def _ends(self, ids: torch.Tensor, rule: StopRule) -> bool:
        """Whether the response ``ids`` (R,) ends here under ``rule``."""
        tail = ids[-self.window:].tolist()
        if tail[-1] in self.stop_ids or any(m in self.tokenizer.decode(tail) for m in rule.markers):
            return True
        return (rule.after_call and "\n" in self.tokenizer.decode(tail[-1:])
                and rule.end(self.tokenizer.decode(ids.tolist())) is not None)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_length
        for row, rule in enumerate(self.rules):
            if self.lengths[row] is None and self._ends(input_ids[row, self.prompt_length:], rule):
                self.lengths[row] = generated
        return torch.tensor([n is not None for n in self.lengths], device=input_ids.device)


def sampling_seed(*parts: int | Sequence[int]) -> int:
    """A 63-bit seed from ints and int sequences (e.g. a prompt's tokens, the run seed, the step,
    the index in the group): the same parts give the same seed on every machine and process."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        values = [part] if isinstance(part, int) else list(part)
        digest.update(len(values).to_bytes(8, "little"))
        for value in values:
            digest.update(int(value).to_bytes(8, "little", signed=True))
    return int.from_bytes(digest.digest(), "little") >> 1


class GumbelSampling:
    """A logits processor that turns greedy decoding into sampling from
    ``softmax(logits / temperature)`` (top-p filtered): ``argmax(z + g)`` with g standard Gumbel
    noise is a draw from ``softmax(z)``. Row b's noise comes from a generator seeded with
    ``seeds[b]``, so its draws do not depend on the batch it sits in."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float) -> None:
        if temperature <= 0:
            raise ValueError(f"the sampling temperature must be > 0, got {temperature}")
        self.seeds, self.temperature, self.top_p = list(seeds), temperature, top_p
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        from transformers import TopPLogitsWarper

        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        z = scores.float() / self.temperature
        if self.top_p < 1.0:
            z = TopPLogitsWarper(self.top_p)(input_ids, z)
        uniform = torch.stack([torch.rand(z.shape[1], generator=g, device=z.device) for g in self.generators])
        tiny = torch.finfo(uniform.dtype).tiny
        return z - torch.log(-torch.log(uniform.clamp(min=tiny)))


class LogprobRecorder:
    """A logits processor that records the log-prob of each generated token under
    ``softmax(scores / temperature)`` of the scores it sees (put it first: the raw logits). Step t's
    token is only known at step t + 1 (or, for the last one, from the final sequences), so it keeps
    one (B, V) row of log-probs pending and a (B,) value per finished step."""

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature
        self.steps: list[torch.Tensor] = []
        self._pending: torch.Tensor | None = None

    def _gather(self, tokens: torch.Tensor) -> None:
        if self._pending is not None:
            self.steps.append(self._pending.gather(1, tokens[:, None]).squeeze(1))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        self._gather(input_ids[:, -1])
        self._pending = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def logprobs(self, response: torch.Tensor) -> torch.Tensor:
        """(B, R) log-probs of the generated ``response`` (B, R) tokens."""
        self._gather(response[:, -1])
        self._pending = None
        return torch.stack(self.steps, 1) if self.steps else response.new_zeros(response.shape, dtype=torch.float32)


@dataclass
class Rollout:
    """Prompts with their generated responses.

    ``sequences`` (B, P + R): the LEFT-padded prompt, then the response, right-padded after its
    stop; ``attention_mask`` / ``position_ids`` (B, P + R) for forward passes that match the
    generation; ``response_mask`` (B, R): 1 on the response up to and including its stop token;
    ``texts``: the decoded responses cut where their ``StopRule`` ends the answer; ``logprobs``
    (B, R): with ``generate(logprobs=True)``, each response token's log-prob as generation saw it.

    A multi-turn rollout (``episodes.py``) has the same layout: the response is everything after
    the first prompt, generated turns and the tool outputs between them, and ``response_mask`` is 1
    on the generated tokens only (holes at the tool outputs).
    """

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_mask: torch.Tensor
    texts: list[str]
    prompt_length: int
    logprobs: torch.Tensor | None = None

    @property
    def response_ids(self) -> torch.Tensor:
        """(B, R) generated token ids."""
        return self.sequences[:, self.prompt_length:]

    def to(self, device: torch.device | str) -> "Rollout":
        """The rollout with its tensors on ``device``."""
        return Rollout(self.sequences.to(device), self.attention_mask.to(device), self.position_ids.to(device),
                       self.response_mask.to(device), self.texts, self.prompt_length,
                       None if self.logprobs is None else self.logprobs.to(device))

    def rows(self, index: torch.Tensor) -> "Rollout":
        """The rollouts of the rows in ``index`` (1-D LongTensor)."""
        return Rollout(self.sequences[index], self.attention_mask[index], self.position_ids[index],
                       self.response_mask[index], [self.texts[i] for i in index.tolist()], self.prompt_length,
                       None if self.logprobs is None else self.logprobs[index])


@torch.no_grad()
def generate(model, tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
             stop: StopRule | Sequence[StopRule] = StopRule(), seeds: Sequence[int] | None = None,
             synced: bool = False, logprobs: bool = False, logits_processors: Sequence[Any] = ()) -> Rollout:
    """Batched generation with the KV cache from LEFT-padded prompts input_ids / attention_mask (B, P).

    Args:
        do_sample, temperature, top_p: greedy, or sampling from ``softmax(logits / temperature)``
            restricted to the top-p mass (``GumbelSampling``).
        stop: one ``StopRule`` for every row, or one per row.
        seeds: B sampling seeds (``sampling_seed``); None draws them from torch's global RNG.
        synced: keep stepping until every process is done (FSDP).
        logprobs: record ``Rollout.logprobs`` (``LogprobRecorder``, at the sampling temperature;
            1 when greedy).
        logits_processors: transformers logits processors applied after the recorder, before the
            sampling (constrained decoding: a grammar, a forced prefix).
    The model runs in eval mode (KV cache on, gradient checkpointing and dropout off) and gets its
    mode back afterwards.
    """
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    B, P = input_ids.shape
    if not bool(attention_mask[:, -1].all()):
        raise ValueError("generate needs LEFT-padded prompts (every row's last prompt column attended)")
    rules = [stop] * B if isinstance(stop, StopRule) else list(stop)
    if len(rules) != B:
        raise ValueError(f"{len(rules)} stop rules for {B} prompts")
    stop_ids = stop_token_ids(tokenizer, model)
    stopper = StopCriteria(tokenizer, P, rules, stop_ids)
    recorder = LogprobRecorder(temperature if do_sample else 1.0) if logprobs else None
    processors = LogitsProcessorList([recorder] if recorder is not None else [])
    processors.extend(logits_processors)
    if do_sample:
        if seeds is None:
            seeds = torch.randint(0, 2**62, (B,)).tolist()
        processors.append(GumbelSampling(seeds, temperature, top_p))
    # do_sample=False: the sampling, if any, is the processor's; greedy decoding takes its argmax
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                              eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    try:
        sequences = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                                   logits_processor=processors, stopping_criteria=StoppingCriteriaList([stopper]),
                                   synced_gpus=synced)
    finally:
        model.train(was_training)
    response = sequences[:, P:]
    R = response.shape[1]
    lengths = torch.tensor([R if n is None else n for n in stopper.lengths], device=sequences.device)
    response_mask = (torch.arange(R, device=sequences.device)[None, :] < lengths[:, None]).long()
    full_mask = torch.cat([attention_mask.long(), response_mask], dim=1)
    # the positions generate used: count of attended tokens before each one (left padding skipped)
    position_ids = (full_mask.cumsum(1) - 1).clamp(min=0)
    texts = [rule.cut(tokenizer.decode(response[b, :n].tolist()))
             for b, (rule, n) in enumerate(zip(rules, lengths.tolist()))]
    return Rollout(sequences, full_mask, position_ids, response_mask, texts, P,
                   None if recorder is None else recorder.logprobs(response))
