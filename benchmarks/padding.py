"""Padding waste (pad token slots / all token slots) of one training epoch: naive batching vs
length bucketing vs packing, on the real training mix (SGD, API-Bank level-1 + 2, tau-bench
airline; see ``mae_layouts.py``).

All three use ``ToolUseDataModule``'s own batching and ``datamodule.padding_waste``:

- naive: ``bucket_batches=1``, i.e. shuffled samples cut into batches as they come (each batch is
  only sorted inside itself, which changes nothing);
- bucketing: the default ``bucket_batches`` (32): mega-batches of 32 batches sorted by length;
- packing: ``packing=True``: samples packed first-fit-decreasing into rows of ``max_length``.

Same samples for all three (same layout, ``max_length``, drops); the figures are exact counts of
one epoch, so there is nothing to repeat. Target: waste <= 5% with bucketing or packing.

Run from the repository root: ``python -m benchmarks.padding`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from benchmarks._timing import emit_json, print_table
from benchmarks.mae_layouts import mix_paths
from tl_lightning.data.datamodule import ToolUseDataModule, padding_waste
from tl_lightning.data.sources import data_root
from tl_lightning.modeling import SMOLLM2, load_tokenizer


def epoch_waste(dm: ToolUseDataModule) -> dict[str, Any]:
    """Padding waste, batches and token slots of one training epoch of ``dm`` (set up)."""
    batches = list(dm.train_dataloader())
    slots = sum(b["attention_mask"].numel() for b in batches)
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    return {"waste": padding_waste(batches), "batches": len(batches), "slots": slots, "tokens": real}


def measure(paths: list[str], tokenizer: Any, layout: str, batch_size: int, max_length: int,
            bucket_batches: int) -> dict[str, dict[str, Any]]:
    """Naive, bucketed and packed epochs over the same samples."""
    options = dict(data_path=paths, mae_layout=layout, batch_size=batch_size, max_length=max_length,
                   val_fraction=0.0, seed=0)
    dm = ToolUseDataModule(bucket_batches=1, **options)
    dm.connect(tokenizer)
    dm.setup("fit")
    results = {"naive": epoch_waste(dm)}
    dm.bucket_batches = bucket_batches  # same samples, only the batching changes
    results["bucketing"] = epoch_waste(dm)
    packed = ToolUseDataModule(packing=True, bucket_batches=bucket_batches, **options)
    packed.connect(tokenizer)
    packed.setup("fit")
    results["packing"] = epoch_waste(packed)
    samples = len(dm.train_items)
    if sum(len(row) for row in packed.train_items) != samples:
        raise AssertionError("packing saw a different number of samples than batching")
    for r in results.values():
        r["samples"] = samples
    results["packing"]["rows"] = len(packed.train_items)
    results["dropped"] = {"overlength": dm.report["overlength_dropped"]}
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=data_root())
    parser.add_argument("--layout", default="trajectory", choices=["trajectory", "per_turn"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--bucket-batches", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="smoke run: API-Bank only")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    paths = mix_paths(args.data_root)
    used = {"api-bank": paths["api-bank"]} if args.quick else paths
    print(f"sizes: data_root={args.data_root} sources={list(used)} layout={args.layout} batch={args.batch_size} "
          f"max_length={args.max_length} bucket_batches={args.bucket_batches}")
    r = measure([str(p) for p in used.values()], load_tokenizer(SMOLLM2), args.layout, args.batch_size,
                args.max_length, args.bucket_batches)
    modes = ("naive", "bucketing", "packing")
    print_table(f"Padding waste of one epoch ({r['naive']['samples']} samples, "
                f"{r['dropped']['overlength']} dropped as longer than max_length)",
                ["batching", "batches", "token slots", "real tokens", "waste"],
                [[m, r[m]["batches"], r[m]["slots"], r[m]["tokens"], f"{100 * r[m]['waste']:.2f}%"] for m in modes])
    print(f"  packing: {r['naive']['samples']} samples in {r['packing']['rows']} rows of <= {args.max_length} tokens")
    return emit_json("padding", {
        "waste": {m: round(r[m]["waste"], 5) for m in modes},
        "slots": {m: r[m]["slots"] for m in modes},
        "tokens": r["naive"]["tokens"], "samples": r["naive"]["samples"],
        "packed_rows": r["packing"]["rows"], "overlength_dropped": r["dropped"]["overlength"],
        "layout": args.layout, "batch_size": args.batch_size, "max_length": args.max_length,
    })


if __name__ == "__main__":
    main()
