"""Wall time of one PPO iteration of ``IRMPPOModule``, split into phases, as the batch grows; and,
where TRL is importable, the same iteration with TRL's PPO trainer side by side.

What runs is the real module: ``IRMPPOModule.training_step`` inside a Lightning ``Trainer``
(manual optimization, CPU, float32); its phases are the module's own ``phase_seconds``, which add
up to the step's wall time (logging aside):

- ``generation``: ``generation.generate`` (batched greedy ``generate`` with the KV cache);
- ``scoring``: ``score_responses`` (decoded responses against the gold calls, IRM reward);
- ``passes``: the no-grad log-prob / value passes (actor, reference = actor with its adapters
  off, critic), the KL-penalized rewards and GAE: everything before the first update;
- ``updates``: the policy and value updates (forwards, backwards, clipping, AdamW).

The rollout cost is generation + scoring + passes. Setup: SmolLM2-135M-Instruct, LoRA r=8
(alpha 16, no dropout, q/k/v/o) for the actor, the critic a second adapter over the same frozen
base (``critic_layout="shared_lora"``), 1 PPO epoch, updates in minibatches of
``--minibatch-size`` rows (the demo config's 2, which bounds the activation memory of the
updates), the authors' learning rates and KL coefficient. Prompts: the first training batch of
``max(batch sizes)`` single-turn prompts of the built-in synthetic world
(``ToolUseDataModule(stage="rl")``, length-bucketed as in training, the paper's codellama prompt:
332-344 tokens with the SmolLM2 tokenizer): batch b is one step on the first b of them,
left-padded to the longest (their lengths are printed and in the JSON line). Generation is greedy
and forced to full length (``min_new_tokens = max_new_tokens``, 32: eos is suppressed until then)
so every row of every batch size generates the same number of tokens; the table shows the
generated width and the mean response length.

The batch sizes (and TRL) alternate in ABBA order over ``--repeats`` rounds after one untimed
warm-up step at the smallest batch (and one TRL iteration); figures are medians with their
[min-max] spread, ratios the median of per-round ratios. ``rollout_ratio`` = per-sample rollout
cost at the largest batch / at the smallest (``rollout_ratio_batches``; the target at 8 vs 1:
<= 0.3). On the shared 2-core machine one round of the default setting takes about 8 minutes
(SmolLM2 at 1 thread: ~25 s per sample), hence ``--repeats 1`` by default; a quieter or bigger
machine should use ``--repeats 3``.

TRL (optional; skipped with the reason printed when ``import trl`` fails or it has no
``PPOTrainer.step``). TRL is not a project dependency: trl 1.x has no PPO trainer; trl 0.11.4, the
last release with ``PPOTrainer.step(queries, responses, scores)`` taking scalar scores, imports and
runs beside transformers 5.23 / torch 2.13 when installed aside, e.g.
``pip install --target /tmp/trl_pkgs --no-deps trl==0.11.4 datasets pyarrow pandas dill xxhash
multiprocess tyro docstring-parser typeguard shtab python-dateutil pytz tzdata six`` and
``PYTHONPATH=/tmp/trl_pkgs python -m benchmarks.ppo_step``. Same model, LoRA, prompts, greedy
full-length generation, IRM scores (ours), batch, minibatch, PPO epoch, KL coefficient and clip
ranges. TRL's design differs where it is TRL's: its value head sits on the actor's own adapter
(2 no-grad passes: actor+value, reference; one combined update per minibatch), ours is a separate
critic adapter (3 passes; separate policy and value updates); its passes project every position
onto the vocabulary, ours only the response positions. Its phases come from its own
``time/ppo/*`` stats (passes = forward pass + rewards + advantages; updates = the rest of
``step``). ``trl_ratio`` = TRL iteration / ours at the same batch (``--trl-batch-size``, default 4
to keep a round short).

The machine is shared (2 cores, other jobs running): compare only the ratios of one run.

Run from the repository root: ``python -m benchmarks.ppo_step`` (``--quick`` for a smoke run on
tiny-llama with few tokens).
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence
from unittest import mock

import torch

from benchmarks._timing import Spread, emit_json, fmt, interleaved, paired_ratio, print_table, spread
from tl_lightning import ppo
from tl_lightning.generation import Rollout, StopRule
from tl_lightning.data.datamodule import PromptSample, ToolUseDataModule, collate_prompts
from tl_lightning.modeling import SMOLLM2, TINY_LLAMA, LoraOptions, resolve_model_path
from tl_lightning.rollouts import score_responses

PHASES = ("generation", "scoring", "passes", "updates")
ROLLOUT_PHASES = ("generation", "scoring", "passes")
LORA = LoraOptions(dropout=0.0)  # the demo configs' adapter: r=8, alpha 16 on q/k/v/o, no dropout


# ------------------------------------------------------------------------------ the module


def build_module(model_name: str, max_new_tokens: int, minibatch_size: int | None,
                 critic_layout: str = "shared_lora", lora: LoraOptions | None = LORA) -> ppo.IRMPPOModule:
    """An ``IRMPPOModule`` with its models loaded (greedy, 1 PPO epoch, float32)."""
    module = ppo.IRMPPOModule(model_name=model_name, dtype="float32", lora=lora, critic_layout=critic_layout,
                              ppo_epochs=1, minibatch_size=minibatch_size, max_new_tokens=max_new_tokens,
                              do_sample=False)
    module.configure_model()
    return module


def rl_prompts(tokenizer: Any, n: int, prompt_format: str = "codellama") -> list[PromptSample]:
    """The prompts of the first training batch of ``n`` of ``ToolUseDataModule(stage="rl")`` on
    the synthetic world: length-bucketed, as training would batch them."""
    dm = ToolUseDataModule(stage="rl", synthetic_size=max(64, 2 * n), prompt_format=prompt_format,
                           max_length=1024, batch_size=n, val_fraction=0.0)
    dm.connect(tokenizer)
    dm.setup("fit")
    ids = next(iter(dm.train_dataloader()))["ids"]
    if len(ids) < n:
        raise ValueError(f"the synthetic world gave {len(ids)} prompts, {n} asked")
    by_id = {p.id: p for p in dm.train_items}
    return [by_id[i] for i in ids]


def prompt_batch(prompts: Sequence[PromptSample], batch_size: int, pad_id: int) -> dict[str, Any]:
    """The first ``batch_size`` prompts as one ``stage="rl"`` batch (left-padded to the longest)."""
    return collate_prompts(list(prompts[:batch_size]), pad_id)


def force_full_length(model: torch.nn.Module, max_new_tokens: int) -> None:
    """Make ``model.generate`` suppress eos until ``max_new_tokens`` tokens, so every batch size
    generates the same number of tokens per prompt (greedy generation stops at eos otherwise)."""
    generate = model.generate

    def full_length_generate(*args: Any, generation_config: Any, **kwargs: Any) -> torch.Tensor:
        config = copy.deepcopy(generation_config)
        config.min_new_tokens = max_new_tokens
        return generate(*args, generation_config=config, **kwargs)

    model.generate = full_length_generate


def quiet_trainer(accelerator: str = "cpu"):
    """A one-epoch Lightning ``Trainer`` that prints nothing and saves nothing."""
    import lightning.pytorch as pl

    return pl.Trainer(accelerator=accelerator, devices=1, precision="32-true", max_epochs=1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=0, log_every_n_steps=1)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Without Lightning's banners and its warnings about the benchmark's tiny fits (no val
    loader, few steps); the logger level and warning filters are restored afterwards."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="lightning")
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            yield
    finally:
        logger.setLevel(level)


# ----------------------------------------------------------------------- phase timing (ours)


@dataclass
class StepTimes:
    """Phase seconds of one ``training_step`` on ``batch`` prompts that generated ``width`` tokens
    (response columns) with ``response_tokens`` of them in the response masks."""

    batch: int
    width: int
    response_tokens: int
    seconds: dict[str, float]


@dataclass
class PhaseRecorder:
    """Records each ``IRMPPOModule.training_step``'s phase seconds while ``installed``."""

    steps: list[StepTimes] = field(default_factory=list)
    _rollout: Rollout | None = None

    @contextmanager
    def installed(self, module: ppo.IRMPPOModule) -> Iterator["PhaseRecorder"]:
        """Wrap ``generate`` (a module global the step looks up at call time; its rollout gives the
        widths) and the module's ``training_step``."""
        with ExitStack() as stack:
            stack.enter_context(mock.patch.object(ppo, "generate", self._keep_rollout(ppo.generate)))
            stack.enter_context(mock.patch.object(module, "training_step", self._step(module, module.training_step)))
            yield self

    def _keep_rollout(self, fn: Callable) -> Callable:
        def kept(*args: Any, **kwargs: Any) -> Rollout:
            self._rollout = fn(*args, **kwargs)
            return self._rollout
        return kept

    def _step(self, module: ppo.IRMPPOModule, fn: Callable) -> Callable:
        def timed(batch: dict[str, Any], batch_idx: int) -> Any:
            result = fn(batch, batch_idx)
            mask = self._rollout.response_mask
            self.steps.append(StepTimes(mask.shape[0], mask.shape[1], int(mask.sum()), dict(module.phase_seconds)))
            return result
        return timed


