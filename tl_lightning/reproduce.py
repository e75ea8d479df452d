"""``make reproduce``: the paper's ablation in miniature, on real data and a real model, with seeds,
intervals and paired differences.

Arms (``ARMS``), all at the same data, steps and learning rate: the base model untrained; standard
SFT; SFT + MAE; PKT; MAE + PKT; MAE + PKT + IRM (RL with the IRM reward from the MAE + PKT model of
the same seed). Standard SFT and the full method run with several seeds (``Budget.seeds``), the
other arms with the first. An SFT run is ``python train.py fit --config configs/reproduce/sft.yaml``
with ``data.mae`` and ``data.w_max`` set per arm; the IRM run ``fit --config
configs/reproduce/irm.yaml``; each trained model is exported as an HF folder and scored with
``python -m tl_lightning.evaluate run`` on the same items of every evaluation set (``EVAL_SETS``).

Training data (``TRAINING_MIX``): the synthetic world's training domains (with failed calls, so MAE
has something to drop), Seal-Tools dev and API-Bank level 1: never a benchmark's test items.
Evaluation: the synthetic world's held-out domains, BFCL v3 simple and multiple, Seal-Tools
test_in_domain, ToolAlpaca eval_real and RoTBench First_Turn/clean (the paper's sets, far out of
domain at this scale), each a seeded sample of ``Budget.eval_items[set]`` items.

Resumable: a run (arm, seed) whose ``result.json`` exists is not run again; one killed in
training goes on from its ``last.ckpt``, one killed in evaluation from the first set without a
report. ``--jobs 2`` runs two runs at a time as subprocesses of one thread each (on 2 cores that
is faster than one run on two threads); an IRM run waits for its MAE + PKT run. Results:
``results/ablation.json``, ``results/ablation.md`` and PNGs (``ablation_report.py``).

    python -m tl_lightning.reproduce                       # the committed study (make reproduce)
    python -m tl_lightning.reproduce --arms base sft       # some arms only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tl_lightning import evaluate
from tl_lightning.ablation_report import write_results
from tl_lightning.cli import main as cli_main
from tl_lightning.data.sources import data_root
from tl_lightning.export import export_pretrained
from tl_lightning.study import (ARM_NAMES, ARMS, EVAL_SETS, SET_NAMES, SYNTHETIC_TRAIN, TRAINING_FILES,
                                Arm)

SFT_CONFIG = "configs/reproduce/sft.yaml"
IRM_CONFIG = "configs/reproduce/irm.yaml"
@dataclass(frozen=True)
class Budget:
    """What every run gets; stated in the results."""

    model: str = "smollm2-135m-instruct"
    seeds: tuple[int, ...] = (0, 1, 2)
    sft_steps: int = 50
    batch_size: int = 4
    max_length: int = 768  # longest training sample in tokens; longer ones are dropped (counted)
    rl_batches: int = 4
    eval_items: dict[str, int] = field(default_factory=lambda: {
        "synthetic": 100, "bfcl_simple": 80, "bfcl_multiple": 40, "sealtools": 50, "toolalpaca": 15,
        "rotbench": 15})
    eval_batch_size: int = 16
    eval_max_batch_tokens: int = 8192
    max_new_tokens: int = 96
    sft_config: str = SFT_CONFIG
    irm_config: str = IRM_CONFIG

    def eval_fields(self) -> dict[str, Any]:
        """What the untrained base arm depends on: a new training budget does not re-evaluate it."""
        return {k: v for k, v in asdict(self).items()
                if k in ("model", "eval_items", "eval_batch_size", "eval_max_batch_tokens", "max_new_tokens")}


@dataclass
class Progress:
    """``progress.json`` of a run: what is done and the seconds it took, across attempts."""

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


@dataclass(frozen=True)
class Run:
    """One trained (or evaluated) model: an arm at a seed, in ``<output>/<arm>/seed<seed>``."""

    arm: Arm
    seed: int

    @property
    def name(self) -> str:
        return f"{self.arm.name}:{self.seed}"

    def folder(self, output: Path) -> Path:
        return output / self.arm.name / f"seed{self.seed}"


def plan(arms: Sequence[str], budget: Budget) -> list[Run]:
    """The runs of ``arms`` in the study's order (seeded arms once per seed)."""
    return [Run(arm, seed) for arm in ARMS if arm.name in arms
            for seed in (budget.seeds if arm.seeded else budget.seeds[:1])]


