"""``make reproduce``: a miniature of the paper's ablation, arm by arm, on real data and a real model.

Arms (same seed, same data order, same number of steps; ``ARMS``): the base model untrained;
standard SFT; SFT + MAE; PKT; MAE + PKT; MAE + PKT + IRM (PPO from the MAE + PKT model). The SFT
arms are ``python train.py fit --config configs/reproduce/sft.yaml`` with ``data.mae`` and
``data.w_max`` set per arm; the IRM arm is ``fit --config configs/reproduce/irm.yaml``; each
trained model is exported as an HF folder and scored with ``python -m tl_lightning.evaluate run``
on RoTBench First_Turn/clean, ToolAlpaca eval_real and BFCL v3 simple + multiple (TS / PI / CF),
the same seeded sample of items for every arm.

Resumable: an arm whose ``result.json`` exists is not run again; an arm killed in training goes on
from its ``last.ckpt``, one killed in evaluation from the first benchmark without a report.
Wall time per arm is summed over the attempts that ran it. Results: ``results/ablation.json``,
``results/ablation.md`` and training curves as PNG (``ablation_report.py``).

    python -m tl_lightning.reproduce                     # the committed study (what make reproduce runs)
    python -m tl_lightning.reproduce --arms base sft     # some arms only
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tl_lightning import evaluate
from tl_lightning.ablation_report import write_results
from tl_lightning.calls import ParseFailure, parse_calls
from tl_lightning.cli import main as cli_main
from tl_lightning.data.sources import data_root
from tl_lightning.evaluate import load_items, read_predictions
from tl_lightning.export import export_pretrained

SFT_CONFIG = "configs/reproduce/sft.yaml"
IRM_CONFIG = "configs/reproduce/irm.yaml"
# The paper's training data: multi-turn trajectories with real tool outputs (errors included).
TRAINING_MIX = ("SGD/train", "API-Bank/lv1-lv2-samples", "tau-bench/historical_trajectories/gpt-4o-airline.json")
# (name, benchmark, file): evaluation sets, never trained on.
EVAL_SETS = (("rotbench", "rotbench", "RoTBench/First_Turn/clean.json"),
             ("toolalpaca", "toolalpaca", "ToolAlpaca/data/eval_real.json"),
             ("bfcl_simple", "bfcl", "BFCL_v3/BFCL_v3_simple.json"),
             ("bfcl_multiple", "bfcl", "BFCL_v3/BFCL_v3_multiple.json"))


@dataclass(frozen=True)
class Arm:
    """One row of the ablation: how its model is made.

    ``train``: ``"none"`` (the base model), ``"sft"`` (``sft.yaml`` with ``mae`` and ``w_max``;
    ``w_max`` 1 is plain cross-entropy) or ``"ppo"`` (``irm.yaml`` from ``start``'s model)."""

    name: str
    label: str
    train: str = "sft"
    mae: bool = False
    w_max: float = 1.0
    start: str | None = None


ARMS = (
    Arm("base", "base model (no training)", train="none"),
    Arm("sft", "standard SFT", mae=False, w_max=1.0),
    Arm("sft_mae", "SFT + MAE", mae=True, w_max=1.0),
    Arm("pkt", "PKT", mae=False, w_max=9.0),
    Arm("mae_pkt", "MAE + PKT", mae=True, w_max=9.0),
    Arm("mae_pkt_irm", "MAE + PKT + IRM", train="ppo", start="mae_pkt"),
)
ARM_NAMES = tuple(a.name for a in ARMS)
# What the untrained base arm depends on: a new training budget does not re-evaluate it.
EVAL_FIELDS = ("model", "eval_sample", "eval_batch_size", "eval_max_batch_tokens", "max_new_tokens", "seed")


@dataclass(frozen=True)
class Budget:
    """What every arm gets; stated in the results table."""

    model: str = "smollm2-135m-instruct"
    sft_steps: int = 16
    max_length: int = 512  # longest training sample in tokens; longer trajectories are dropped (counted)
    ppo_batches: int = 6
    eval_sample: int | None = 12  # items per evaluation set (None: all)
    eval_batch_size: int = 12
    eval_max_batch_tokens: int = 4096  # padded prompt tokens per generation batch (one long prompt goes alone)
    max_new_tokens: int = 48
    seed: int = 0
    sft_config: str = SFT_CONFIG
    irm_config: str = IRM_CONFIG


@dataclass
class Progress:
    """``progress.json`` of an arm: what is done and the seconds it took, across attempts."""

    attempts: int = 0
    train_seconds: float = 0.0
    trained: bool = False
    train: dict[str, Any] = field(default_factory=dict)
    eval_seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "Progress":
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def data_paths(data_root: Path) -> list[str]:
    """The training-mix paths; a clear error when one is missing."""
    paths = [data_root / rel for rel in TRAINING_MIX]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"training data not found: {missing} (pass --data-root, the folder "
                                "holding SGD/, API-Bank/ and tau-bench/)")
    return [str(p) for p in paths]