def as_is(item: Any) -> Any:
    """A DataLoader ``collate_fn`` for items that are batches already."""
    return item


def run_ours(module: ppo.IRMPPOModule, recorder: PhaseRecorder, batches: list[dict[str, Any]]) -> list[StepTimes]:
    """One Lightning fit over ``batches`` (one PPO iteration each); their phase times."""
    from torch.utils.data import DataLoader

    first = len(recorder.steps)
    # batch_size=None and no collation: the items are batches (holding frozen dataclasses)
    quiet_trainer().fit(module, train_dataloaders=DataLoader(batches, batch_size=None, collate_fn=as_is))
    return recorder.steps[first:]


# ------------------------------------------------------------------------------------ TRL


def trl_unavailable_reason() -> str | None:
    """Why TRL's classic PPO cannot run here, or None when it can."""
    try:
        import trl
    except ImportError as e:
        return f"trl is not installed ({e}); see the module docstring for an install beside the project"
    try:
        from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer  # noqa: F401
    except ImportError as e:
        return f"trl {trl.__version__} has no classic PPOTrainer ({e}); trl <= 0.11 has one"
    if not hasattr(PPOTrainer, "step"):
        return f"trl {trl.__version__}'s PPOTrainer has no step(queries, responses, scores) (trl <= 0.11 has)"
    return None