def training_paths(data_root: Path) -> list[str]:
    """The training mix: the synthetic world's train split and the files under ``data_root``; a
    clear error when one is missing."""
    files = [data_root / rel for rel in TRAINING_FILES]
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        raise FileNotFoundError(f"training data not found: {missing} (pass --data-root, the folder holding "
                                "Seal-Tools/, API-Bank/, BFCL_v3/, ToolAlpaca/ and RoTBench/, or set TL_LIGHTNING_DATA)")
    return [SYNTHETIC_TRAIN, *map(str, files)]


def eval_data(data: str, data_root: Path) -> str:
    """An evaluation set's data argument: built-in world strings as they are, files under the root."""
    return data if data.startswith("synthetic") else str(data_root / data)


def csv_logger(run_dir: Path) -> str:
    """A CSVLogger writing ``<run_dir>/logs/metrics.csv`` (a fixed version: a resumed run appends)."""
    return json.dumps({"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(run_dir), "name": "logs", "version": 0}})


def fit_args(config: str, run_dir: Path, seed: int, overrides: Sequence[str]) -> list[str]:
    """``fit`` arguments for a run; ``--ckpt_path last`` when a checkpoint of an earlier attempt exists."""
    args = ["fit", "--config", config, f"--seed_everything={seed}", f"--trainer.default_root_dir={run_dir}",
            f"--trainer.logger={csv_logger(run_dir)}", *overrides]
    if (run_dir / "checkpoints" / "last.ckpt").exists():
        args.append("--ckpt_path=last")
    return args


def batch_tokens(datamodule, steps: int) -> dict[str, int]:
    """Tokens and supervised tokens of the first ``steps`` training batches (what the run saw)."""
    seen = supervised = 0
    for i, batch in enumerate(datamodule.train_dataloader()):
        if i == steps:
            break
        seen += int(batch["attention_mask"].sum())
        supervised += int((batch["labels"] != -100).sum())
    return {"tokens": seen, "supervised_tokens": supervised}


def fit_and_export(config: str, run: Run, run_dir: Path, budget: Budget, data_root: Path, model: str | Path,
                   overrides: Sequence[str]):
    """``fit`` on the training mix from ``model`` (resuming an earlier attempt), then the trained
    model as an HF folder in ``<run_dir>/hf_model``; returns the CLI object (trainer, model, data)."""
    common = [f"--model.init_args.model_name={model}", f"--model.init_args.seed={run.seed}",
              f"--data.data_path={json.dumps(training_paths(data_root))}", f"--data.max_length={budget.max_length}",
              f"--data.batch_size={budget.batch_size}", f"--data.seed={run.seed}"]
    fit = cli_main(fit_args(config, run_dir, run.seed, [*common, *overrides]))
    export_pretrained(fit.model.model, fit.model.tokenizer, run_dir / "hf_model", overwrite=True,
                      prompt_format=fit.datamodule.hparams.prompt_format)
    return fit


def train(run: Run, run_dir: Path, budget: Budget, output: Path, data_root: Path) -> dict[str, Any]:
    """Fit the run's model and export it; returns what it saw."""
    arm = run.arm
    if arm.train == "sft":
        fit = fit_and_export(budget.sft_config, run, run_dir, budget, data_root, budget.model,
                             [f"--data.mae={str(arm.mae).lower()}", f"--data.w_max={arm.w_max}",
                              f"--trainer.max_steps={budget.sft_steps}"])
        report = fit.datamodule.report
        return {"steps": fit.trainer.global_step, "train_items": report["train_items"],
                "overlength_dropped": report["overlength_dropped"], "mae": report["mae"]["train"],
                **batch_tokens(fit.datamodule, fit.trainer.global_step)}
    start = Run(next(a for a in ARMS if a.name == arm.start), run.seed)
    if not (start.folder(output) / "result.json").exists():
        raise RuntimeError(f"run {run.name} starts from run {start.name}'s model: run that first")
    fit = fit_and_export(budget.irm_config, run, run_dir, budget, data_root, start.folder(output) / "hf_model",
                         [f"--trainer.limit_train_batches={budget.rl_batches}"])
    return {"rollout_batches": fit.trainer.fit_loop.epoch_loop.batch_progress.total.completed,
            "optimizer_steps": fit.trainer.global_step, "prompts": fit.datamodule.report["train_items"],
            "estimator": fit.model.hparams.advantage_estimator}


def evaluate_model(model: str, run_dir: Path, budget: Budget, data_root: Path, progress: Progress,
                   progress_path: Path) -> dict[str, dict[str, Any]]:
    """``evaluate run`` on every set not yet scored in an earlier attempt; the figures by set."""
    results = {}
    for name, benchmark, data in EVAL_SETS:
        out = run_dir / "eval" / name
        report = out / "report.json"
        if not report.exists():
            started = time.perf_counter()
            evaluate.main(["run", "--benchmark", benchmark, "--data", eval_data(data, data_root), "--model", model,
                           "--sample", str(budget.eval_items[name]), "--seed", "0",
                           "--batch_size", str(budget.eval_batch_size),
                           "--max_batch_tokens", str(budget.eval_max_batch_tokens),
                           "--max_new_tokens", str(budget.max_new_tokens), "--output_dir", str(out)])
            progress.eval_seconds[name] = round(time.perf_counter() - started, 1)
            progress.save(progress_path)
        saved = json.loads(report.read_text())
        results[name] = {k: saved[k] for k in ("n", "ts", "pi", "cf", "exact_call", "mean_reward", "ci",
                                               "categories", "unparsable_predictions")}
    return results


def same_budget(run: Run, finished: dict[str, Any] | None, budget: Budget) -> bool:
    """Whether a finished run's budget is ``budget`` in every field that run depends on."""
    if finished is None:
        return False
    wanted = budget.eval_fields() if run.arm.train == "none" else json.loads(json.dumps(asdict(budget)))
    return all(finished.get(k) == v for k, v in wanted.items())


def run_one(run: Run, budget: Budget, output: Path, data_root: Path) -> dict[str, Any]:
    """The run's result, from ``result.json`` when it finished before, else by running what is left."""
    run_dir = run.folder(output)
    result_path = run_dir / "result.json"
    if result_path.exists():
        result = json.loads(result_path.read_text())
        if not same_budget(run, result.get("budget"), budget):
            raise ValueError(f"run {run.name} in {run_dir} finished with another budget; remove that folder to "
                             "run it again, or pass another --output")
        print(f"[reproduce] {run.name}: done before, not run again ({result_path})", flush=True)
        return result
    run_dir.mkdir(parents=True, exist_ok=True)
    progress_path = run_dir / "progress.json"
    progress = Progress.load(progress_path)
    progress.attempts += 1
    progress.save(progress_path)
    print(f"[reproduce] {run.name} ({run.arm.label}): attempt {progress.attempts}", flush=True)
    model = budget.model
    if run.arm.train != "none":
        if not progress.trained:
            started = time.perf_counter()
            progress.train = train(run, run_dir, budget, output, data_root)
            progress.train_seconds += round(time.perf_counter() - started, 1)
            progress.trained = True
            progress.save(progress_path)
        model = str(run_dir / "hf_model")
    scores = evaluate_model(model, run_dir, budget, data_root, progress, progress_path)
    result = {"arm": run.arm.name, "label": run.arm.label, "seed": run.seed, "settings": asdict(run.arm),
              "budget": asdict(budget), "train": progress.train, "train_seconds": progress.train_seconds,
              "eval_seconds": round(sum(progress.eval_seconds.values()), 1), "attempts": progress.attempts,
              "scores": scores}
    result["wall_seconds"] = round(result["train_seconds"] + result["eval_seconds"], 1)
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


# ---------------------------------------------------------------------------------------------
# running several runs at a time


def run_argv(args: argparse.Namespace) -> list[str]:
    """The options that make a subprocess run with this call's budget, data and folders."""
    argv = ["--data-root", str(args.data_root), "--output", str(args.output), "--model", args.model,
            "--seeds", *map(str, args.seeds), "--sft-steps", str(args.sft_steps), "--rl-batches", str(args.rl_batches),
            "--max-new-tokens", str(args.max_new_tokens), "--sft-config", args.sft_config,
            "--irm-config", args.irm_config]
    return argv + ([] if args.eval_items is None else ["--eval-items", str(args.eval_items)])


def run_in_subprocesses(runs: Sequence[Run], jobs: int, argv: Sequence[str], output: Path) -> None:
    """Run ``runs`` as subprocesses (``--only arm:seed`` plus ``argv``), ``jobs`` at a time with
    ``cores // jobs`` threads each; an RL run starts once its start run has finished.
    Each subprocess logs to ``<run>/stdout.log``; a failed one stops the study with its name."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    waiting, active = list(runs), {}
    while waiting or active:
        for run in list(waiting):
            start_done = run.arm.start is None or (Run(next(a for a in ARMS if a.name == run.arm.start), run.seed)
                                                   .folder(output) / "result.json").exists()
            if len(active) < jobs and start_done:
                waiting.remove(run)
                run.folder(output).mkdir(parents=True, exist_ok=True)
                log = open(run.folder(output) / "stdout.log", "a")
                env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
                active[run] = (subprocess.Popen([sys.executable, "-m", "tl_lightning.reproduce", *argv,
                                                 "--only", run.name, "--no-report"],
                                                stdout=log, stderr=subprocess.STDOUT, env=env), log)
                print(f"[reproduce] {run.name}: started ({threads} thread(s), log {log.name})", flush=True)
        for run, (process, log) in list(active.items()):
            if process.poll() is not None:
                log.close()
                del active[run]
                if process.returncode != 0:
                    for other, _ in active.values():
                        other.terminate()
                    raise RuntimeError(f"run {run.name} failed (exit {process.returncode}); see {log.name}")
                print(f"[reproduce] {run.name}: finished", flush=True)
        if waiting and not active:
            raise RuntimeError(f"runs {[r.name for r in waiting]} wait for runs that are not part of this call")
        time.sleep(2)


def finished_results(output: Path, budget: Budget) -> list[dict[str, Any]]:
    """Every finished run of this budget in ``output``, also those not run by this call."""
    results = []
    for run in plan(ARM_NAMES, budget):
        path = run.folder(output) / "result.json"
        result = json.loads(path.read_text()) if path.exists() else None
        if result is not None and same_budget(run, result.get("budget"), budget):
            results.append(result)
        elif result is not None:
            print(f"[reproduce] {run.name}: finished with another budget, left out of the results ({path})",
                  flush=True)
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Budget()
    parser = argparse.ArgumentParser(prog="python -m tl_lightning.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", nargs="+", choices=ARM_NAMES, default=list(ARM_NAMES),
                        help="arms to run (in the study's order); the results cover every finished run")
    parser.add_argument("--only", default=None, help="one run, ARM:SEED (what --jobs starts)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (subprocesses, cores split between them)")
    parser.add_argument("--no-report", action="store_true", help="do not write the results (--only runs)")
    parser.add_argument("--data-root", type=Path, default=data_root(),
                        help="folder holding Seal-Tools/, API-Bank/, BFCL_v3/, ToolAlpaca/, RoTBench/ "
                             "(default: $TL_LIGHTNING_DATA, else ../shared/data)")
    parser.add_argument("--output", type=Path, default=Path("runs/reproduce"), help="run folders")
    parser.add_argument("--results", type=Path, default=Path("results"), help="where ablation.md/.json and PNGs go")
    parser.add_argument("--model", default=defaults.model, help="base model: built-in name, HF id or folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds),
                        help="seeds of the seeded arms (the others use the first)")
    parser.add_argument("--sft-steps", type=int, default=defaults.sft_steps, help="optimizer steps of each SFT run")
    parser.add_argument("--rl-batches", type=int, default=defaults.rl_batches, help="rollout batches of each IRM run")
    parser.add_argument("--eval-items", type=int, default=None,
                        help="items per evaluation set for every set (default: the budget's per-set sizes)")
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--sft-config", default=defaults.sft_config)
    parser.add_argument("--irm-config", default=defaults.irm_config)
    return parser.parse_args(argv)


def budget_of(args: argparse.Namespace) -> Budget:
    eval_items = Budget().eval_items if args.eval_items is None else {name: args.eval_items for name in SET_NAMES}
    return Budget(model=args.model, seeds=tuple(args.seeds), sft_steps=args.sft_steps, rl_batches=args.rl_batches,
                  eval_items=eval_items, max_new_tokens=args.max_new_tokens, sft_config=args.sft_config,
                  irm_config=args.irm_config)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    budget = budget_of(args)
    args.output.mkdir(parents=True, exist_ok=True)
    runs = plan(args.arms, budget)
    if args.only is not None:
        runs = [r for r in plan(ARM_NAMES, budget) if r.name == args.only]
        if not runs:
            raise SystemExit(f"--only {args.only}: no such run (ARM:SEED with a seed of --seeds)")
    if args.jobs > 1 and args.only is None:
        # seed by seed: a study stopped early is whole for its first seeds
        left = sorted((r for r in runs if not (r.folder(args.output) / "result.json").exists()),
                      key=lambda r: budget.seeds.index(r.seed))
        run_in_subprocesses(left, args.jobs, run_argv(args), args.output)
    else:
        for run in runs:
            run_one(run, budget, args.output, args.data_root)
    if args.no_report:
        return None
    return write_results(finished_results(args.output, budget), asdict(budget), args.output, args.results)


if __name__ == "__main__":
    main()
