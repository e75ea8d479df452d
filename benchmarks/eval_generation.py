"""Batched greedy evaluation vs batch size 1: wall time and identical predictions.

What ``python -m tl_lightning.evaluate run`` does on RoTBench (First_Turn/clean, the paper's 105
items): the items are read with ``evaluate.load_items``, rendered with ``evaluate.render_prompts``
in the paper's ``codellama`` format, and answered by ``evaluate.generate_predictions`` (greedy,
left-padded batches of similar length capped at ``--max_batch_tokens`` padded prompt tokens, each
row stopped after a complete call or an end marker, a batch ending when all its rows stopped).
Here the same N prompts are answered at each batch size (default 1 and 16) with the same
``max_new_tokens``; the variants alternate (ABBA) and repeat.
The N prompts are the N nearest the median prompt length (a window of the length-sorted items):
``evaluate`` batches the whole benchmark sorted by length, so one of its batches holds prompts of
similar length; a random subset this small would pad far more than the full run does (the
full-benchmark padding waste per batch size is printed for comparison). Model: the bundled
SmolLM2-135M-Instruct, float32, untrained for this format.

One more variant, ``prefill-alone``, tries a fix (``generate_prefill_alone``): each prompt's
forward pass runs alone (no padding), then the rows of a batch decode together and a row leaves the
batch as soon as it stops.

Figures:

- wall seconds per variant and ``speedup`` = batch 1 / batch 16 (median of paired repeats;
  target >= 4x);
- where the time goes, from hooks on the model's forward: prefill (prompt pass) and decode (one
  token per step) seconds, prompt slots (padding included) per second, padding waste, and
  ``other`` = wall - forward (the generate loop, the stopping criterion decoding the rows every
  step, tokenization); ``prefill_bound`` = batch-1 wall / batch-1 prefill: the most any batching
  can gain while a prompt token costs the same batched or not;
- stopping: new tokens per prompt at batch 1, decode steps and row steps (rows x steps) per
  variant, and the share of row steps spent on rows that had already stopped;
- ``differing``: prompts whose prediction differs from batch 1's (target 0), and for each the
  first divergent generated token at batch 1 with its top-2 logit margin (a margin near float32
  noise means a near tie that batching's different summation order flipped, not a bug);
  ``repeat_stable``: every repeat of a variant gave the same predictions.

The machine these figures come from is shared with other jobs: only the ratios measured side by
side here mean anything, not the absolute seconds.

Run from the repository root: ``python -m benchmarks.eval_generation`` (``--quick`` for a smoke run
on tiny-llama with 4 prompts; ``--n``, ``--batch-sizes``, ``--max-new-tokens``,
``--max-batch-tokens``, ``--repeats``, ``--threads`` change the sizes). On a shared 2-core machine
``--threads 1`` avoids two OpenMP threads spinning against the other jobs (5x slower there).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from benchmarks._timing import Spread, emit_json, fmt, interleaved, paired_ratio, print_table, spread
from tl_lightning.data.sources import data_root
from tl_lightning.data.tokenize import encode_prompt
from tl_lightning.evaluate import (DEFAULT_PROMPT_FORMAT, generate_predictions, length_batches, load_items,
                                   render_prompts)
from tl_lightning.modeling import SMOLLM2, TINY_LLAMA, load_model, load_tokenizer

# ----------------------------------------------------------------------------- forward timing


@dataclass
class ForwardLog:
    """Time and shapes of the model's forward calls during one run. A call with more than one
    input position is a prefill (a prompt pass), one position is a decode step."""

    prefill_s: float = 0.0
    decode_s: float = 0.0
    prompt_slots: int = 0  # rows x positions of the prefills: padding included
    decode_calls: int = 0
    decode_row_steps: int = 0  # rows x decode steps: stopped rows that still decode included
    steps_after_prefill: list[int] = field(default_factory=list)  # decode steps after each prefill

    @property
    def forward_s(self) -> float:
        return self.prefill_s + self.decode_s


class ForwardTimer:
    """Forward hooks on ``model`` that fill ``self.log`` (swap in a fresh log before each run)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.log = ForwardLog()
        self._started = 0.0
        self._shape: tuple[int, ...] = (0, 0)
        model.register_forward_pre_hook(self._before, with_kwargs=True)
        model.register_forward_hook(self._after)

    def _before(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        self._shape = tuple(kwargs["input_ids"].shape)
        self._started = time.perf_counter()

    def _after(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        elapsed = time.perf_counter() - self._started
        rows, positions = self._shape
        log = self.log
        if positions > 1:
            log.prefill_s += elapsed
            log.prompt_slots += rows * positions
            log.steps_after_prefill.append(0)
        else:
            log.decode_s += elapsed
            log.decode_calls += 1
            log.decode_row_steps += rows
            log.steps_after_prefill[-1] += 1


# ------------------------------------------------------------------------------ the variants


@dataclass
class Run:
    """One timed run of one variant."""

    wall_s: float
    log: ForwardLog
    predictions: list[str]


def timed_run(timer: ForwardTimer, answer: Callable[[], list[str]], runs: list[Run]) -> Callable[[], float]:
    """A closure running ``answer`` with a fresh forward log, appending its ``Run`` to ``runs``
    and returning its wall seconds."""

    def run() -> float:
        timer.log = ForwardLog()
        started = time.perf_counter()
        predictions = answer()
        elapsed = time.perf_counter() - started
        runs.append(Run(elapsed, timer.log, predictions))
        return elapsed

    return run


def median_window(lengths: Sequence[int], n: int) -> list[int]:
    """Indices of the ``n`` items nearest the median length: a window of the length-sorted items,
    in file order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    start = max(0, (len(order) - n) // 2)
    return sorted(order[start:start + n])


def padding_waste(lengths: Sequence[int], batch_size: int, max_batch_tokens: int | None) -> float:
    """Share of pad slots in the prompt batches ``generate_predictions`` forms (``length_batches``)."""
    batches = length_batches(lengths, batch_size, max_batch_tokens)
    slots = sum(len(rows) * max(lengths[i] for i in rows) for rows in batches)
    return 1 - sum(lengths) / slots


# ------------------------------------------------- the fix tried: prompts prefilled one by one


def merged_cache(caches: Sequence[Any]) -> tuple[Any, torch.Tensor]:
    """One ``DynamicCache`` of the rows' own caches (each (1, H, L_i, D) per layer), left-padded
    with zeros to the longest, and its attention mask (B, L) (0 on the padding)."""
    from transformers import DynamicCache

    lengths = [c.get_seq_length() for c in caches]
    longest = max(lengths)

    def padded(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([torch.nn.functional.pad(t, (0, 0, longest - t.shape[-2], 0)) for t in tensors])

    layers = [(padded([c.layers[k].keys for c in caches]), padded([c.layers[k].values for c in caches]))
              for k in range(len(caches[0].layers))]
    mask = torch.tensor([[0] * (longest - n) + [1] * n for n in lengths])
    return DynamicCache(ddp_cache_data=layers), mask


def generate_prefill_alone(model: Any, tokenizer: Any, prompts: Sequence[str], batch_size: int = 16,
                           max_new_tokens: int = 128) -> list[str]:
    """``evaluate.generate_predictions`` (RoTBench settings) with two changes: every prompt is
    prefilled alone (no padding: on CPU the prompt pass is compute-bound, so batching it saves
    nothing and padding adds work), then the rows of a batch decode together; and a row leaves
    the batch as soon as it stops (``generate`` keeps decoding stopped rows until the last stops).
    Same greedy tokens, stop rule (eos or ``StopRule(after_call=True)``) and cut as
    ``generation.generate``."""
    from tl_lightning.generation import StopRule

    rule = StopRule(after_call=True)

    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    encoded = [encode_prompt(p, tokenizer) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    generated: dict[int, list[int]] = {i: [] for i in range(len(prompts))}

    def stopped(i: int) -> bool:
        ids = generated[i]
        return (ids[-1] in eos_ids or len(ids) >= max_new_tokens
                or rule.end(tokenizer.decode(ids)) is not None)

    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows, caches = [], []
            for i in order[start:start + batch_size]:
                out = model(input_ids=torch.tensor([encoded[i]]), use_cache=True, logits_to_keep=1)
                generated[i].append(int(out.logits[0, -1].argmax()))
                if not stopped(i):
                    rows.append(i)
                    caches.append(out.past_key_values)
            if not rows:
                continue
            cache, mask = merged_cache(caches)
            positions = torch.tensor([[len(encoded[i])] for i in rows])
            while rows:
                mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
                out = model(input_ids=torch.tensor([[generated[i][-1]] for i in rows]), attention_mask=mask,
                            position_ids=positions, past_key_values=cache, use_cache=True)
                for i, token in zip(rows, out.logits[:, -1].argmax(-1).tolist()):
                    generated[i].append(token)
                keep = [k for k, i in enumerate(rows) if not stopped(i)]
                if len(keep) < len(rows):
                    index = torch.tensor(keep, dtype=torch.long)
                    cache.batch_select_indices(index)
                    mask, positions = mask[index], positions[index]
                    rows = [rows[k] for k in keep]
                positions = positions + 1
    return [rule.cut(tokenizer.decode(generated[i])) for i in range(len(prompts))]


# --------------------------------------------------------------------------- the divergences


def first_divergence(model: Any, tokenizer: Any, prompt: str, single: str, batched: str,
                     max_new_tokens: int) -> dict[str, Any]:
    """Where the batch-1 answer ``single`` and the batched answer ``batched`` of ``prompt`` part:
    regenerate at batch 1 with the logits, find the generated token holding the first differing
    character, and give its top-2 logit margin (greedy picks top-1; batching picked another)."""
    ids = torch.tensor([encode_prompt(prompt, tokenizer)])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id, output_logits=True,
                             return_dict_in_generate=True)
    new = out.sequences[0, ids.shape[1]:].tolist()
    raw = tokenizer.decode(new, skip_special_tokens=True)
    shared = len(os.path.commonprefix([single, batched]))
    # the answers are cut and stripped: the first differing character, counted in the raw text
    position = len(raw) - len(raw.lstrip()) + shared
    step = next((k for k in range(len(new))
                 if len(tokenizer.decode(new[:k + 1], skip_special_tokens=True)) > position), None)
    result: dict[str, Any] = {"position": position, "step": step, "single_at": single[shared:][:20],
                              "batched_at": batched[shared:][:20]}
    if step is not None:
        top = out.logits[step][0].float().topk(2)
        result.update(margin=float(top.values[0] - top.values[1]),
                      top2=[tokenizer.decode([int(t)]) for t in top.indices])
    return result


# ---------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=data_root() / "RoTBench" / "First_Turn" / "clean.json",
                        help="RoTBench First_Turn/clean.json")
    parser.add_argument("--model", default=SMOLLM2)
    parser.add_argument("--n", type=int, default=32, help="prompts (the N nearest the median length)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16],
                        help="the first is the reference (1); prefill-alone runs at the last")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-batch-tokens", type=int, default=16384,
                        help="cap on padded prompt tokens per batch, as `evaluate run` (0: no cap)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny-llama, 4 prompts, 8 new tokens, 1 repeat")
    args = parser.parse_args(argv)
    args.max_batch_tokens = args.max_batch_tokens or None
    if args.quick:
        args.model, args.n, args.max_new_tokens, args.repeats = TINY_LLAMA, 4, 8, 1
    if args.batch_sizes[0] != 1:
        raise ValueError("the first batch size is the reference and must be 1")
    return args


def variant_figures(rs: Sequence[Run], reference: Sequence[Run], prompt_tokens: int,
                    useful_row_steps: int) -> dict[str, Any]:
    """The figures of one variant's runs (timings as ``Spread``); ``reference``: batch 1's runs
    (same rounds)."""
    log = rs[0].log
    return {
        "wall_s": spread([r.wall_s for r in rs]),
        "speedup": paired_ratio([r.wall_s for r in reference], [r.wall_s for r in rs]),
        "prefill_s": spread([r.log.prefill_s for r in rs]),
        "decode_s": spread([r.log.decode_s for r in rs]),
        "other_s": spread([r.wall_s - r.log.forward_s for r in rs]),
        "prompt_slots_per_s": round(spread([r.log.prompt_slots / r.log.prefill_s for r in rs]).median, 1),
        "padding_waste": round(1 - prompt_tokens / log.prompt_slots, 4),
        "decode_steps": log.decode_calls, "row_steps": log.decode_row_steps,
        # valid while the variant stops each row where batch 1 does (same predictions)
        "stopped_row_share": round(1 - useful_row_steps / max(log.decode_row_steps, 1), 4),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or threads)
    try:
        return measure(args)
    finally:
        torch.set_num_threads(threads)  # the caller's (the smoke test runs inside pytest's process)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Time the variants, compare their predictions, print the tables and the JSON line."""
    tokenizer = load_tokenizer(args.model)
    model = load_model(args.model, dtype="float32").eval()
    items = load_items("rotbench", args.data)
    all_prompts = render_prompts(items, tokenizer, DEFAULT_PROMPT_FORMAT)
    all_lengths = [len(encode_prompt(p, tokenizer)) for p in all_prompts]
    chosen = median_window(all_lengths, args.n)
    prompts, lengths = [all_prompts[i] for i in chosen], [all_lengths[i] for i in chosen]
    largest = args.batch_sizes[-1]
    print(f"sizes: model={args.model} float32 prompts={len(prompts)} of {len(items)} (nearest the median length; "
          f"tokens {min(lengths)}-{max(lengths)}, mean {sum(lengths) / len(lengths):.0f}) "
          f"batch_sizes={args.batch_sizes} + prefill-alone {largest} max_new_tokens={args.max_new_tokens} "
          f"repeats={args.repeats} threads={torch.get_num_threads()}; the machine is shared with other jobs: "
          "compare ratios only")
    print("  padding waste of the full benchmark's batches: "
          + ", ".join(f"batch {b} {padding_waste(all_lengths, b, args.max_batch_tokens):.0%}"
                     for b in args.batch_sizes))

    timer = ForwardTimer(model)
    answers: dict[str, Callable[[], list[str]]] = {
        f"batch {b}": (lambda b=b: generate_predictions(model, tokenizer, prompts, batch_size=b,
                                                        max_new_tokens=args.max_new_tokens, progress=False,
                                                        max_batch_tokens=args.max_batch_tokens))
        for b in args.batch_sizes}
    answers[f"prefill-alone {largest}"] = lambda: generate_prefill_alone(model, tokenizer, prompts, largest,
                                                                         args.max_new_tokens)
    runs: dict[str, list[Run]] = {name: [] for name in answers}
    # warm-up: a short padded batch (first-call allocations, lazy inits) instead of a full round
    generate_predictions(model, tokenizer, prompts[:2], batch_size=2, max_new_tokens=2, progress=False)
    interleaved({name: timed_run(timer, answer, runs[name]) for name, answer in answers.items()},
                repeats=args.repeats, warmup=0)

    reference = runs["batch 1"]
    batch1_tokens = [s + 1 for s in reference[0].log.steps_after_prefill]  # the prefill gives the first token
    useful_row_steps = reference[0].log.decode_row_steps
    by_variant = {name: variant_figures(rs, reference, sum(lengths), useful_row_steps) for name, rs in runs.items()}
    repeat_stable = all(r.predictions == rs[0].predictions for rs in runs.values() for r in rs)
    singles = reference[0].predictions
    differing = {name: [i for i, (p, q) in enumerate(zip(singles, rs[0].predictions)) if p != q]
                 for name, rs in runs.items() if name != "batch 1"}
    divergences = {name: [{"item": chosen[i], **first_divergence(model, tokenizer, prompts[i], singles[i],
                                                                 runs[name][0].predictions[i], args.max_new_tokens)}
                          for i in rows] for name, rows in differing.items()}

    print_table("Seconds per variant: median [min-max]; prefill / decode = model forward time, other = the rest "
                "(generate loop, stopping criterion, tokenizer); speed-up = batch 1 / variant, paired repeats",
                ["variant", "wall", "prefill", "decode", "other", "prompt slots/s", "padding", "decode steps",
                 "row steps", "on stopped rows", "speed-up"],
                [[name, fmt((f["wall_s"]), digits=1), fmt((f["prefill_s"]), digits=1),
                  fmt((f["decode_s"]), digits=1), fmt((f["other_s"]), digits=1),
                  f"{f['prompt_slots_per_s']:.0f}", f"{f['padding_waste']:.0%}", f["decode_steps"], f["row_steps"],
                  f"{f['stopped_row_share']:.0%}", fmt((f["speedup"]), digits=2)]
                 for name, f in by_variant.items()])
    prefill_bound = by_variant["batch 1"]["wall_s"].median / by_variant["batch 1"]["prefill_s"].median
    stopped_early = sum(t < args.max_new_tokens for t in batch1_tokens)
    print(f"\n  prefill bound: batch-1 wall / batch-1 prefill = {prefill_bound:.2f}x (the most batching can gain "
          "while a prompt token costs the same batched or not)")
    print(f"  stopping at batch 1: {stopped_early} of {len(prompts)} prompts stopped before max_new_tokens "
          f"(mean {sum(batch1_tokens) / len(batch1_tokens):.1f} new tokens per prompt)")
    for name, found in divergences.items():
        print(f"  {name}: {len(found)} of {len(prompts)} predictions differ from batch 1")
        for d in found:
            print(f"    item {d['item']}: step {d['step']}, batch-1 top-2 {d.get('top2')} margin {d.get('margin')}; "
                  f"batch 1 {d['single_at']!r} vs {d['batched_at']!r}")
    print(f"  every repeat of a variant gave the same predictions: {repeat_stable}")

    figures = {
        "model": args.model, "n_prompts": len(prompts), "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(), "repeats": args.repeats,
        "prompt_tokens": {"min": min(lengths), "max": max(lengths), "mean": round(sum(lengths) / len(lengths), 1)},
        "speedup": round(by_variant[f"batch {largest}"]["speedup"].median, 3), "speedup_batch": largest,
        "prefill_alone_speedup": round(by_variant[f"prefill-alone {largest}"]["speedup"].median, 3),
        "prefill_bound": round(prefill_bound, 3),
        "by_variant": {name: {k: v.to_dict(3) if isinstance(v, Spread) else v for k, v in f.items()}
                       for name, f in by_variant.items()},
        "max_batch_tokens": args.max_batch_tokens,
        "full_benchmark_padding_waste": {str(b): round(padding_waste(all_lengths, b, args.max_batch_tokens), 4)
                                         for b in args.batch_sizes},
        "differing": {name: len(rows) for name, rows in differing.items()},
        "divergences": divergences,
        "batch1_stopped_early": stopped_early, "batch1_new_tokens": batch1_tokens,
        "repeat_stable": repeat_stable, "machine_shared": True,
    }
    return emit_json("eval_generation", figures)


if __name__ == "__main__":
    main()