class TRLIteration:
    """One PPO iteration with TRL's classic ``PPOTrainer`` on the same prompts, model, LoRA and
    settings: ``generate``, our IRM scores, ``step``. Calling it returns its phase seconds."""

    def __init__(self, model_name: str, tokenizer: Any, prompts: Sequence[PromptSample], max_new_tokens: int,
                 minibatch_size: int | None, ours: ppo.IRMPPOModule) -> None:
        from peft import LoraConfig
        from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer

        hp = ours.hparams  # the same PPO settings as our module's
        model = AutoModelForCausalLMWithValueHead.from_pretrained(
            resolve_model_path(model_name), peft_config=LoraConfig(
                r=LORA.r, lora_alpha=LORA.alpha, lora_dropout=LORA.dropout, target_modules=list(LORA.target_modules),
                task_type="CAUSAL_LM"))
        model.to(torch.float32)
        B = len(prompts)
        config = PPOConfig(batch_size=B, mini_batch_size=min(minibatch_size or B, B), ppo_epochs=hp.ppo_epochs,
                           learning_rate=hp.actor_lr, init_kl_coef=hp.kl_coef, adap_kl_ctrl=False,
                           cliprange=hp.policy_clip, cliprange_value=hp.value_clip, gamma=hp.gamma, lam=hp.lam,
                           max_grad_norm=hp.gradient_clip_val, seed=hp.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its deprecation notices (PPOv2) and "no dataset" note
            self.trainer = PPOTrainer(config, model, ref_model=None, tokenizer=tokenizer)
        self.tokenizer, self.prompts, self.max_new_tokens = tokenizer, list(prompts), max_new_tokens
        self.queries = [torch.tensor(p.input_ids) for p in prompts]
        self.response_lengths: list[int] = []

    def __call__(self) -> dict[str, float]:
        start = time.perf_counter()
        responses = self.trainer.generate(self.queries, batch_size=len(self.queries), return_prompt=False,
                                          max_new_tokens=self.max_new_tokens, min_new_tokens=self.max_new_tokens,
                                          do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        generated = time.perf_counter()
        self.response_lengths = [len(r) for r in responses]
        texts = [StopRule().cut(self.tokenizer.decode(r.tolist())) for r in responses]
        scores, _ = score_responses(texts, [p.gold for p in self.prompts], [p.tools for p in self.prompts])
        scored = time.perf_counter()
        stats = self.trainer.step(self.queries, responses, list(scores))
        end = time.perf_counter()
        passes = sum(float(stats[f"time/ppo/{k}"]) for k in ("forward_pass", "compute_rewards", "compute_advantages"))
        return {"generation": generated - start, "scoring": scored - generated, "passes": passes,
                "updates": end - scored - passes}


# ------------------------------------------------------------------------------ the benchmark


def rollout_seconds(step: dict[str, float]) -> float:
    return sum(step[p] for p in ROLLOUT_PHASES)


@dataclass
class Series:
    """Per-round figures of one variant: phase seconds per sample and iteration seconds per sample."""

    per_sample: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in (*PHASES, "rollout", "total")})
    width: int = 0
    response_tokens: float = 0.0

    def add(self, phases: dict[str, float], samples: int) -> None:
        for p in PHASES:
            self.per_sample[p].append(phases[p] / samples)
        self.per_sample["rollout"].append(rollout_seconds(phases) / samples)
        self.per_sample["total"].append(sum(phases.values()) / samples)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved rounds over the batch sizes (and TRL); the per-variant series."""
    module = build_module(args.model, args.max_new_tokens, args.minibatch_size)
    tokenizer = module.tokenizer
    force_full_length(module.actor, args.max_new_tokens)
    prompts = rl_prompts(tokenizer, max(args.batch_sizes), args.prompt_format)
    batches = {b: prompt_batch(prompts, b, tokenizer.pad_token_id) for b in args.batch_sizes}
    recorder = PhaseRecorder()
    series: dict[str, Series] = {}

    def reported(name: str, samples: int, phases: dict[str, float]) -> float:
        series[name].add(phases, samples)
        seconds = sum(phases.values())
        print(f"  {name}: {seconds:.1f} s ({', '.join(f'{p} {phases[p]:.1f}' for p in PHASES)})", flush=True)
        return seconds

    def ours(b: int) -> Callable[[], float]:
        def run() -> float:
            (step,) = run_ours(module, recorder, [batches[b]])
            series[f"batch {b}"].width, series[f"batch {b}"].response_tokens = step.width, step.response_tokens / b
            return reported(f"batch {b}", b, step.seconds)
        return run

    variants = {f"batch {b}": ours(b) for b in args.batch_sizes}
    trl_reason = trl_unavailable_reason() if args.trl else "--no-trl"
    if trl_reason is None:
        trl_iteration = TRLIteration(args.model, tokenizer, prompts[:args.trl_batch_size], args.max_new_tokens,
                                     args.minibatch_size, module)

        def trl_run() -> float:
            seconds = reported("trl", args.trl_batch_size, trl_iteration())
            lengths = trl_iteration.response_lengths
            series["trl"].width, series["trl"].response_tokens = max(lengths), sum(lengths) / len(lengths)
            return seconds

        variants["trl"] = trl_run
    with recorder.installed(module), quiet_lightning():
        trl_warmup = ", one TRL iteration" if "trl" in variants else ""
        print(f"warm-up (untimed): one step at the smallest batch{trl_warmup}", flush=True)
        run_ours(module, recorder, [batches[args.batch_sizes[0]]])
        if "trl" in variants:
            trl_iteration()
        series.update({name: Series() for name in variants})
        interleaved(variants, repeats=args.repeats, warmup=0)
    return {"series": series, "trl_reason": trl_reason, "prompt_tokens": [len(p.input_ids) for p in prompts]}


def summarize(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    """Print the tables; the JSON figures."""
    series: dict[str, Series] = result["series"]
    b1, bmax = f"batch {min(args.batch_sizes)}", f"batch {max(args.batch_sizes)}"
    rows, figures_by_batch = [], {}
    for name, s in series.items():
        samples = args.trl_batch_size if name == "trl" else int(name.split()[1])
        total = s.per_sample["total"]
        throughput = spread([1.0 / t for t in total])
        vs1 = paired_ratio(s.per_sample["rollout"], series[b1].per_sample["rollout"])
        rows.append([name if name != "trl" else f"TRL batch {samples}", s.width, f"{s.response_tokens:.1f}",
                     *(fmt(spread(s.per_sample[p]), 1e3, 0) for p in (*PHASES, "rollout")),
                     fmt(throughput, digits=3), "-" if name == "trl" else fmt(vs1)])
        figures_by_batch[name] = {
            "per_sample_ms": {p: round(spread(v).median * 1e3, 2) for p, v in s.per_sample.items()},
            "per_sample_rollout_ms_spread": spread(s.per_sample["rollout"]).to_dict(5),
            "samples_per_s": round(throughput.median, 4), "samples_per_s_spread": throughput.to_dict(4),
            "rollout_vs_batch1": None if name == "trl" else round(vs1.median, 4), "generated_width": s.width,
            "mean_response_tokens": round(s.response_tokens, 2)}
    print_table(f"PPO iteration per sample, ms: median [min-max] over {args.repeats} rounds ({args.model}, "
                f"{len(result['prompt_tokens'])} prompts of {min(result['prompt_tokens'])}-"
                f"{max(result['prompt_tokens'])} tokens, {args.max_new_tokens} new tokens, minibatch "
                f"{args.minibatch_size}); rollout = generation + scoring + passes",
                ["variant", "width", "resp tok", *PHASES, "rollout", "samples/s", "rollout vs batch 1"], rows)
    ratio: Spread = paired_ratio(series[bmax].per_sample["rollout"], series[b1].per_sample["rollout"])
    print(f"  per-sample rollout cost, {bmax} / {b1}: {fmt(ratio)} (target <= 0.3)")
    figures: dict[str, Any] = {
        "model": args.model, "max_new_tokens": args.max_new_tokens, "minibatch_size": args.minibatch_size,
        "prompt_format": args.prompt_format, "prompt_tokens": result["prompt_tokens"], "repeats": args.repeats,
        "threads": args.threads, "machine": "shared CPU (other jobs running)",
        "rollout_ratio": round(ratio.median, 4), "rollout_ratio_spread": ratio.to_dict(4),
        "rollout_ratio_batches": [max(args.batch_sizes), min(args.batch_sizes)],
        "by_batch": figures_by_batch, "trl": None, "trl_skipped": result["trl_reason"]}
    if "trl" in series:
        ours_key = f"batch {args.trl_batch_size}"
        trl_ratio = paired_ratio(series["trl"].per_sample["total"], series[ours_key].per_sample["total"])
        trl_rollout = paired_ratio(series["trl"].per_sample["rollout"], series[ours_key].per_sample["rollout"])
        import trl

        figures["trl"] = {"version": trl.__version__, "batch": args.trl_batch_size,
                          "trl_ratio": round(trl_ratio.median, 4), "trl_ratio_spread": trl_ratio.to_dict(4),
                          "trl_rollout_ratio": round(trl_rollout.median, 4)}
        print(f"  TRL {trl.__version__} / ours at batch {args.trl_batch_size}: iteration {fmt(trl_ratio)}, "
              f"rollout {fmt(trl_rollout)}")
    else:
        print(f"  TRL comparison skipped: {result['trl_reason']}")
    return figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=SMOLLM2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--minibatch-size", type=int, default=2, help="rows per PPO update (0 = the whole batch)")
    parser.add_argument("--prompt-format", default="codellama", choices=["codellama", "chat_template"])
    parser.add_argument("--repeats", type=int, default=1, help="rounds (one takes ~8 min on the shared machine)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on the shared 2-core machine, 2 threads contend with the other "
                             "jobs and their OpenMP barriers make the timings erratic)")
    parser.add_argument("--no-trl", dest="trl", action="store_false", help="skip the TRL comparison")
    parser.add_argument("--trl-batch-size", type=int, default=4,
                        help="batch of the TRL comparison (one of --batch-sizes; else the largest)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny-llama, batches 1 and 2, 4 tokens, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.batch_sizes, args.max_new_tokens, args.repeats = TINY_LLAMA, [1, 2], 4, 1
    args.batch_sizes = sorted(set(args.batch_sizes))
    if args.batch_sizes[0] < 1 or args.max_new_tokens < 1 or args.repeats < 1:
        parser.error("batch sizes, --max-new-tokens and --repeats must be >= 1")
    args.minibatch_size = args.minibatch_size or None
    if args.trl_batch_size not in args.batch_sizes:
        args.trl_batch_size = args.batch_sizes[-1]
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"sizes: model={args.model} batch_sizes={args.batch_sizes} max_new_tokens={args.max_new_tokens} "
          f"(greedy, forced to full length) minibatch={args.minibatch_size} prompt_format={args.prompt_format} "
          f"repeats={args.repeats} threads={args.threads} (shared machine: compare ratios only)")
    try:
        figures = summarize(args, bench(args))
    finally:
        torch.set_num_threads(threads)  # main() also runs inside test sessions
    return emit_json("ppo_step", figures)


if __name__ == "__main__":
    main()
