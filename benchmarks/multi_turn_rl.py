"""Held-out task success before and after multi-turn RL: the policy calls the synthetic world's
tools, reads the outputs (errors included), fixes its calls and answers.

1. before: the PKT model (``--model``; default the PKT demo's HF folder, written by
   ``python train.py fit --config configs/demo/pkt.yaml``) runs greedy episodes
   (``episodes.evaluate_episodes``) on ``--tasks`` tasks of the world's held-out domains
   (``SyntheticWorldEnv(split="heldout_domains")``: tools never seen in training);
2. multi-turn RL: ``python train.py fit --config configs/demo/irm_env.yaml`` (GRPO over episodes on
   the training domains) in this process, from ``--model``, for at most ``--rl-minutes`` of wall
   time (and the config's rollout batches);
3. after: the RL policy (its LoRA adapter active) on the same tasks, the same way.

Both evaluations use the recipe's prompt format and episode settings (turns, token budgets). The
figures: the task success rate (a task is solved when every gold step's calls were made exactly,
in order, without failure, and the policy then answered) and the mean calls per solved task, each
with its 95% bootstrap interval over tasks (``stats.bootstrap_mean``); the success difference
after - before with its paired interval (``stats.paired_difference``, the same tasks); the end
reasons and the IRM categories of the call turns; the wall time of each phase.

Run from the repository root: ``python -m benchmarks.multi_turn_rl`` (about 25 minutes on 2 CPU
cores with the defaults; ``--set model.episodes.mae=true`` for MAE in RL, ``--set`` any other
recipe key the same way); ``--quick``: tiny-llama and ``configs/demo/irm_env_tiny.yaml``, a few
tasks, seconds (the random model solves nothing: it checks the plumbing).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from benchmarks._timing import emit_json, print_table
from tl_lightning.environments import SyntheticWorldEnv
from tl_lightning.episodes import EpisodeOptions, evaluate_episodes
from tl_lightning.stats import Interval, paired_difference

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "demo"


def evaluate(model, tokenizer, env: SyntheticWorldEnv, recipe: dict[str, Any], batch_size: int) -> dict[str, Any]:
    init = recipe["model"]["init_args"]
    return evaluate_episodes(model, tokenizer, env, prompt_format=recipe["data"]["prompt_format"],
                             options=EpisodeOptions(**init.get("episodes", {})),
                             max_new_tokens=init["max_new_tokens"], batch_size=batch_size)


def train(config: Path, model: str, minutes: float, root: Path, batches: int | None, settings: Sequence[str]):
    """The RL run of ``config`` from ``model`` (``settings``: ``key=value`` overrides of the
    recipe); the fitted module."""
    from tl_lightning.cli import main

    total = round(minutes * 60)
    budget = f"00:{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"  # DD:HH:MM:SS
    args = ["fit", "--config", str(config), f"--model.model_name={model}", f"--trainer.default_root_dir={root}",
            f"--trainer.max_time={budget}", "--trainer.enable_progress_bar=false"]
    if batches is not None:
        args.append(f"--trainer.limit_train_batches={batches}")
    return main(args + [f"--{setting}" for setting in settings]).model


def interval_text(figure: dict[str, Any] | None, unit: str = "") -> str:
    if figure is None:
        return "-"
    return f"{figure['estimate']:.2f}{unit} [{figure['low']:.2f}, {figure['high']:.2f}]"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/demo_pkt/hf_model", help="the PKT model (HF folder or name)")
    parser.add_argument("--config", default=str(CONFIGS / "irm_env.yaml"))
    parser.add_argument("--tasks", type=int, default=48, help="held-out-domain tasks evaluated")
    parser.add_argument("--seed", type=int, default=0, help="which held-out tasks")
    parser.add_argument("--rl-minutes", type=float, default=15.0, help="wall-time budget of the RL run")
    parser.add_argument("--rl-batches", type=int, default=None, help="rollout batches (default: the config's)")
    parser.add_argument("--batch-size", type=int, default=8, help="episodes run side by side in evaluation")
    parser.add_argument("--root", default="runs/multi_turn_rl", help="the RL run's folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the recipe, e.g. --set model.episodes.mae=true (repeatable)")
    parser.add_argument("--quick", action="store_true", help="tiny-llama, the tiny recipe, 4 tasks")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.config, args.tasks, args.rl_batches = "tiny-llama", str(CONFIGS / "irm_env_tiny.yaml"), 4, 1
    from tl_lightning.evaluate import load_for_generation

    recipe = yaml.safe_load(Path(args.config).read_text())
    env = SyntheticWorldEnv(split="heldout_domains", n=args.tasks, seed=args.seed)
    print(f"model {args.model}, recipe {args.config}, {args.tasks} held-out-domain tasks (seed {args.seed}), "
          f"RL budget {args.rl_minutes} min, torch threads {torch.get_num_threads()}")

    seconds = {}
    started = time.perf_counter()
    model, tokenizer, _ = load_for_generation(args.model)
    before = evaluate(model, tokenizer, env, recipe, args.batch_size)
    seconds["before"] = time.perf_counter() - started
    del model

    started = time.perf_counter()
    module = train(Path(args.config), args.model, args.rl_minutes, Path(args.root), args.rl_batches, args.set)
    seconds["rl"] = time.perf_counter() - started

    started = time.perf_counter()
    module.actor.eval()
    after = evaluate(module.actor, module.tokenizer, env, recipe, args.batch_size)
    seconds["after"] = time.perf_counter() - started

    solved = [[float(e["solved"]) for e in report["episodes"]] for report in (after, before)]
    difference: Interval = paired_difference(*solved).scaled(100)
    rows = [[name, interval_text(r["success"], "%"), interval_text(r["calls_per_solved"]), f"{r['turns']:.2f}",
             f"{r['failed_call_share']:.2f}", f"{r['end_answer']:.2f}"] for name, r in (("before", before),
                                                                                     ("after RL", after))]
    print_table("held-out-domain tasks (95% bootstrap intervals over tasks)",
                ["model", "success", "calls / solved", "turns", "failed calls", "answered"], rows)
    print(f"\nsuccess after - before: {difference} points (paired); wall time: "
          + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()))
    strip = lambda r: {k: v for k, v in r.items() if k != "episodes"}  # noqa: E731
    return emit_json("multi_turn_rl", {
        "model": args.model, "config": args.config, "tasks": args.tasks, "seed": args.seed,
        "rl_minutes": args.rl_minutes, "settings": args.set, "rl_steps": int(module.trainer.global_step),
        "before": strip(before), "after": strip(after), "success_difference": difference.to_dict(),
        "seconds": {k: round(v, 1) for k, v in seconds.items()}})


if __name__ == "__main__":
    main()
