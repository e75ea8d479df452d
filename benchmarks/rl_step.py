"""Wall time of one RL iteration of ``IRMPPOModule`` per advantage estimator, at the same prompts,
group size and lengths, split into generation / scoring / passes / updates; and the same GRPO
iteration with TRL's ``GRPOTrainer`` side by side.

Every variant: the model (default SmolLM2-135M-Instruct) with LoRA r=8 (alpha 16, no dropout,
q/k/v/o), float32 on CPU; the same ``--prompts`` single-turn prompts of the built-in synthetic
world (``ToolUseDataModule(stage="rl")``, the codellama prompt) x ``--group`` sampled completions
at temperature 1, forced to ``--max-new-tokens`` new tokens (eos suppressed until then), so every
variant generates exactly the same number of tokens; one epoch over one minibatch (one optimizer
step per iteration) in micro-batches of ``--microbatch`` rows (gradient accumulation). Ours runs
``IRMPPOModule.training_step`` in a Lightning ``Trainer``; its phases are the module's own
``phase_seconds`` (``ppo_step.PhaseRecorder``):

- ``gae``: PPO with the critic a second LoRA adapter over the same base (``shared_lora``), the KL
  (0.3, the paper's) in the reward: passes = reference, old log-probs, values; updates = policy
  and value;
- ``grpo``, ``dr_grpo``, ``rloo``, ``reinforce_pp_baseline``: no critic, the KL (beta 0.04) as the
  k3 loss term (``configs/irm_grpo.yaml``): passes = reference only (the update's own log-probs
  are the old ones); updates = policy;
- ``grpo_kl0``: GRPO without KL (TRL's default beta 0): no pass at all besides the update.

TRL (optional; skipped with the reason printed when ``import trl`` fails or has no
``GRPOTrainer``): ``GRPOTrainer`` with the same model folder, LoRA, prompt texts (the same token
ids: checked), group size, forced length (``generation_kwargs={"min_new_tokens": N}``), temperature
1, beta 0.04 (k3), ``loss_type="grpo"``, ``num_iterations=1``, one optimizer step per generation
batch (``gradient_accumulation_steps`` = rows / micro-batch), our IRM score as its reward function.
Its phases come from wrapping its own methods: generation = ``_generate``, scoring =
``_calculate_rewards``, passes = the rest of ``_generate_and_score_completions`` (reference
log-probs), updates = the rest of the optimizer step. TRL is not a project dependency: trl 1.16.0
installs beside torch 2.13 / transformers 5.24 aside, e.g. ``pip install --target /tmp/trl_pkgs
--no-deps trl==1.16.0 datasets pyarrow pandas dill xxhash multiprocess python-dateutil pytz tzdata
six fsspec`` and ``PYTHONPATH=/tmp/trl_pkgs python -m benchmarks.rl_step``.

Timing: TRL's ``train()`` runs ``1 + --repeats`` steps; after each, one round of our variants
runs (order reversed every other round), so every round has one iteration of each variant, side
by side; the first round is an untimed warm-up. Without TRL the rounds are
``_timing.interleaved``. Figures are medians with their [min-max] spread, ratios the medians of
per-round ratios: ``grpo_vs_gae`` (target <= 0.5) and ``trl_vs_ours`` = TRL / our ``grpo``
(target >= 1: ours at most TRL's time).

The machine is shared (2 cores, other jobs running): compare only the ratios of one run.

Run from the repository root: ``python -m benchmarks.rl_step`` (``--quick`` for a smoke run on
tiny-llama with few tokens).
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any, Callable, Sequence

import torch

from benchmarks._timing import Spread, emit_json, fmt, interleaved, paired_ratio, print_table, spread
from benchmarks.ppo_step import (
    LORA,
    PhaseRecorder,
    force_full_length,
    prompt_batch,
    quiet_lightning,
    rl_prompts,
    run_ours,
)
from tl_lightning import ppo
from tl_lightning.data.datamodule import PromptSample
from tl_lightning.modeling import SMOLLM2, TINY_LLAMA, resolve_model_path
from tl_lightning.rollouts import ROLLOUT_STOP, score_responses

PHASES = ppo.PHASES
GROUP_KL = dict(kl_coef=0.04, kl_mode="loss")
# name -> IRMPPOModule options on top of the shared ones
VARIANTS: dict[str, dict[str, Any]] = {
    "gae": dict(advantage_estimator="gae", critic_layout="shared_lora", kl_coef=0.3, kl_mode="reward"),
    "grpo": dict(advantage_estimator="grpo", **GROUP_KL),
    "grpo_kl0": dict(advantage_estimator="grpo", kl_coef=0.0),
    "dr_grpo": dict(advantage_estimator="dr_grpo", **GROUP_KL),
    "rloo": dict(advantage_estimator="rloo", **GROUP_KL),
    "reinforce_pp_baseline": dict(advantage_estimator="reinforce_pp_baseline", **GROUP_KL),
}


def build_module(args: argparse.Namespace, options: dict[str, Any]) -> ppo.IRMPPOModule:
    """An ``IRMPPOModule`` with its models loaded and generation forced to full length."""
    module = ppo.IRMPPOModule(model_name=args.model, dtype="float32", lora=LORA, num_generations=args.group,
                              do_sample=True, temperature=1.0, ppo_epochs=1, minibatch_size=None,
                              microbatch_size=args.microbatch, max_new_tokens=args.max_new_tokens,
                              actor_lr=1e-5, critic_lr=1e-5, **options)
    module.configure_model()
    force_full_length(module.actor, args.max_new_tokens)
    return module


# ------------------------------------------------------------------------------------ TRL


def trl_unavailable_reason() -> str | None:
    """Why TRL's GRPO cannot run here, or None when it can."""
    try:
        import trl
    except ImportError as e:
        return f"trl is not installed ({e}); see the module docstring for an install beside the project"
    try:
        from trl import GRPOConfig, GRPOTrainer  # noqa: F401
    except ImportError as e:
        return f"trl {trl.__version__} has no GRPOTrainer ({e})"
    return None