def csv_logger(arm_dir: Path) -> str:
    """A CSVLogger writing ``<arm_dir>/logs/metrics.csv`` (a fixed version: a resumed run appends)."""
    return json.dumps({"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(arm_dir), "name": "logs", "version": 0}})


def fit_args(config: str, arm_dir: Path, budget: Budget, overrides: Sequence[str]) -> list[str]:
    """``fit`` arguments for an arm; ``--ckpt_path last`` when a checkpoint of an earlier attempt exists."""
    args = ["fit", "--config", config, f"--seed_everything={budget.seed}",
            f"--trainer.default_root_dir={arm_dir}", f"--trainer.logger={csv_logger(arm_dir)}", *overrides]
    if (arm_dir / "checkpoints" / "last.ckpt").exists():
        args.append("--ckpt_path=last")
    return args


def batch_tokens(datamodule, steps: int) -> dict[str, int]:
    """Tokens and supervised tokens of the first ``steps`` training batches (what the arm saw)."""
    seen = supervised = 0
    for i, batch in enumerate(datamodule.train_dataloader()):
        if i == steps:
            break
        seen += int(batch["attention_mask"].sum())
        supervised += int((batch["labels"] != -100).sum())
    return {"tokens": seen, "supervised_tokens": supervised}


def fit_and_export(config: str, arm_dir: Path, budget: Budget, data_root: Path, model: str | Path,
                   overrides: Sequence[str]):
    """``fit`` on the training mix from ``model`` (resuming an earlier attempt), then the trained
    model as an HF folder in ``<arm_dir>/hf_model``; returns the CLI object (trainer, model, data)."""
    common = [f"--model.init_args.model_name={model}", f"--data.data_path={json.dumps(data_paths(data_root))}",
              f"--data.max_length={budget.max_length}", f"--data.seed={budget.seed}"]
    fit = cli_main(fit_args(config, arm_dir, budget, [*common, *overrides]))
    export_pretrained(fit.model.model, fit.model.tokenizer, arm_dir / "hf_model", overwrite=True,
                      prompt_format=fit.datamodule.hparams.prompt_format)
    return fit


def train_sft(arm: Arm, arm_dir: Path, budget: Budget, data_root: Path) -> dict[str, Any]:
    """Fit the arm's SFT run and export its model; returns the run's figures."""
    fit = fit_and_export(budget.sft_config, arm_dir, budget, data_root, budget.model,
                         [f"--data.mae={str(arm.mae).lower()}", f"--data.w_max={arm.w_max}",
                          f"--trainer.max_steps={budget.sft_steps}"])
    report = fit.datamodule.report
    return {"steps": fit.trainer.global_step, "batch_size": fit.datamodule.batch_size,
            "max_length": fit.datamodule.max_length, "train_items": report["train_items"],
            "overlength_dropped": report["overlength_dropped"], "mae": report["mae"]["train"],
            **batch_tokens(fit.datamodule, fit.trainer.global_step)}


def train_ppo(arm: Arm, arm_dir: Path, budget: Budget, data_root: Path, start_model: Path) -> dict[str, Any]:
    """PPO with the IRM reward from ``start_model``; export the actor; returns the run's figures."""
    fit = fit_and_export(budget.irm_config, arm_dir, budget, data_root, start_model,
                         [f"--trainer.limit_train_batches={budget.ppo_batches}"])
    loop = fit.trainer.fit_loop.epoch_loop.batch_progress.total
    return {"rollout_batches": loop.completed, "batch_size": fit.datamodule.batch_size,
            "optimizer_steps": fit.trainer.global_step, "prompts": fit.datamodule.report["train_items"]}


def evaluate_model(model: str, arm_dir: Path, budget: Budget, data_root: Path,
                   progress: Progress, progress_path: Path) -> dict[str, dict[str, Any]]:
    """``evaluate run`` on every set not yet scored in an earlier attempt; the results by set."""
    results = {}
    for name, benchmark, rel in EVAL_SETS:
        out = arm_dir / "eval" / name
        report = out / "report.json"
        if not report.exists():
            started = time.perf_counter()
            args = ["run", "--benchmark", benchmark, "--data", str(data_root / rel), "--model", model,
                    "--batch_size", str(budget.eval_batch_size),
                    "--max_batch_tokens", str(budget.eval_max_batch_tokens), "--max_new_tokens", str(budget.max_new_tokens),
                    "--output_dir", str(out), "--seed", str(budget.seed)]
            if budget.eval_sample is not None:
                args += ["--sample", str(budget.eval_sample)]
            evaluate.main(args)
            progress.eval_seconds[name] = round(time.perf_counter() - started, 1)
            progress.save(progress_path)
        saved = json.loads(report.read_text())
        results[name] = {k: saved[k] for k in ("n", "ts", "pi", "cf", "unparsable_predictions")}
    return results


def same_budget(arm: Arm, finished: dict[str, Any] | None, budget: Budget) -> bool:
    """Whether a finished arm's budget is ``budget`` in every field that arm depends on."""
    if finished is None:
        return False
    fields = EVAL_FIELDS if arm.train == "none" else tuple(asdict(budget))
    return all(finished.get(f) == getattr(budget, f) for f in fields)


def call_diagnostics(arm_dir: Path, budget: Budget, data_root: Path) -> dict[str, int]:
    """What the arm's model emits over all scored items, beyond TS / PI / CF: ``items``; ``parsed``:
    predictions holding a call ``calls.parse_calls`` reads; ``named``: the first call names a gold
    tool exactly; ``named_ignoring_case``: the same when case is ignored (the scorers, like the
    benchmarks', need the exact name; a model that learned the call format from CamelCase training
    tools but not the listed name's case scores 0 there)."""
    counts = {"items": 0, "parsed": 0, "named": 0, "named_ignoring_case": 0}
    for name, benchmark, rel in EVAL_SETS:
        items = load_items(benchmark, data_root / rel, sample=budget.eval_sample, seed=budget.seed)
        for item, prediction in zip(items, read_predictions(arm_dir / "eval" / name / "predictions.jsonl", items)):
            gold = {call.name for calls in item.gold for call in calls}
            calls = parse_calls(prediction)
            counts["items"] += 1
            if isinstance(calls, ParseFailure):
                continue
            counts["parsed"] += 1
            counts["named"] += calls[0].name in gold
            counts["named_ignoring_case"] += calls[0].name.lower() in {g.lower() for g in gold}
    return counts


def run_arm(arm: Arm, budget: Budget, out_dir: Path, data_root: Path) -> dict[str, Any]:
    """The arm's result, from ``result.json`` when it finished before, else by running what is left."""
    arm_dir = out_dir / arm.name
    result_path = arm_dir / "result.json"
    if result_path.exists():
        result = json.loads(result_path.read_text())
        if not same_budget(arm, result.get("budget"), budget):
            raise ValueError(f"arm {arm.name!r} in {arm_dir} finished with another budget ({result.get('budget')}); "
                             "remove that folder to run it again, or pass another --output")
        print(f"[reproduce] {arm.name}: done before, not run again ({result_path})", flush=True)
        return result
    arm_dir.mkdir(parents=True, exist_ok=True)
    progress_path = arm_dir / "progress.json"
    progress = Progress.load(progress_path)
    progress.attempts += 1
    progress.save(progress_path)
    print(f"[reproduce] {arm.name} ({arm.label}): attempt {progress.attempts}", flush=True)
    if arm.train == "none":
        model = budget.model
    else:
        if not progress.trained:
            started = time.perf_counter()
            if arm.train == "sft":
                progress.train = train_sft(arm, arm_dir, budget, data_root)
            else:
                start = out_dir / str(arm.start) / "hf_model"
                if not (out_dir / str(arm.start) / "result.json").exists():
                    raise RuntimeError(f"arm {arm.name!r} starts from arm {arm.start!r}'s model: run that arm first")
                progress.train = train_ppo(arm, arm_dir, budget, data_root, start)
            progress.train_seconds += round(time.perf_counter() - started, 1)
            progress.trained = True
            progress.save(progress_path)
        model = str(arm_dir / "hf_model")
    scores = evaluate_model(model, arm_dir, budget, data_root, progress, progress_path)
    result = {"arm": arm.name, "label": arm.label, "settings": asdict(arm), "budget": asdict(budget),
              "train": progress.train,
              "train_seconds": progress.train_seconds, "eval_seconds": round(sum(progress.eval_seconds.values()), 1),
              "attempts": progress.attempts, "scores": scores}
    result["wall_seconds"] = round(result["train_seconds"] + result["eval_seconds"], 1)
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Budget()
    parser = argparse.ArgumentParser(prog="python -m tl_lightning.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", nargs="+", choices=ARM_NAMES, default=list(ARM_NAMES),
                        help="arms to run (in the study's order); the results cover every finished arm")
    parser.add_argument("--data-root", type=Path, default=data_root(),
                        help="folder holding SGD/, API-Bank/, tau-bench/, RoTBench/, ToolAlpaca/, BFCL_v3/")
    parser.add_argument("--output", type=Path, default=Path("runs/reproduce"), help="run folders, one per arm")
    parser.add_argument("--results", type=Path, default=Path("results"), help="where ablation.md/.json and PNGs go")
    parser.add_argument("--model", default=defaults.model, help="base model: built-in name, HF id or folder")
    parser.add_argument("--sft-steps", type=int, default=defaults.sft_steps, help="optimizer steps of each SFT arm")
    parser.add_argument("--max-length", type=int, default=defaults.max_length,
                        help="longest training sample in tokens (longer trajectories are dropped and counted)")
    parser.add_argument("--ppo-batches", type=int, default=defaults.ppo_batches, help="rollout batches of the IRM arm")
    parser.add_argument("--eval-sample", type=int, default=defaults.eval_sample,
                        help="items drawn per evaluation set (0: every item)")
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--sft-config", default=defaults.sft_config)
    parser.add_argument("--irm-config", default=defaults.irm_config)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    budget = Budget(model=args.model, sft_steps=args.sft_steps, max_length=args.max_length, ppo_batches=args.ppo_batches,
                    eval_sample=args.eval_sample or None, max_new_tokens=args.max_new_tokens,
                    sft_config=args.sft_config, irm_config=args.irm_config)
    args.output.mkdir(parents=True, exist_ok=True)
    for arm in ARMS:
        if arm.name in args.arms:
            run_arm(arm, budget, args.output, args.data_root)
    finished = []
    for arm in ARMS:  # every finished arm of this budget, also those not run by this call
        path = args.output / arm.name / "result.json"
        result = json.loads(path.read_text()) if path.exists() else None
        if result is not None and same_budget(arm, result.get("budget"), budget):
            finished.append(result)
        elif result is not None:
            print(f"[reproduce] {arm.name}: finished with another budget, left out of the results ({path})", flush=True)
    for result in finished:
        result["emitted"] = call_diagnostics(args.output / result["arm"], budget, args.data_root)
    return write_results(finished, asdict(budget), args.output, args.results)


if __name__ == "__main__":
    main()
