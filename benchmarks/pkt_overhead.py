"""What PKT costs: a training step with the PKT loss vs plain cross-entropy, and the PKT weight +
loss computation vs the authors' approach.

Part 1 (``step_ratio``): one training step (forward, backward, AdamW step) on the same batch of
the real data path (``ToolUseDataModule`` on the built-in synthetic world), three ways:

- ``ce``: plain cross-entropy as transformers computes it, ``model(..., labels=labels).loss``;
- ``pkt``: the same forward (full (B, T, V) logits), then ``losses.pkt_loss`` with the batch's
  PKT weights: the overhead of the weighting alone. ``step_ratio = pkt / ce``;
- ``pkt_kept``: as ``PKTModule`` runs it: only the positions that predict a supervised token go
  through the LM head (``logits_to_keep=prediction_mask(labels)``), then ``pkt_loss``.

Models: ``tiny-llama`` (full fine-tuning) and the bundled SmolLM2-135M-Instruct with LoRA
(r=8 on q/k/v/o), float32 on CPU.

Part 2 (``pkt_speedup``): the per-sample cost of computing the PKT weights and the loss, ours vs
a re-implementation of the authors' approach (TL-Training ``code/pkt``; written here from its
description, not copied). Both get the same per-turn samples (the authors' layout: the target is
the last turn) and the same logits, and must give the same weights and loss:

- ours: ``tokenize.tokenize_rendered`` (weights from the renderer's character spans through the
  offset mapping, ``exclude_value_end=True`` as the authors do), then batched ``pkt_loss``;
- authors': at batch size 1, every token id is turned into its token string in a Python loop; the
  last ``Assistant:`` is found by string comparison, the gold name is the tokens up to a ``(``
  token, the offered names are read the same way after each ``Function:``, the key tokens are the
  first name token and the first token after the longest shared token prefix with each other name,
  the value ends are the tokens before closing-quote tokens, the weights are set in Python, and the
  loss is a per-sample weighted cross-entropy (with the authors' per-token loops in it).

Both sides need the token ids of the text; that tokenization is the same Rust call for both and is
timed on its own (``tokenize``); the speed-up is given without it (``pkt_speedup``, the figure of
the target) and with it added to both sides (``pkt_speedup_with_tokenization``). Note that ours runs
once per sample when the DataModule is set up, theirs at every training step.

Run from the repository root: ``python -m benchmarks.pkt_overhead`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from benchmarks._timing import emit_json, fmt, interleaved, paired_ratio, print_table, spread
from tl_lightning.data import synthetic
from tl_lightning.data.datamodule import ToolUseDataModule, collate_sft, model_inputs
from tl_lightning.data.mae import apply_mae
from tl_lightning.data.render import Rendered, render_sample
from tl_lightning.data.tokenize import TokenizedSample, common_prefix_length, tokenize_rendered
from tl_lightning.losses import pkt_loss, prediction_mask
from tl_lightning.modeling import SMOLLM2, TINY_LLAMA, LoraOptions, load_model, load_tokenizer

# ------------------------------------------------------------------------- part 1: training step


def sft_batch(tokenizer: Any, batch_size: int, synthetic_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The first training batch of ``ToolUseDataModule`` on the synthetic world (trajectory layout)."""
    dm = ToolUseDataModule(data_path=None, synthetic_size=synthetic_size, batch_size=batch_size,
                           val_fraction=0.0, seed=seed)
    dm.connect(tokenizer)
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def ce_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """transformers' own causal-LM cross-entropy (full logits, shift and mean inside the model)."""
    return model(**model_inputs(batch), labels=batch["labels"]).loss


def pkt_full_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """The PKT loss on the full (B, T, V) logits: same forward as ``ce_loss``."""
    return pkt_loss(model(**model_inputs(batch)).logits, batch["labels"], batch["loss_weights"])


def pkt_kept_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """The PKT loss as ``PKTModule`` computes it: LM head only where a supervised token is predicted."""
    logits = model(**model_inputs(batch), logits_to_keep=prediction_mask(batch["labels"])).logits
    return pkt_loss(logits, batch["labels"], batch["loss_weights"])


