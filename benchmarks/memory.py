"""Peak memory of training steps: PKT with LoRA vs full fine-tuning, and a PPO iteration with the
shared-base LoRA layout vs full copies.

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

PPO: ``--ppo-steps`` iterations of ``IRMPPOModule.training_step`` (in a Lightning ``Trainer``, as
``benchmarks/ppo_step.py`` runs it: greedy rollouts forced to ``--ppo-new-tokens`` tokens, IRM
scores, the actor / reference / critic passes, 1 PPO epoch of policy and value updates over the
whole batch) on the first training batch of ``--ppo-batch-size`` synthetic ``stage="rl"`` prompts
(codellama), float32, on SmolLM2: ``shared_lora`` (actor = a LoRA adapter, critic = a second adapter on the
same frozen base, reference = the base with the adapters off: one copy of the weights) vs
``copy`` (actor fully trained, reference a frozen copy, critic a separate fully trained copy:
three copies, two of them with gradients and AdamW states). Same figures per variant.

``--parts`` picks the halves (default both); the JSON line has ``pkt`` and ``ppo`` for those run.

Run from the repository root: ``python -m benchmarks.memory`` (``--quick`` for a smoke run on
tiny-llama; ``--parts ppo`` for the PPO half alone).
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
PPO_VARIANTS = ("shared_lora", "copy")
PARTS = ("pkt", "ppo")
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
    return with_memory({
        "variant": variant, "model": model_name, "device": device, "batch": list(batch["input_ids"].shape),
        "steps": steps, "trainable_params": sum(p.numel() for p in trainable),
        "total_params": sum(p.numel() for p in model.parameters())},
        after_imports, after_load, loaded_cuda if device.startswith("cuda") else None)


def with_memory(figures: dict[str, Any], after_imports: float, after_load: float,
                loaded_cuda: float | None) -> dict[str, Any]:
    """``figures`` plus the child's memory: RSS after imports / after loading / at its peak,
    ``step_extra`` = peak - after loading, and on CUDA the allocated MiB after loading and at peak."""
    import torch

    figures = {**figures, "rss_after_imports_mib": round(after_imports, 1),
               "rss_after_load_mib": round(after_load, 1), "peak_rss_mib": round(peak_rss_mib(), 1)}
    figures["step_extra_mib"] = round(figures["peak_rss_mib"] - after_load, 1)
    if loaded_cuda is not None:
        figures["cuda_loaded_mib"] = round(loaded_cuda, 1)
        figures["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / MIB, 1)
    return figures


def ppo_child(variant: str, model_name: str, batch_size: int, max_new_tokens: int, steps: int,
              device: str) -> dict[str, Any]:
    """Load the PPO models of ``variant``, run ``steps`` PPO iterations, report memory figures."""
    import torch
    from torch.utils.data import DataLoader

    from benchmarks.ppo_step import (LORA, as_is, build_module, force_full_length, prompt_batch, quiet_lightning,
                                     quiet_trainer, rl_prompts)

    after_imports = current_rss_mib()
    shared = variant == "shared_lora"
    module = build_module(model_name, max_new_tokens, minibatch_size=None, critic_layout=variant,
                          lora=LORA if shared else None)
    force_full_length(module.actor, max_new_tokens)
    prompts = rl_prompts(module.tokenizer, batch_size)
    batches = [prompt_batch(prompts, batch_size, module.tokenizer.pad_token_id)] * steps
    after_load = current_rss_mib()
    if device.startswith("cuda"):
        module.to(device)
        torch.cuda.synchronize()
        loaded_cuda = torch.cuda.memory_allocated() / MIB
        torch.cuda.reset_peak_memory_stats()
    with quiet_lightning():
        trainer = quiet_trainer("gpu" if device.startswith("cuda") else "cpu")
        trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None, collate_fn=as_is))
    models = [m for m in (module.actor, module.reference, module.critic, module.value_head) if m is not None]
    parameters = {id(p): p for m in models for p in m.parameters()}
    trainable = module.actor_parameters() + module.critic_parameters()
    return with_memory({
        "variant": variant, "model": model_name, "device": device, "batch": batch_size,
        "max_new_tokens": max_new_tokens, "steps": steps, "models_held": len(models) - 1,
        "trainable_params": sum(p.numel() for p in trainable),
        "total_params": sum(p.numel() for p in parameters.values())},
        after_imports, after_load, loaded_cuda if device.startswith("cuda") else None)


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


def ppo_memory(model_name: str, batch_size: int, max_new_tokens: int, steps: int, device: str) -> dict[str, Any]:
    """PPO with the shared-base LoRA layout vs full copies: one child per variant; the table and
    the figures."""
    common = ["--model", model_name, "--ppo-batch-size", str(batch_size), "--ppo-new-tokens", str(max_new_tokens),
              "--ppo-steps", str(steps), "--device", device]
    r = run_children({v: ["ppo", v, *common] for v in PPO_VARIANTS})
    key = "cuda_peak_mib" if device.startswith("cuda") else "peak_rss_mib"
    rows = [[v, r[v]["models_held"], f"{r[v]['trainable_params']:,}", f"{r[v]['total_params']:,}",
             r[v]["rss_after_imports_mib"], r[v]["rss_after_load_mib"], r[v]["peak_rss_mib"], r[v]["step_extra_mib"],
             r[v].get("cuda_peak_mib", "-")] for v in PPO_VARIANTS]
    print_table(f"PPO iteration memory, MiB ({model_name}, batch {batch_size}, {max_new_tokens} new tokens, "
                f"{steps} iteration(s), {device})",
                ["variant", "models", "trainable", "parameters", "after imports", "after load", "peak RSS",
                 "step extra", "cuda peak"], rows)
    figures = {v: r[v] for v in PPO_VARIANTS}
    figures["peak_ratio_copy_vs_shared_lora"] = round(r["copy"][key] / r["shared_lora"][key], 3)
    figures["step_extra_ratio_copy_vs_shared_lora"] = round(
        r["copy"]["step_extra_mib"] / max(r["shared_lora"]["step_extra_mib"], 1.0), 3)
    print(f"  full copies / shared-base LoRA: peak {figures['peak_ratio_copy_vs_shared_lora']}x, step extra "
          f"{figures['step_extra_ratio_copy_vs_shared_lora']}x")
    return figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=2, metavar=("KIND", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="training steps (AdamW states exist from step 1)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which halves to run")
    parser.add_argument("--ppo-batch-size", type=int, default=2, help="prompts per PPO iteration")
    parser.add_argument("--ppo-new-tokens", type=int, default=32, help="generated tokens per prompt (full length)")
    parser.add_argument("--ppo-steps", type=int, default=1, help="PPO iterations (AdamW states exist from the first)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny-llama, batch 1, 1 step; PPO: 1 prompt, 4 tokens, 1 iteration")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.batch_size, args.steps = "tiny-llama", 1, 1
        args.ppo_batch_size, args.ppo_new_tokens, args.ppo_steps = 1, 4, 1
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        kind, variant = args.child
        if kind == "pkt":
            figures = pkt_child(variant, args.model, args.batch_size, args.steps, args.device)
        elif kind == "ppo":
            figures = ppo_child(variant, args.model, args.ppo_batch_size, args.ppo_new_tokens, args.ppo_steps,
                                args.device)
        else:
            raise ValueError(f"unknown memory benchmark {kind!r}")
        print(json.dumps(figures))
        return figures
    print(f"sizes: model={args.model} parts={args.parts} device={args.device}; PKT batch={args.batch_size} "
          f"steps={args.steps}; PPO batch={args.ppo_batch_size} new_tokens={args.ppo_new_tokens} "
          f"iterations={args.ppo_steps} (shared machine: peaks are per process, unaffected by other jobs)")
    figures = {}
    if "pkt" in args.parts:
        figures["pkt"] = pkt_memory(args.model, args.batch_size, args.steps, args.device)
    if "ppo" in args.parts:
        figures["ppo"] = ppo_memory(args.model, args.ppo_batch_size, args.ppo_new_tokens, args.ppo_steps, args.device)
    return emit_json("memory", figures)


if __name__ == "__main__":
    main()
