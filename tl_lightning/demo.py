"""``make demo``: MAE -> PKT -> IRM on the bundled SmolLM2-135M-Instruct and the synthetic world.

Every step goes through the same command line a user runs (``python train.py ...`` with the
configs under ``configs/demo/``), in-process so the figures can be collected:

1. data: the MAE report of the synthetic training set (``python -m tl_lightning.data inspect``);
2. PKT: validation loss and key-token accuracy before and after ``fit --config configs/demo/pkt.yaml``
   (LoRA on CPU); the trained model is written as an HF folder by the config's ``HFExport``;
3. IRM: mean IRM reward and the share of each reward category on held-out synthetic prompts for
   the PKT model, then ``fit --config configs/demo/irm.yaml`` (PPO from that folder), then again.

It prints a summary table and writes it to ``runs/demo/summary.json``. ``--pkt-only`` stops after
step 2; ``--tiny`` uses the tiny-llama configs (seconds; mechanics only, no learning to show).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tl_lightning.cli import main as cli_main
from tl_lightning.ppo import evaluate_rewards

CONFIGS = {False: ("configs/demo/pkt.yaml", "configs/demo/irm.yaml"),
           True: ("configs/demo/pkt_tiny.yaml", "configs/demo/irm_tiny.yaml")}
SUMMARY = Path("runs/demo/summary.json")


def metrics_of(trainer, names: tuple[str, ...]) -> dict[str, float]:
    """The named entries of ``trainer.callback_metrics`` as floats (missing ones are left out)."""
    return {n: float(trainer.callback_metrics[n]) for n in names if n in trainer.callback_metrics}


def mae_report(config: str) -> dict[str, Any]:
    """MAE figures of the training data the PKT config uses (the DataModule's own report)."""
    cli = cli_main(["--config", config], run=False)
    cli.datamodule.connect(cli.model.tokenizer)
    cli.datamodule.setup("fit")
    return cli.datamodule.report


def pkt_step(config: str) -> dict[str, Any]:
    """Validate the untrained model, fit with PKT, validate again."""
    names = ("val/loss", "val/token_acc", "val/key_token_acc")
    before = cli_main(["validate", "--config", config, "--trainer.enable_progress_bar=false"])
    start = time.perf_counter()
    fit = cli_main(["fit", "--config", config])
    seconds = time.perf_counter() - start
    fit.trainer.validate(fit.model, datamodule=fit.datamodule, verbose=False)
    return {"before": metrics_of(before.trainer, names), "after": metrics_of(fit.trainer, names),
            "fit_seconds": round(seconds, 1), "steps": fit.trainer.global_step}


def irm_step(config: str) -> dict[str, Any]:
    """Held-out reward of the PKT model, PPO, and held-out reward of the PPO model."""
    plan = cli_main(["--config", config], run=False)
    module, data = plan.model, plan.datamodule
    data.connect(module.tokenizer)
    data.setup("fit")
    module.configure_model()
    before = evaluate_rewards(module.actor, module.tokenizer, data.val_dataloader(),
                              max_new_tokens=module.hparams.max_new_tokens, table=module.table)
    start = time.perf_counter()
    fit = cli_main(["fit", "--config", config])
    seconds = time.perf_counter() - start
    after = evaluate_rewards(fit.model.actor, fit.model.tokenizer, fit.datamodule.val_dataloader(),
                             max_new_tokens=fit.model.hparams.max_new_tokens, table=fit.model.table)
    return {"before": before, "after": after, "fit_seconds": round(seconds, 1),
            "ppo_batches": fit.trainer.fit_loop.epoch_loop.batch_progress.total.completed}


def print_summary(summary: dict[str, Any]) -> None:
    mae = summary["mae"]["train"] if "train" in summary["mae"] else summary["mae"]
    print("\n=== tl_lightning demo ===")
    print(f"MAE: {json.dumps(mae)}")
    pkt = summary["pkt"]
    print(f"PKT ({pkt['steps']} steps, {pkt['fit_seconds']} s):")
    for name in ("val/loss", "val/token_acc", "val/key_token_acc"):
        print(f"  {name:<20} before {pkt['before'].get(name, float('nan')):8.4f}"
              f"   after {pkt['after'].get(name, float('nan')):8.4f}")
    if "irm" in summary:
        irm = summary["irm"]
        print(f"IRM ({irm['ppo_batches']} rollout batches, {irm['fit_seconds']} s), "
              f"{irm['before']['prompts']} held-out prompts:")
        print(f"  mean reward          before {irm['before']['mean_reward']:8.4f}   after {irm['after']['mean_reward']:8.4f}")
        for category, share in irm["before"]["shares"].items():
            print(f"  {category:<40} {share:6.1%} -> {irm['after']['shares'][category]:6.1%}")
    print(f"total wall time: {summary['seconds']} s; summary in {SUMMARY}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m tl_lightning.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny-llama configs: seconds, mechanics only")
    parser.add_argument("--pkt-only", action="store_true", help="stop after PKT")
    args = parser.parse_args(argv)
    pkt_config, irm_config = CONFIGS[args.tiny]
    start = time.perf_counter()
    summary: dict[str, Any] = {"configs": [pkt_config] + ([] if args.pkt_only else [irm_config])}
    summary["mae"] = mae_report(pkt_config)
    summary["pkt"] = pkt_step(pkt_config)
    if not args.pkt_only:
        summary["irm"] = irm_step(irm_config)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=2))
    print_summary(summary)
    return summary


if __name__ == "__main__":
    main()