STEP_LOSSES: dict[str, Callable[[torch.nn.Module, dict], torch.Tensor]] = {
    "ce": ce_loss, "pkt": pkt_full_loss, "pkt_kept": pkt_kept_loss}


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict,
                  loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor]) -> Callable[[], None]:
    """A closure running one forward, backward and optimizer step with ``loss_fn``."""

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        optimizer.step()

    return step


def check_unit_weights_equal_ce(model: torch.nn.Module, batch: dict) -> float:
    """|PKT loss with all weights 1 - transformers' loss| on ``batch`` (eval mode, no dropout)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ones = (batch["labels"] != -100).float()
        pkt = pkt_loss(model(**model_inputs(batch)).logits, batch["labels"], ones)
        ce = ce_loss(model, batch)
    model.train(was_training)
    return abs(float(pkt) - float(ce))


def bench_step(model_name: str, lora: LoraOptions | None, tokenizer: Any, batch_size: int,
               synthetic_size: int, repeats: int) -> dict[str, Any]:
    """Interleaved step timings of the three losses on one batch for one model."""
    batch = sft_batch(tokenizer, batch_size, synthetic_size)
    model = load_model(model_name, lora=lora)
    model.train()
    difference = check_unit_weights_equal_ce(model, batch)
    if difference > 1e-4:
        raise AssertionError(f"PKT loss with unit weights differs from transformers' loss by {difference}")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    times = interleaved({name: training_step(model, optimizer, batch, fn) for name, fn in STEP_LOSSES.items()},
                        repeats=repeats, warmup=1)
    B, T = batch["input_ids"].shape
    supervised = int((batch["labels"] != -100).sum())
    return {
        "model": model_name + (" (LoRA)" if lora else " (full)"),
        "batch": f"{B}x{T}", "tokens": int(batch["attention_mask"].sum()), "supervised": supervised,
        "times": {k: spread(v) for k, v in times.items()},
        "step_ratio": paired_ratio(times["pkt"], times["ce"]),
        "kept_ratio": paired_ratio(times["pkt_kept"], times["ce"]),
        "unit_weight_difference": difference,
    }


# ------------------------------------------------------------ part 2: the authors' approach


# Token strings the authors' code compares with (LLaMA sentencepiece pieces); "▁" is
# sentencepiece's word-start marker, written "Ġ" by byte-level BPE tokenizers such as SmolLM2's.
AUTHORS_NAME_END = ("(", "()", "(_", "_(", "_()", "()_", '("')
AUTHORS_FUNCTION_NAME_END = ("(", "()", "():")
AUTHORS_VALUE_CLOSERS = ("',", "')", ")", ")_", "()", "()_", "▁'')", "▁')", '")', '▁")', '▁"")', '.")', ')")')
# The rendering writes ``key="value", ...``: the BPE piece closing a non-last string value is '",'
# (LLaMA's pieces split it differently); without it only the last value would be found.
EXTRA_VALUE_CLOSERS = ('",',)


class AuthorsMethodFailed(Exception):
    """The authors' string matching did not find what it looks for (their code would crash)."""


@dataclass
class AuthorsWeights:
    """What the authors' ``compute_loss`` builds before calling its loss: token strings, shifted
    labels (1, T) (label at p = token p+1), long weights of ones (1, T), key (``pre``) and value-end
    (``para``) label positions, the label position of the first name token, and the gold tokens."""

    tokens: list[str]
    labels: torch.Tensor
    weights: torch.Tensor
    pre: list[int]
    para: list[int]
    first_target: int
    gold: list[str]


def _with_marker(pieces: Sequence[str], marker: str) -> tuple[str, ...]:
    return tuple(p.replace("▁", marker) for p in pieces)


