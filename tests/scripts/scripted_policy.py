"""A scripted policy for multi-turn tests: the tiny random Llama never writes a call, so episodes
would end after one turn. ``ScriptedTurns`` is a logits processor (``generate``'s
``logits_processors``: it acts after the log-prob recorder) that forces each row to write
``reply(context)`` and then eos, or leaves the row to the model where ``reply`` gives None. The
log-probs recorded are still the model's own (of the forced tokens), so the token layout checks
hold as for free generation.

``scripted(reply)`` is the context in which ``episodes.run_episodes`` (and so
``IRMPPOModule`` with an environment) generates with it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from unittest import mock

import torch

from tl_lightning import episodes, generation


class ScriptedTurns:
    """Force ``reply(context_text)`` (+ eos) on every row of each ``generate`` call; ``context_text``
    is the row's prompt decoded (left padding included: read its tail)."""

    def __init__(self, tokenizer, reply: Callable[[str], str | None]) -> None:
        self.tokenizer, self.reply = tokenizer, reply
        self.prefix: torch.Tensor | None = None
        self.width = 0
        self.targets: list[list[int] | None] = []

    def _target(self, row: torch.Tensor) -> list[int] | None:
        text = self.reply(self.tokenizer.decode(row.tolist()))
        if text is None:
            return None
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        # within one generate call each step sees one more token, over the same prompts
        P = 0 if self.prefix is None else self.prefix.shape[1]
        same_call = (self.prefix is not None and input_ids.shape == (self.prefix.shape[0], self.width + 1)
                     and torch.equal(input_ids[:, :P], self.prefix))
        if not same_call:  # a new generate call: its prompts are this first input
            self.prefix = input_ids.clone()
            self.targets = [self._target(row) for row in input_ids]
        self.width = input_ids.shape[1]
        step = input_ids.shape[1] - self.prefix.shape[1]
        forced = scores.clone()
        for b, target in enumerate(self.targets):
            if target is not None:
                forced[b] = float("-inf")
                forced[b, target[min(step, len(target) - 1)]] = 0.0
        return forced


def scripted(tokenizer, reply: Callable[[str], str | None]):
    """A context in which episodes generate with ``ScriptedTurns(tokenizer, reply)``."""
    return mock.patch.object(episodes, "generate",
                             partial(generation.generate, logits_processors=[ScriptedTurns(tokenizer, reply)]))


def outputs_seen(context: str) -> int:
    """Tool outputs in a context, in either prompt format (codellama ``Output:``, ChatML ``tool``)."""
    return context.count("\nOutput:") + context.count("<|im_start|>tool")


def add(a: int, b: int = 0) -> int:
    """Add two integers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


def failed_call_then_fix(context: str) -> str | None:
    """A policy (codellama) that calls ``add`` with an argument it does not have, then calls it
    right, then is left to the model."""
    return {0: " add(a=1, c=2)", 1: " add(a=1, b=2)"}.get(outputs_seen(context))
