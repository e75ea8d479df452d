"""Rendered text + spans -> token ids, labels and PKT weights, for any fast tokenizer.

Everything is decided on characters (render.py's spans) and mapped to tokens through the
tokenizer's offset mapping, so it holds for any fast tokenizer and any split of the text:

- a token is supervised if its characters overlap a target span; a token straddling a span edge
  (``"Ġget"`` holds the space before the call and its first letters) counts, since the model must
  produce it;
- key tokens (docs/design.md, "PKT") are the tokens holding the key characters of each call: the
  first character of the tool name, and, for every other offered tool whose name shares a
  non-empty prefix ``p`` with the gold name (shorter than the gold name), the character at
  ``len(p)``, where the gold name departs from it. With ``name_end_key`` (beyond the authors'
  definition, on by default in the DataModule) also the character right after the gold name when
  the gold name is a proper prefix of another offered name (``get_invoice`` vs
  ``get_invoice_status``): the model decides between the two at the token after the name (``(``
  or the closing quote), which the authors' rule never marks since the gold name has no character
  left where the other departs;
- per turn, key tokens weigh ``clip(|NK| / |K|, 1, w_max)`` with ``|NK|`` the supervised tokens
  of that turn that are not key tokens; every other supervised token weighs 1; unsupervised
  tokens weigh 0. ``w_max = 1`` gives all ones (plain cross-entropy). With ``exclude_value_end``
  the last token of each argument value is left out of ``|NK|`` (weight 1), as the authors do.

Special tokens: the rendered text already holds its markers (``<|im_start|>``, ``</s>``), so it is
encoded with ``add_special_tokens=False`` (a tokenizer matches its special tokens inside the text).
BOS: added in front if the tokenizer adds one to plain text by itself (Llama's ``<s>``; the
model was trained that way) and the text does not already start with it; SmolLM2 adds none.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterable, Sequence

from tl_lightning.data.render import Rendered
from tl_lightning.losses import IGNORE_INDEX


@dataclass(frozen=True)
class TokenizedSample:
    """One sample as token lists of equal length T: ``input_ids``, ``labels`` (the id where
    supervised, else -100; unshifted, HF convention), ``loss_weights`` (0.0 where labels == -100),
    ``key_mask`` (the PKT key tokens); ``target_turns`` = number of supervised turns."""

    input_ids: list[int]
    labels: list[int]
    loss_weights: list[float]
    key_mask: list[bool]
    target_turns: int


def common_prefix_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` (strings or token lists)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def key_char_offsets(gold_name: str, other_names: Iterable[str], name_start: int,
                     name_end_key: bool = False) -> list[int]:
    """Character offsets (in the text) of the PKT key characters of a call to ``gold_name`` whose
    name starts at ``name_start``: the name's first character, and for each other name sharing a
    non-empty prefix ``p`` with it (``len(p) < len(gold_name)``) the character at ``len(p)``; with
    ``name_end_key``, also the character after the name when ``gold_name`` is a proper prefix of
    another name. Sorted, without repeats."""
    offsets = {name_start}
    for other in other_names:
        if other == gold_name:
            continue
        shared = common_prefix_length(gold_name, other)
        if 0 < shared < len(gold_name):
            offsets.add(name_start + shared)
        elif name_end_key and shared == len(gold_name) < len(other):
            offsets.add(name_start + shared)
    return sorted(offsets)


def key_token_weight(non_key: int, key: int, w_max: float) -> float:
    """``clip(non_key / key, 1, w_max)``: the weight of each key token of a turn."""
    return min(max(non_key / key, 1.0), w_max)


def bos_to_add(tokenizer, text: str) -> list[int]:
    """``[bos_id]`` if the tokenizer puts a BOS before plain text and ``text`` lacks it, else []."""
    bos, bos_id = getattr(tokenizer, "bos_token", None), getattr(tokenizer, "bos_token_id", None)
    if not bos or bos_id is None or text.startswith(bos):
        return []
    plain = tokenizer("a", add_special_tokens=True)["input_ids"]
    return [bos_id] if plain and plain[0] == bos_id else []


def encode_prompt(text: str, tokenizer) -> list[int]:
    """Token ids of a rendered prompt, encoded exactly as ``tokenize_rendered`` encodes a sample
    (the text holds its special tokens; BOS only where the tokenizer adds one), so a generation
    prompt is token for token the prefix that SFT trained on."""
    return bos_to_add(tokenizer, text) + list(tokenizer(text, add_special_tokens=False)["input_ids"])


class _Offsets:
    """Token character spans ``[start, end)`` (monotonic, as fast tokenizers give them), with
    lookups by character."""

    def __init__(self, spans: Sequence[tuple[int, int]]) -> None:
        self.starts = [s for s, _ in spans]
        self.ends = [e for _, e in spans]
        if any(b < a for a, b in zip(self.ends, self.ends[1:])):
            raise ValueError("the tokenizer's offset mapping is not monotonic")

    def overlapping(self, start: int, end: int) -> list[int]:
        """Tokens whose characters overlap ``[start, end)`` (empty tokens never do)."""
        tokens = []
        for t in range(bisect_right(self.ends, start), len(self.starts)):
            if self.starts[t] >= end:
                break
            if self.ends[t] > self.starts[t]:
                tokens.append(t)
        return tokens

    def holding(self, char: int) -> int:
        """The token whose characters include ``char``."""
        t = bisect_right(self.ends, char)
        while t < len(self.starts) and self.ends[t] <= self.starts[t]:  # skip empty tokens
            t += 1
        if t == len(self.starts) or self.starts[t] > char:
            raise ValueError(f"no token covers character {char}")
        return t


def tokenize_rendered(rendered: Rendered, tokenizer, w_max: float = 9.0, exclude_value_end: bool = False,
                      name_end_key: bool = False) -> TokenizedSample:
    """Tokenize ``rendered.text`` and derive labels and PKT weights from its target spans (see
    the module docstring)."""
    if w_max < 1:
        raise ValueError(f"w_max must be >= 1, got {w_max}")
    encoding = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    bos = bos_to_add(tokenizer, rendered.text)
    input_ids = bos + list(encoding["input_ids"])
    offsets = _Offsets([(0, 0)] * len(bos) + [tuple(o) for o in encoding["offset_mapping"]])
    labels = [IGNORE_INDEX] * len(input_ids)
    weights = [0.0] * len(input_ids)
    key_mask = [False] * len(input_ids)
    for target in rendered.targets:
        turn = offsets.overlapping(target.start, target.end)
        keys: set[int] = set()
        value_ends: set[int] = set()
        for call in target.calls:
            for char in key_char_offsets(call.name, rendered.tool_names, call.name_start, name_end_key):
                if char < target.end:  # the character after a name that ends the turn has no token to mark
                    keys.add(offsets.holding(char))
            if exclude_value_end:
                value_ends.update(offsets.holding(end - 1) for start, end in call.value_spans if end > start)
        non_key = sum(1 for t in turn if t not in keys and t not in value_ends)
        key_weight = key_token_weight(non_key, len(keys), w_max) if keys else 1.0
        for t in turn:
            labels[t] = input_ids[t]
            weights[t] = key_weight if t in keys else 1.0
            key_mask[t] = t in keys
    return TokenizedSample(input_ids, labels, weights, key_mask, len(rendered.targets))