def authors_weights(input_ids: torch.Tensor, tokenizer: Any, marker: str = "Ġ") -> AuthorsWeights:
    """The authors' key-token search on one sample, ``input_ids`` (1, T): a Python loop over the
    token strings (see the module docstring). Raises ``AuthorsMethodFailed`` where theirs crashes."""
    tokens = []
    for token_id in input_ids.view(-1):
        tokens.append(tokenizer.convert_ids_to_tokens(token_id.item()))
    try:
        assistant = [i for i, t in enumerate(tokens) if t == "istant"][-1]
        name_end = None
        for end_token in AUTHORS_NAME_END:
            if end_token in tokens[assistant:]:
                name_end = tokens.index(end_token, assistant)
                break
        if name_end is None:
            raise AuthorsMethodFailed("no '(' token after the last 'Assistant:'")
        gold = tokens[assistant + 2:name_end]
        names = []
        for i in range(len(tokens)):
            if tokens[i] in ("Function", marker + "Function") and tokens[i + 1] == ":":
                name, j = [], i + 4
                while tokens[j] not in AUTHORS_FUNCTION_NAME_END:
                    name.append(tokens[j])
                    j += 1
                names.append(name)
    except IndexError as e:
        raise AuthorsMethodFailed(f"token walk ran off the sample: {e}") from e
    others = [n for n in names if n != gold]
    shared = [k for k in (common_prefix_length(gold, n) for n in others) if k != 0]
    pre = [assistant + 1]
    for k in shared:
        if assistant + 1 + k not in pre:
            pre.append(assistant + 1 + k)
    closers = _with_marker(AUTHORS_VALUE_CLOSERS, marker) + EXTRA_VALUE_CLOSERS
    answer = tokens[assistant + 2:]
    para = [assistant + 2 + i - 1 for i, t in enumerate(answer) if t in closers] or [len(tokens) - 3]
    labels = torch.full_like(input_ids, -100)
    labels[0, assistant + 1:-1] = input_ids[0, assistant + 2:]
    return AuthorsWeights(tokens, labels, torch.full_like(labels, 1), pre, para, assistant + 1, gold)