class TRLGRPO:
    """TRL's ``GRPOTrainer`` on the same model, LoRA, prompts, group, lengths and KL; ``run(steps,
    after_step)`` trains ``steps`` optimizer steps, calling ``after_step(phases)`` with each step's
    phase seconds (from its start to its end: generation, scoring, passes, updates)."""

    def __init__(self, args: argparse.Namespace, tokenizer: Any, prompts: Sequence[PromptSample], output_dir: str):
        from datasets import Dataset
        from datasets.table import InMemoryTable
        from peft import LoraConfig
        from trl import GRPOConfig, GRPOTrainer

        rows = len(prompts) * args.group
        micro = args.microbatch or rows
        texts = [tokenizer.decode(p.input_ids) for p in prompts]
        if [tokenizer(t)["input_ids"] for t in texts] != [list(p.input_ids) for p in prompts]:
            raise ValueError("the prompt texts do not give TRL our prompt token ids")
        by_text = {t: p for t, p in zip(texts, prompts)}

        def irm_reward(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
            gold = [by_text[p].gold for p in prompts]
            tools = [by_text[p].tools for p in prompts]
            cut = [ROLLOUT_STOP.cut(c) for c in completions]
            return score_responses(cut, gold, tools)[0].tolist()

        config = GRPOConfig(
            output_dir=output_dir, use_cpu=True, bf16=False, report_to="none", save_strategy="no",
            logging_steps=10**6, disable_tqdm=True, seed=0, max_steps=1 + args.repeats,
            per_device_train_batch_size=micro, gradient_accumulation_steps=rows // micro,
            num_generations=args.group, max_completion_length=args.max_new_tokens,
            generation_kwargs={"min_new_tokens": args.max_new_tokens}, temperature=1.0, top_p=1.0,
            beta=GROUP_KL["kl_coef"], loss_type="grpo", scale_rewards="group", num_iterations=1,
            learning_rate=1e-5, adam_beta2=0.95, max_grad_norm=1.0, lr_scheduler_type="constant",
            model_init_kwargs={"dtype": torch.float32}, dataloader_num_workers=0, shuffle_dataset=False,
            # TRL's defaults recompute activations in the backward (ours do not): off, like ours
            gradient_checkpointing=False, activation_checkpointing=False, disable_dropout=True,
        )
        # a fixed fingerprint: datasets 5.2 cannot hash a pyarrow table here (dill and MonthDayNano)
        dataset = Dataset(InMemoryTable.from_pydict({"prompt": texts * (1 + args.repeats)}), fingerprint="irm")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.trainer = GRPOTrainer(
                model=resolve_model_path(args.model), reward_funcs=irm_reward, args=config, train_dataset=dataset,
                processing_class=tokenizer, peft_config=LoraConfig(
                    r=LORA.r, lora_alpha=LORA.alpha, lora_dropout=LORA.dropout,
                    target_modules=list(LORA.target_modules), task_type="CAUSAL_LM"))
        self.marks: dict[str, float] = {}
        for name in ("_generate", "_calculate_rewards", "_generate_and_score_completions"):
            setattr(self.trainer, name, self._timed(name, getattr(self.trainer, name)))

    def _timed(self, name: str, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            self.marks[name] = self.marks.get(name, 0.0) + time.perf_counter() - start
            return result
        return timed

    def run(self, after_step: Callable[[dict[str, float]], None]) -> None:
        from transformers import TrainerCallback

        recorder = self

        class Steps(TrainerCallback):
            def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
                recorder.marks = {"start": time.perf_counter()}

            def on_step_end(self, *args: Any, **kwargs: Any) -> None:
                m = recorder.marks
                total = time.perf_counter() - m["start"]
                rollout = m["_generate_and_score_completions"]
                after_step({"generation": m["_generate"], "scoring": m["_calculate_rewards"],
                            "passes": rollout - m["_generate"] - m["_calculate_rewards"], "updates": total - rollout})

        self.trainer.add_callback(Steps())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.trainer.train()


# ------------------------------------------------------------------------------ the benchmark


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Rounds of one iteration per variant (TRL driving them when present); per-variant phases."""
    modules = {name: build_module(args, VARIANTS[name]) for name in args.variants}
    tokenizer = next(iter(modules.values())).tokenizer
    prompts = rl_prompts(tokenizer, args.prompts)
    batch = prompt_batch(prompts, args.prompts, tokenizer.pad_token_id)
    recorders = {name: PhaseRecorder() for name in modules}
    times: dict[str, list[dict[str, float]]] = {name: [] for name in (*modules, "trl_grpo")}
    widths: dict[str, int] = {}

    def ours(name: str) -> Callable[[], float]:
        def run() -> float:
            with recorders[name].installed(modules[name]), quiet_lightning():
                (step,) = run_ours(modules[name], recorders[name], [batch])
            widths[name] = step.width
            times[name].append(step.seconds)
            return sum(step.seconds.values())
        return run

    variants = {name: ours(name) for name in modules}
    trl_reason = trl_unavailable_reason() if args.trl else "--no-trl"
    if trl_reason is None:
        import tempfile

        with tempfile.TemporaryDirectory() as output_dir:
            trl = TRLGRPO(args, tokenizer, prompts, output_dir)
            rounds = []

            def after_trl_step(phases: dict[str, float]) -> None:
                times["trl_grpo"].append(phases)
                names = list(variants) if len(rounds) % 2 == 0 else list(variants)[::-1]
                rounds.append(names)
                print(f"round {len(rounds) - 1}{' (warm-up)' if len(rounds) == 1 else ''}: trl_grpo "
                      f"{sum(phases.values()):.1f} s", flush=True)
                for name in names:
                    variants[name]()
                    print(f"  {name}: {sum(times[name][-1].values()):.1f} s", flush=True)

            trl.run(after_trl_step)
    else:
        print(f"TRL skipped: {trl_reason}", flush=True)
        interleaved(variants, repeats=1 + args.repeats, warmup=0)
        times.pop("trl_grpo")
    # the first round warmed up every variant
    timed = {name: steps[1:] for name, steps in times.items()}
    return {"times": timed, "widths": widths, "trl_reason": trl_reason,
            "prompt_tokens": [len(p.input_ids) for p in prompts]}


def summarize(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    """Print the table; the JSON figures."""
    times: dict[str, list[dict[str, float]]] = result["times"]
    totals = {name: [sum(step.values()) for step in steps] for name, steps in times.items()}
    reference = "gae" if "gae" in totals else next(iter(totals))
    rows, by_variant = [], {}
    for name, steps in times.items():
        phase_spreads = {p: spread([s[p] for s in steps]) for p in PHASES}
        vs_ref = paired_ratio(totals[name], totals[reference])
        rows.append([name, *(fmt(phase_spreads[p], digits=2) for p in PHASES), fmt(spread(totals[name]), digits=2),
                     fmt(vs_ref)])
        by_variant[name] = {"seconds": spread(totals[name]).to_dict(3),
                            "phases_s": {p: round(phase_spreads[p].median, 3) for p in PHASES},
                            f"vs_{reference}": round(vs_ref.median, 4)}
    rows_per_step = args.prompts * args.group
    print_table(f"one RL iteration, s: median [min-max] over {args.repeats} rounds ({args.model}, {args.prompts} "
                f"prompts of {min(result['prompt_tokens'])}-{max(result['prompt_tokens'])} tokens x {args.group} "
                f"completions = {rows_per_step} rows, {args.max_new_tokens} new tokens, micro-batch "
                f"{args.microbatch}, {args.threads} thread(s))",
                ["variant", *PHASES, "iteration", f"vs {reference}"], rows)
    figures: dict[str, Any] = {
        "model": args.model, "prompts": args.prompts, "group": args.group, "max_new_tokens": args.max_new_tokens,
        "microbatch": args.microbatch, "prompt_tokens": result["prompt_tokens"], "repeats": args.repeats,
        "threads": args.threads, "machine": "shared CPU (other jobs running)", "by_variant": by_variant,
        "generated_width": result["widths"], "trl": None, "trl_skipped": result["trl_reason"]}
    if "grpo" in totals and "gae" in totals:
        ratio: Spread = paired_ratio(totals["grpo"], totals["gae"])
        figures["grpo_vs_gae"], figures["grpo_vs_gae_spread"] = round(ratio.median, 4), ratio.to_dict(4)
        print(f"  GRPO / PPO (gae) iteration: {fmt(ratio)} (target <= 0.5)")
    if "trl_grpo" in totals and "grpo" in totals:
        import trl

        ratio = paired_ratio(totals["trl_grpo"], totals["grpo"])
        figures["trl"] = {"version": trl.__version__, "trl_vs_ours": round(ratio.median, 4),
                          "trl_vs_ours_spread": ratio.to_dict(4)}
        print(f"  TRL {trl.__version__} GRPOTrainer / ours (grpo): {fmt(ratio)} (target >= 1)")
    elif result["trl_reason"]:
        print(f"  TRL comparison skipped: {result['trl_reason']}")
    return figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=SMOLLM2)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4, help="completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--microbatch", type=int, default=4, help="rows per forward/backward (0 = all rows)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on the shared 2-core machine)")
    parser.add_argument("--no-trl", dest="trl", action="store_false", help="skip TRL's GRPOTrainer")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny-llama, 2 prompts x 2, 4 tokens, gae and grpo, 1 round, no TRL")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.group, args.max_new_tokens, args.repeats = TINY_LLAMA, 2, 4, 1
        args.variants, args.trl = ["gae", "grpo"], False
    if min(args.prompts, args.group - 1, args.max_new_tokens, args.repeats) < 1:
        parser.error("--prompts, --max-new-tokens and --repeats must be >= 1, --group >= 2")
    args.microbatch = args.microbatch or None
    if args.microbatch and (args.prompts * args.group) % args.microbatch:
        parser.error("--microbatch must divide prompts x group (TRL accumulates whole micro-batches)")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"sizes: model={args.model} prompts={args.prompts} group={args.group} max_new_tokens={args.max_new_tokens} "
          f"(sampled, forced to full length) microbatch={args.microbatch} variants={args.variants} "
          f"repeats={args.repeats} threads={args.threads} trl={args.trl} (shared machine: compare ratios only)")
    try:
        figures = summarize(args, bench(args))
    finally:
        torch.set_num_threads(threads)  # main() also runs inside test sessions
    return emit_json("rl_step", figures)


if __name__ == "__main__":
    main()
