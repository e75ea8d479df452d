"""``make demo``: base SmolLM2-135M-Instruct -> PKT -> IRM on the synthetic tool world, measured on
tool domains the model never saw in training.

Every step goes through the command line a user runs (``python train.py fit --config ...`` with
the configs under ``configs/demo/``), in-process so the figures can be collected:

1. data: the MAE report of the training trajectories (failed calls of the synthetic world are
   dropped as targets and kept as context);
2. PKT: ``fit --config configs/demo/pkt.yaml`` (LoRA on CPU). Its ``HeldOutEvaluation`` callback
   scores the base model before the first step and the trained model after the last one on the
   world's ``heldout_domains`` prompts; ``HFExport`` writes the model as an HF folder;
3. IRM: ``fit --config configs/demo/irm_grpo.yaml`` (GRPO with the IRM reward from that folder;
   the config says why GRPO rather than the paper's PPO, ``configs/demo/irm.yaml``), scored again
   on the same held-out items after its last batch.

It prints a table (TS, PI, CF, exact-call rate with 95% intervals, mean IRM reward, the reward
categories) for base, PKT and IRM, the paired differences between the steps, and writes
``runs/demo/summary.json`` (``heldout: {base, pkt, irm}``) and ``runs/demo/curves.png``.
``--tiny`` runs the tiny-llama configs (seconds; mechanics only, nothing to learn).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tl_lightning.cli import main as cli_main
from tl_lightning.evaluate import METRICS, paired_comparison
from tl_lightning.heldout import HeldOutEvaluation
from tl_lightning.plots import plot_heldout, pyplot, read_metrics, save, series
from tl_lightning.reward import CATEGORIES

CONFIGS = {False: ("configs/demo/pkt.yaml", "configs/demo/irm_grpo.yaml"),
           True: ("configs/demo/pkt_tiny.yaml", "configs/demo/irm_grpo_tiny.yaml")}
OUTPUT = Path("runs/demo")
FIGURES = (*METRICS, "mean_reward")


def heldout_callback(trainer) -> HeldOutEvaluation:
    found = [c for c in trainer.callbacks if isinstance(c, HeldOutEvaluation)]
    if len(found) != 1:
        raise ValueError("the demo configs need exactly one HeldOutEvaluation callback")
    return found[0]


def figures(entry: dict[str, Any]) -> dict[str, Any]:
    """One evaluation's figures for the summary (no per-item lists)."""
    return {k: v for k, v in entry.items() if k != "items"}


def fit(config: str) -> tuple[Any, float]:
    start = time.perf_counter()
    cli = cli_main(["fit", "--config", config])
    return cli, round(time.perf_counter() - start, 1)


def run(tiny: bool = False) -> dict[str, Any]:
    pkt_config, irm_config = CONFIGS[tiny]
    start = time.perf_counter()
    pkt, pkt_seconds = fit(pkt_config)
    pkt_history = heldout_callback(pkt.trainer).history
    irm, irm_seconds = fit(irm_config)
    irm_history = heldout_callback(irm.trainer).history
    base, after_pkt, after_irm = pkt_history[0], pkt_history[-1], irm_history[-1]
    summary = {
        "configs": [pkt_config, irm_config],
        "heldout_data": heldout_callback(pkt.trainer).data,
        "mae": pkt.datamodule.report["mae"]["train"],
        "heldout": {"base": figures(base), "pkt": figures(after_pkt), "irm": figures(after_irm)},
        "paired": {"pkt_minus_base": paired_comparison([after_pkt], [base]),
                   "irm_minus_pkt": paired_comparison([after_irm], [after_pkt])},
        "pkt": {"steps": pkt.trainer.global_step, "fit_seconds": pkt_seconds},
        "irm": {"rollout_batches": irm.trainer.fit_loop.epoch_loop.batch_progress.total.completed,
                "estimator": irm.model.hparams.advantage_estimator, "fit_seconds": irm_seconds},
        "curves": {"pkt": [figures(h) for h in pkt_history], "irm": [figures(h) for h in irm_history]},
        "logs": {"pkt": str(pkt.trainer.logger.log_dir), "irm": str(irm.trainer.logger.log_dir)},
    }
    summary["seconds"] = round(time.perf_counter() - start, 1)
    return summary