def authors_loss(logits: torch.Tensor, found: AuthorsWeights, input_ids: torch.Tensor, tokenizer: Any,
                 w_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' per-sample weighted loss (their ``GCELoss`` with q=0) on logits (1, T, V);
    returns the loss and the weights of the supervised positions (N,)."""
    valid = found.labels != -100
    logits, targets = logits[valid], found.labels[valid]
    weights = found.weights[valid].float()
    loss_ids = input_ids[valid]
    loss = F.cross_entropy(logits, targets, reduction="none")
    loss_tokens = []  # built and unused in their code, but paid for at every step
    for token_id in loss_ids.view(-1):
        loss_tokens.append(tokenizer.convert_ids_to_tokens(token_id.item()))
    true_indices = []  # likewise
    for index, value in enumerate(valid[0]):
        if value.item() is True:
            true_indices.append(index)
    mask = torch.ones(loss.size(), dtype=torch.bool)
    pre = torch.tensor(found.pre, dtype=torch.long)
    para = torch.tensor(found.para, dtype=torch.long)
    for i in range(pre.size(0)):
        pre[i] -= found.first_target
    for i in range(para.size(0)):
        para[i] -= found.first_target
    mask[pre] = False
    mask[para] = False
    key_sum, value_sum, other_sum = loss[pre].sum(), loss[para].sum(), loss[mask].sum()
    n_key, n_other = pre.size(0), int(mask.sum())
    if n_key < n_other:
        key_sum = key_sum * min(n_other / n_key, w_max)
        weights[pre] = min(n_other / n_key, w_max)
    return (key_sum + value_sum + other_sum) / weights.sum(), weights


class PretokenizedText:
    """Stands in for a tokenizer in ``tokenize_rendered`` with the encodings of known texts
    computed beforehand, so the timing of our weights excludes the (shared) tokenization."""

    def __init__(self, tokenizer: Any, texts: Sequence[str]) -> None:
        self._tokenizer = tokenizer
        self._encodings = {t: tokenizer(t, add_special_tokens=False, return_offsets_mapping=True) for t in texts}

    def __call__(self, text: str, add_special_tokens: bool = True, return_offsets_mapping: bool = False,
                 **kwargs: Any) -> Any:
        if not add_special_tokens and return_offsets_mapping and text in self._encodings:
            return self._encodings[text]
        return self._tokenizer(text, add_special_tokens=add_special_tokens,
                               return_offsets_mapping=return_offsets_mapping, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


def per_turn_samples(tokenizer: Any, n: int, seed: int = 0) -> list[Rendered]:
    """``n`` rendered per-turn samples (codellama prompt) of the synthetic world whose target
    turn makes exactly one call (the authors' code handles one call per turn)."""
    trajs = synthetic.generate_trajectories(max(n, 8), seed=seed)
    samples, _ = apply_mae(trajs, layout="per_turn")
    rendered = [render_sample(s, "codellama", tokenizer) for s in samples]
    rendered = [r for r in rendered if len(r.targets) == 1 and len(r.targets[0].calls) == 1]
    if len(rendered) < n:
        raise ValueError(f"only {len(rendered)} one-call per-turn samples in the synthetic world, asked {n}")
    return rendered[:n]


def _value_end_tokens(offsets: Sequence[tuple[int, int]], rendered: Rendered) -> set[int]:
    """Token positions holding the last character of each argument value (from the spans)."""
    ends = set()
    for _, end in rendered.targets[0].calls[0].value_spans:
        ends.update(t for t, (s, e) in enumerate(offsets) if s <= end - 1 < e)
    return ends


def agreement(rendered: Rendered, ours: TokenizedSample, encoding: Any, tokenizer: Any, logits: torch.Tensor,
              w_max: float) -> str:
    """Compare the authors' weights and loss with ours on one sample: ``"agree"``, or why the
    authors' string matching did not find what the spans say (then weights may differ).

    Raises AssertionError when the authors' matching worked but the weights or losses differ.
    """
    ids = torch.tensor([ours.input_ids])
    try:
        found = authors_weights(ids, tokenizer)
    except AuthorsMethodFailed:
        return "crashes"
    call = rendered.targets[0].calls[0]
    decoded_gold = tokenizer.convert_tokens_to_string(found.gold).strip()
    if decoded_gold != call.name:
        return "gold name not found"
    if any(p - found.first_target >= len(found.gold) for p in found.pre):
        return "another name extends the gold name (key put on the '(' token)"
    if {p + 1 for p in found.pre} != {t for t, key in enumerate(ours.key_mask) if key}:
        # e.g. getPaperDetails vs getPapersByKeywords: BPE splits 'Paper|Details' and 'Papers|By', so
        # the token sequences part at 'Paper' while the characters part at 'D' ('Details')
        return "token prefix and character prefix part at different tokens"
    para_tokens = {p + 1 for p in found.para}  # label position p is token p + 1
    if para_tokens != _value_end_tokens(encoding["offset_mapping"], rendered):
        return "value ends missed"
    loss, weights = authors_loss(logits, found, ids, tokenizer, w_max)
    theirs = torch.zeros(len(ours.input_ids))
    theirs[torch.nonzero(found.labels[0] != -100).view(-1) + 1] = weights
    if not torch.allclose(theirs, torch.tensor(ours.loss_weights)):
        raise AssertionError(f"weights differ where the authors' matching worked: {theirs} vs {ours.loss_weights}")
    batch = collate_sft([(ours,)], pad_id=tokenizer.pad_token_id, packed=False)
    our_loss = pkt_loss(logits, batch["labels"], batch["loss_weights"])
    if not torch.allclose(our_loss, loss, rtol=1e-5, atol=1e-6):
        raise AssertionError(f"losses differ where the authors' matching worked: {float(our_loss)} vs {float(loss)}")
    return "agree"


def bench_authors(tokenizer: Any, n_samples: int, batch_size: int, w_max: float, repeats: int) -> dict[str, Any]:
    """Interleaved per-sample timings: ours (weights, batched loss) vs the authors' (weights,
    per-sample loss), and the shared tokenization; plus the agreement of their outputs."""
    rendered = per_turn_samples(tokenizer, n_samples)
    texts = [r.text for r in rendered]
    pretokenized = PretokenizedText(tokenizer, texts)
    ours_once = [tokenize_rendered(r, pretokenized, w_max=w_max, exclude_value_end=True) for r in rendered]
    ids = [torch.tensor([t.input_ids]) for t in ours_once]
    longest = max(len(t.input_ids) for t in ours_once)
    generator = torch.Generator().manual_seed(0)
    # One logits block; every sample (and batch row) sees its first T positions, so both sides
    # get identical logits without materialising a (B, T, V) tensor per batch.
    base = torch.randn(1, longest, len(tokenizer), generator=generator)

    reasons = [agreement(r, t, pretokenized._encodings[r.text], tokenizer, base[:, :len(t.input_ids)], w_max)
               for r, t in zip(rendered, ours_once)]
    authors_found: list[AuthorsWeights | None] = []
    for i in ids:
        try:
            authors_found.append(authors_weights(i, tokenizer))
        except AuthorsMethodFailed:
            authors_found.append(None)
    timed = [k for k, f in enumerate(authors_found) if f is not None]  # compare like with like

    def tokenize() -> None:
        for k in timed:
            tokenizer(texts[k], add_special_tokens=False, return_offsets_mapping=True)

    def ours_weights() -> None:
        for k in timed:
            tokenize_rendered(rendered[k], pretokenized, w_max=w_max, exclude_value_end=True)

    def ours_loss() -> float:
        elapsed = 0.0
        for start in range(0, len(timed), batch_size):
            started = time.perf_counter()
            rows = [(ours_once[k],) for k in timed[start:start + batch_size]]
            batch = collate_sft(rows, pad_id=tokenizer.pad_token_id, packed=False)
            elapsed += time.perf_counter() - started
            B, T = batch["input_ids"].shape
            # the (B, T, V) logits a model forward hands over (contiguous); building them is not timed
            logits = base[:, :T].expand(B, T, base.shape[-1]).contiguous()
            started = time.perf_counter()
            pkt_loss(logits, batch["labels"], batch["loss_weights"])
            elapsed += time.perf_counter() - started
            del logits
        return elapsed

    def theirs_weights() -> None:
        for k in timed:
            authors_weights(ids[k], tokenizer)

    def theirs_loss() -> None:
        for k in timed:
            authors_loss(base[:, :ids[k].shape[1]], authors_found[k], ids[k], tokenizer, w_max)

    times = interleaved({"tokenize": tokenize, "ours_weights": ours_weights, "ours_loss": ours_loss,
                         "authors_weights": theirs_weights, "authors_loss": theirs_loss}, repeats=repeats)
    ours = [w + l for w, l in zip(times["ours_weights"], times["ours_loss"])]
    theirs = [w + l for w, l in zip(times["authors_weights"], times["authors_loss"])]
    with_tok_ours = [o + t for o, t in zip(ours, times["tokenize"])]
    with_tok_theirs = [o + t for o, t in zip(theirs, times["tokenize"])]
    n = len(timed)
    return {
        "samples": len(rendered), "timed_samples": n, "batch_size": batch_size,
        "mean_tokens": statistics.mean(len(t.input_ids) for t in ours_once),
        "mean_supervised": statistics.mean(sum(l != -100 for l in t.labels) for t in ours_once),
        "per_sample": {k: spread([v / n for v in vals]) for k, vals in
                       {**times, "ours_total": ours, "authors_total": theirs}.items()},
        "speedup": paired_ratio(theirs, ours),
        "weights_speedup": paired_ratio(times["authors_weights"], times["ours_weights"]),
        "loss_speedup": paired_ratio(times["authors_loss"], times["ours_loss"]),
        "speedup_with_tokenization": paired_ratio(with_tok_theirs, with_tok_ours),
        "agreement": {r: reasons.count(r) for r in sorted(set(reasons))},
    }


# ---------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=[TINY_LLAMA, SMOLLM2], choices=[TINY_LLAMA, SMOLLM2])
    parser.add_argument("--batch-size", type=int, default=2, help="training-step batch (tiny-llama)")
    parser.add_argument("--smollm2-batch-size", type=int, default=1, help="training-step batch (SmolLM2)")
    parser.add_argument("--synthetic-size", type=int, default=64, help="synthetic trajectories to draw the batch from")
    parser.add_argument("--step-repeats", type=int, default=5)
    parser.add_argument("--authors-samples", type=int, default=64)
    parser.add_argument("--authors-batch-size", type=int, default=4)
    parser.add_argument("--authors-repeats", type=int, default=5)
    parser.add_argument("--w-max", type=float, default=9.0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test): tiny-llama only, batch 1, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.batch_size, args.synthetic_size = [TINY_LLAMA], 1, 16
        args.step_repeats, args.authors_samples, args.authors_repeats = 1, 4, 1
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.manual_seed(0)
    tokenizer = load_tokenizer(SMOLLM2)  # tiny-llama uses SmolLM2's tokenizer too
    print(f"sizes: models={args.models} batch={args.batch_size} (SmolLM2 {args.smollm2_batch_size}) "
          f"step_repeats={args.step_repeats} authors_samples={args.authors_samples} "
          f"authors_batch={args.authors_batch_size} authors_repeats={args.authors_repeats} "
          f"threads={torch.get_num_threads()}")

    steps = []
    for name in args.models:
        lora = LoraOptions() if name == SMOLLM2 else None
        batch_size = args.smollm2_batch_size if name == SMOLLM2 else args.batch_size
        steps.append(bench_step(name, lora, tokenizer, batch_size, args.synthetic_size, args.step_repeats))
    print_table("Training step (forward + backward + AdamW), seconds: median [min-max]; ratio vs ce = median "
                "[min-max] of paired repeats",
                ["model", "batch", "ce", "pkt", "pkt_kept", "pkt/ce", "pkt_kept/ce"],
                [[s["model"], s["batch"], fmt(s["times"]["ce"]), fmt(s["times"]["pkt"]), fmt(s["times"]["pkt_kept"]),
                  fmt(s["step_ratio"]), fmt(s["kept_ratio"])] for s in steps])

    a = bench_authors(tokenizer, args.authors_samples, args.authors_batch_size, args.w_max, args.authors_repeats)
    ps = a["per_sample"]
    print_table(f"PKT weights + loss per sample, ms: median [min-max] ({a['timed_samples']} per-turn samples, "
                f"mean {a['mean_tokens']:.0f} tokens, {a['mean_supervised']:.0f} supervised; ours batched by "
                f"{a['batch_size']})",
                ["", "weights", "loss", "total"],
                [["ours", fmt(ps["ours_weights"], 1e3), fmt(ps["ours_loss"], 1e3), fmt(ps["ours_total"], 1e3)],
                 ["authors'", fmt(ps["authors_weights"], 1e3), fmt(ps["authors_loss"], 1e3),
                  fmt(ps["authors_total"], 1e3)],
                 ["speed-up", fmt(a["weights_speedup"], digits=1), fmt(a["loss_speedup"], digits=1),
                  fmt(a["speedup"], digits=1)]])
    print(f"  shared tokenization: {fmt(ps['tokenize'], 1e3)} ms/sample; speed-up with it on both sides: "
          f"{fmt(a['speedup_with_tokenization'], digits=1)}")
    print(f"  agreement with the authors' outputs (weights and loss asserted equal where they 'agree'): "
          f"{a['agreement']}")

    figures = {
        "step_ratio": {s["model"]: round(s["step_ratio"].median, 4) for s in steps},
        "step_ratio_spread": {s["model"]: s["step_ratio"].to_dict(4) for s in steps},
        "kept_logits_step_ratio": {s["model"]: round(s["kept_ratio"].median, 4) for s in steps},
        "step_seconds": {s["model"]: {k: round(v.median, 4) for k, v in s["times"].items()} for s in steps},
        "step_batch": {s["model"]: s["batch"] for s in steps},
        "pkt_speedup": round(a["speedup"].median, 2),
        "pkt_speedup_spread": a["speedup"].to_dict(2),
        "pkt_weights_speedup": round(a["weights_speedup"].median, 2),
        "pkt_loss_speedup": round(a["loss_speedup"].median, 2),
        "pkt_speedup_with_tokenization": round(a["speedup_with_tokenization"].median, 2),
        "per_sample_ms": {k: round(v.median * 1e3, 4) for k, v in ps.items()},
        "authors_agreement": a["agreement"],
        "authors_samples": a["timed_samples"],
    }
    return emit_json("pkt_overhead", figures)


if __name__ == "__main__":
    main()
