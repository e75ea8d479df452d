"""MAE sample layouts: tokens processed per epoch and epoch wall time, ``trajectory`` vs ``per_turn``.

Both layouts supervise the same assistant turns (MAE's kept turns). ``per_turn`` (the authors')
makes one sample per kept turn holding the whole conversation before it, so turn k's prefix is
processed again for every later turn; ``trajectory`` makes one sample per trajectory with every
kept turn supervised. Measured on the real training mix of ``--data-root`` (default
``$TL_LIGHTNING_DATA``, else ``../shared/data``): SGD (the 6 train files), API-Bank level-1 + level-2,
tau-bench airline (gpt-4o trajectories), through ``ToolUseDataModule`` (codellama prompt, the
SmolLM2 tokenizer, no validation split, no length cap so no sample is dropped).

1. Tokens per epoch (the target: trajectory / per_turn <= 0.5) and supervised tokens (should be
   about equal: same turns; not exactly, as a turn's first token may merge differently with what
   precedes it), per source and in total. Deterministic: no repeats needed.
2. Wall time of one training epoch (forward, backward, AdamW; PKT loss as ``PKTModule`` computes
   it) on tiny-llama for both layouts, epochs interleaved, on a fixed subset: the first
   ``--subset-per-source`` (2) trajectories of each source (in file order) whose trajectory-layout
   sample fits ``--subset-max-length`` (1024) tokens (so neither layout drops anything). Only that subset
   is timed; nothing is extrapolated to the whole mix.

Run from the repository root: ``python -m benchmarks.mae_layouts`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from benchmarks._timing import emit_json, fmt, interleaved, paired_ratio, print_table, spread
from tl_lightning.data.datamodule import ToolUseDataModule, model_inputs, tokenize_samples
from tl_lightning.data.mae import LAYOUTS, apply_mae
from tl_lightning.data.sources import data_root, read_trajectories, write_jsonl
from tl_lightning.losses import pkt_loss, prediction_mask
from tl_lightning.modeling import SMOLLM2, TINY_LLAMA, load_model, load_tokenizer
from tl_lightning.records import Trajectory

TRAINING_MIX = {
    "sgd": "SGD/train",
    "api-bank": "API-Bank/lv1-lv2-samples",
    "tau-bench-airline": "tau-bench/historical_trajectories/gpt-4o-airline.json",
}
NO_CAP = 10**9
QUICK_APIBANK_FOLDER = "level-2-toolsearcher"  # --quick counts tokens on this API-Bank folder only


def mix_paths(data_root: Path) -> dict[str, Path]:
    """The training-mix paths under ``data_root``; a clear error if one is missing."""
    paths = {name: data_root / rel for name, rel in TRAINING_MIX.items()}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"training mix not found: {missing} (pass --data-root)")
    return paths


def epoch_tokens(data_path: str | list[str], tokenizer: Any, layout: str, fmt_name: str = "auto",
                 **datamodule_options: Any) -> dict[str, int]:
    """Samples, tokens and supervised tokens of one training epoch of ``ToolUseDataModule``."""
    options = dict(val_fraction=0.0, max_length=NO_CAP, seed=0) | datamodule_options
    dm = ToolUseDataModule(data_path=data_path, format=fmt_name, mae_layout=layout, **options)
    dm.connect(tokenizer)
    dm.setup("fit")
    samples = [s for row in dm.train_items for s in row]
    return {"samples": len(samples), "tokens": sum(len(s.input_ids) for s in samples),
            "supervised": sum(sum(label != -100 for label in s.labels) for s in samples),
            "trajectories": dm.report["trajectories"]}


def fitting_subset(trajs: Sequence[Trajectory], tokenizer: Any, k: int, max_length: int) -> list[Trajectory]:
    """The first ``k`` trajectories (in order) with at least one kept turn whose trajectory-layout
    sample has at most ``max_length`` tokens."""
    chosen = []
    for traj in trajs:
        samples, _ = apply_mae([traj], layout="trajectory")
        if not samples:
            continue
        kept, _ = tokenize_samples(samples, tokenizer, prompt_format="codellama", w_max=9.0,
                                   max_length=max_length, on_overlength="drop")
        if kept:
            chosen.append(traj)
        if len(chosen) == k:
            break
    return chosen


def epoch_runner(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: Any):
    """A closure training one epoch over ``loader`` (PKT loss on the kept logits)."""

    def run_epoch() -> None:
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            logits = model(**model_inputs(batch), logits_to_keep=prediction_mask(batch["labels"])).logits
            pkt_loss(logits, batch["labels"], batch["loss_weights"]).backward()
            optimizer.step()

    return run_epoch


def bench_epochs(paths: dict[str, Path], tokenizer: Any, per_source: int, max_length: int, batch_size: int,
                 repeats: int) -> dict[str, Any]:
    """Interleaved epoch wall times of both layouts on the fixed subset, on tiny-llama."""
    subset = []
    for path in paths.values():
        subset += fitting_subset(read_trajectories(path), tokenizer, per_source, max_length)
    with tempfile.TemporaryDirectory() as tmp:
        subset_file = Path(tmp) / "subset.jsonl"
        write_jsonl(subset, subset_file)
        loaders, counts = {}, {}
        for layout in LAYOUTS:
            dm = ToolUseDataModule(data_path=str(subset_file), format="openai", mae_layout=layout, val_fraction=0.0,
                                   max_length=max_length, batch_size=batch_size, seed=0)
            dm.connect(tokenizer)
            dm.setup("fit")
            if dm.report["overlength_dropped"]:
                raise AssertionError(f"{layout}: {dm.report['overlength_dropped']} samples dropped from the subset")
            loaders[layout] = dm.train_dataloader()
            counts[layout] = {"samples": len(dm.train_items),
                              "tokens": sum(len(s.input_ids) for row in dm.train_items for s in row),
                              "batches": len(loaders[layout])}
    model = load_model(TINY_LLAMA)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    times = interleaved({layout: epoch_runner(model, optimizer, loaders[layout]) for layout in LAYOUTS},
                        repeats=repeats, warmup=0)
    return {"subset": [t.id for t in subset], "counts": counts,
            "times": {k: spread(v) for k, v in times.items()},
            "ratio": paired_ratio(times["trajectory"], times["per_turn"])}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=data_root())
    parser.add_argument("--subset-per-source", type=int, default=2, help="trajectories per source for the wall time")
    parser.add_argument("--subset-max-length", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="epochs per layout (interleaved)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: API-Bank level-2 only (counts and a 1-trajectory subset), 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.subset_per_source, args.subset_max_length, args.repeats = 1, 1024, 1
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.manual_seed(0)
    paths = mix_paths(args.data_root)
    counted = {"api-bank (1 folder)": paths["api-bank"] / QUICK_APIBANK_FOLDER} if args.quick else paths
    print(f"sizes: data_root={args.data_root} sources={list(counted)} subset={args.subset_per_source}/source "
          f"(<= {args.subset_max_length} tokens) batch={args.batch_size} repeats={args.repeats} "
          f"threads={torch.get_num_threads()}")
    tokenizer = load_tokenizer(SMOLLM2)

    per_source = {name: {layout: epoch_tokens(str(path), tokenizer, layout) for layout in LAYOUTS}
                  for name, path in counted.items()}
    total = {layout: {k: sum(per_source[s][layout][k] for s in per_source) for k in ("samples", "tokens", "supervised")}
             for layout in LAYOUTS}
    rows = []
    for name, c in list(per_source.items()) + [("total", total)]:
        rows.append([name, c["trajectory"]["samples"], c["per_turn"]["samples"], c["trajectory"]["tokens"],
                     c["per_turn"]["tokens"], f"{c['trajectory']['tokens'] / c['per_turn']['tokens']:.3f}",
                     c["trajectory"]["supervised"], c["per_turn"]["supervised"]])
    print_table("Tokens per epoch (whole training mix, no length cap)",
                ["source", "samples traj", "samples per_turn", "tokens traj", "tokens per_turn", "traj/per_turn",
                 "supervised traj", "supervised per_turn"], rows)

    epochs = bench_epochs(counted if args.quick else paths, tokenizer, args.subset_per_source,
                          args.subset_max_length, args.batch_size, args.repeats)
    c, t = epochs["counts"], epochs["times"]
    print_table(f"Epoch wall time on tiny-llama, seconds: median [min-max] of {args.repeats} interleaved epochs; "
                f"subset = {len(epochs['subset'])} trajectories: {', '.join(epochs['subset'])}",
                ["layout", "samples", "batches", "tokens", "epoch s", "tokens/s"],
                [[layout, c[layout]["samples"], c[layout]["batches"], c[layout]["tokens"], fmt(t[layout]),
                  f"{c[layout]['tokens'] / t[layout].median:.0f}"] for layout in LAYOUTS])
    print(f"  epoch time trajectory/per_turn: {fmt(epochs['ratio'])}")

    return emit_json("mae_layouts", {
        "token_ratio": round(total["trajectory"]["tokens"] / total["per_turn"]["tokens"], 4),
        "tokens": {layout: total[layout]["tokens"] for layout in LAYOUTS},
        "supervised_tokens": {layout: total[layout]["supervised"] for layout in LAYOUTS},
        "samples": {layout: total[layout]["samples"] for layout in LAYOUTS},
        "token_ratio_by_source": {s: round(per_source[s]["trajectory"]["tokens"] / per_source[s]["per_turn"]["tokens"], 4)
                                  for s in per_source},
        "epoch_seconds": {layout: round(t[layout].median, 3) for layout in LAYOUTS},
        "epoch_seconds_spread": {layout: t[layout].to_dict(3) for layout in LAYOUTS},
        "epoch_ratio": round(epochs["ratio"].median, 4),
        "epoch_subset": epochs["subset"],
        "epoch_subset_tokens": {layout: c[layout]["tokens"] for layout in LAYOUTS},
    })


if __name__ == "__main__":
    main()