def plot(summary: dict[str, Any], path: Path) -> Path:
    """Training loss and key-token accuracy (PKT), mean reward (IRM) and the held-out figures."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    pkt_rows = read_metrics(Path(summary["logs"]["pkt"]) / "metrics.csv")
    axes[0].plot(*series(pkt_rows, "train/loss_step"), label="PKT loss")
    axes[0].plot(*series(pkt_rows, "train/key_token_acc_step"), label="key-token accuracy")
    axes[0].set_title("PKT training")
    axes[0].set_xlabel("optimizer step")
    axes[0].legend(fontsize=8)
    irm_rows = read_metrics(Path(summary["logs"]["irm"]) / "metrics.csv")
    ys = series(irm_rows, "reward/mean")[1]
    axes[1].plot(range(1, len(ys) + 1), ys, marker="o")
    axes[1].set_title(f"IRM ({summary['irm']['estimator']}): mean reward of the rollouts")
    axes[1].set_xlabel("rollout batch")
    plot_heldout(axes[2], [("PKT", summary["curves"]["pkt"]), ("IRM", summary["curves"]["irm"])])
    axes[2].set_title(f"held-out domains (n={summary['heldout']['base']['n']})")
    return save(fig, path)


def _cell(entry: dict[str, Any], name: str) -> str:
    low, high = entry["ci"][name]
    digits = 2 if name == "mean_reward" else 1
    return f"{entry[name]:6.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def table(summary: dict[str, Any]) -> str:
    """The printed result: figures with intervals, paired differences, reward categories."""
    heldout = summary["heldout"]
    n = heldout["base"]["n"]
    lines = [f"held-out domains ({summary['heldout_data']}), n={n} items, 95% bootstrap intervals:",
             f"{'model':<6}" + "".join(f"{name:>22}" for name in ("TS", "PI", "CF", "exact call", "mean reward"))]
    for model, entry in heldout.items():
        lines.append(f"{model:<6}" + "".join(f"{_cell(entry, name):>22}" for name in FIGURES))
    for name, paired in summary["paired"].items():
        diffs = ", ".join(f"{m} {paired[m]['diff']:+.2f} [{paired[m]['low']:+.2f}, {paired[m]['high']:+.2f}]"
                          for m in ("exact_call", "ts", "reward"))
        lines.append(f"paired {name.replace('_minus_', ' - ')}: {diffs}")
    lines.append("reward categories (items):")
    for category in CATEGORIES:
        counts = [heldout[m]["categories"].get(category, 0) for m in heldout]
        lines.append(f"  {category:<40}" + "".join(f"{c:>6}" for c in counts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m tl_lightning.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny-llama configs: seconds, mechanics only")
    args = parser.parse_args(argv)
    summary = run(args.tiny)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    summary["plot"] = str(plot(summary, OUTPUT / "curves.png"))
    (OUTPUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    mae = summary["mae"]
    print("\n=== tl_lightning demo ===")
    print(f"MAE on the training trajectories: {json.dumps(mae)}")
    print(f"PKT: {summary['pkt']['steps']} steps in {summary['pkt']['fit_seconds']} s; IRM "
          f"({summary['irm']['estimator']}): {summary['irm']['rollout_batches']} rollout batches in "
          f"{summary['irm']['fit_seconds']} s")
    print(table(summary))
    print(f"total wall time: {summary['seconds']} s; {OUTPUT / 'summary.json'}, {summary['plot']}")
    return summary


if __name__ == "__main__":
    main()
