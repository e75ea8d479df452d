"""Peak memory of training steps: PKT with LoRA vs full fine-tuning.

Each variant runs in its own Python process (this script re-invokes itself with ``--child``), so
one variant's high-water mark cannot include the other's: on CPU the peak resident set size
(``resource.getrusage(...).ru_maxrss``, the kernel's high-water mark of the whole process), on a
GPU ``torch.cuda.max_memory_allocated``. The children run at the same time: peaks are per process,
so that changes none of the figures, only the wall time.

PKT: a few ``PKTModule``-style training steps (kept logits, ``pkt_loss``, AdamW) on the first
batch of ``ToolUseDataModule`` over the synthetic world, float32, without gradient checkpointing,
on the bundled SmolLM2-135M-Instruct: LoRA (r=8 on q/k/v/o, only the adapters trained) vs all
weights trained. Per variant: resident memory after the imports, after loading the model, the
peak over the steps, and ``step_extra`` = peak - after loading (gradients, AdamW states,
activations): the part that fine-tuning adds.

Run from the repository root: ``python -m benchmarks.memory`` (``--quick`` for a smoke run on
tiny-llama).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from benchmarks._timing import emit_json, print_table

REPO = Path(__file__).resolve().parents[1]
PKT_VARIANTS = ("lora", "full")
MIB = 1024 * 1024


def current_rss_mib() -> float:
    """Resident set size of this process now (Linux ``/proc/self/statm``), MiB."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def peak_rss_mib() -> float:
    """High-water mark of this process's resident set size, MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------- one variant (child)


def pkt_child(variant: str, model_name: str, batch_size: int, steps: int, device: str) -> dict[str, Any]:
    """Load the model for ``variant``, run ``steps`` PKT training steps, report memory figures."""
    import torch

    from benchmarks.pkt_overhead import pkt_kept_loss, sft_batch
    from tl_lightning.modeling import SMOLLM2, LoraOptions, load_model, load_tokenizer

    after_imports = current_rss_mib()
    batch = sft_batch(load_tokenizer(SMOLLM2), batch_size, synthetic_size=32)
    batch = {k: v.to(device) for k, v in batch.items()}
    model = load_model(model_name, lora=LoraOptions() if variant == "lora" else None).to(device)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-6)
    after_load = current_rss_mib()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        loaded_cuda = torch.cuda.memory_allocated() / MIB
        torch.cuda.reset_peak_memory_stats()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        pkt_kept_loss(model, batch).backward()
        optimizer.step()
    figures = {
        "variant": variant, "model": model_name, "device": device, "batch": list(batch["input_ids"].shape),
        "steps": steps, "trainable_params": sum(p.numel() for p in trainable),
        "total_params": sum(p.numel() for p in model.parameters()),
        "rss_after_imports_mib": round(after_imports, 1), "rss_after_load_mib": round(after_load, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    figures["step_extra_mib"] = round(figures["peak_rss_mib"] - after_load, 1)
    if device.startswith("cuda"):
        figures["cuda_loaded_mib"] = round(loaded_cuda, 1)
        figures["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / MIB, 1)
    return figures


# ------------------------------------------------------------------------------- parent side


def run_children(variant_args: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Start one child process per variant (all at once), wait, and parse each one's JSON line."""
    processes = {
        name: subprocess.Popen([sys.executable, "-m", "benchmarks.memory", "--child", *args], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, args in variant_args.items()}
    results = {}
    for name, process in processes.items():
        out, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"memory child {name!r} failed ({process.returncode}):\n{err[-3000:]}")
        results[name] = json.loads(out.strip().splitlines()[-1])
    return results


def pkt_memory(model_name: str, batch_size: int, steps: int, device: str) -> dict[str, Any]:
    """PKT with LoRA vs full fine-tuning: one child per variant; the table and the figures."""
    common = ["--model", model_name, "--batch-size", str(batch_size), "--steps", str(steps), "--device", device]
    r = run_children({v: ["pkt", v, *common] for v in PKT_VARIANTS})
    key = "cuda_peak_mib" if device.startswith("cuda") else "peak_rss_mib"
    rows = [[v, f"{r[v]['trainable_params']:,}", r[v]["rss_after_imports_mib"], r[v]["rss_after_load_mib"],
             r[v]["peak_rss_mib"], r[v]["step_extra_mib"], r[v].get("cuda_peak_mib", "-")] for v in PKT_VARIANTS]
    print_table(f"PKT training step memory, MiB ({model_name}, batch {r['lora']['batch']}, {steps} steps, {device})",
                ["variant", "trainable", "after imports", "after load", "peak RSS", "step extra", "cuda peak"], rows)
    figures = {v: r[v] for v in PKT_VARIANTS}
    figures["peak_ratio_full_vs_lora"] = round(r["full"][key] / r["lora"][key], 3)
    figures["step_extra_ratio_full_vs_lora"] = round(r["full"]["step_extra_mib"] / max(r["lora"]["step_extra_mib"], 1.0), 3)
    print(f"  full / LoRA: peak {figures['peak_ratio_full_vs_lora']}x, step extra "
          f"{figures['step_extra_ratio_full_vs_lora']}x")
    return figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=2, metavar=("KIND", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="training steps (AdamW states exist from step 1)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny-llama, batch 1, 1 step")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.batch_size, args.steps = "tiny-llama", 1, 1
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        kind, variant = args.child
        if kind != "pkt":
            raise ValueError(f"unknown memory benchmark {kind!r}")
        figures = pkt_child(variant, args.model, args.batch_size, args.steps, args.device)
        print(json.dumps(figures))
        return figures
    print(f"sizes: model={args.model} batch={args.batch_size} steps={args.steps} device={args.device}")
    return emit_json("memory", {"pkt": pkt_memory(args.model, args.batch_size, args.steps, args.device)})


if __name__ == "__main__":
    main()
