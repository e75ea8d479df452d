"""The ablation study's results (``reproduce.py``): ``ablation.json``, ``ablation.md`` (a table
shaped like the paper's ablation, with the budget and wall time per arm) and training curves as
PNG, from the arms' ``result.json`` files and their CSV logs."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# (column group, evaluation sets pooled into it)
BENCHMARK_COLUMNS = (("RoTBench", ("rotbench",)), ("ToolAlpaca", ("toolalpaca",)),
                     ("BFCL", ("bfcl_simple", "bfcl_multiple")))
LEVELS = ("ts", "pi", "cf")


def pooled(scores: dict[str, dict[str, Any]], sets: Sequence[str]) -> dict[str, float] | None:
    """TS / PI / CF over the items of ``sets`` together (weighted by their item counts); None when
    one of the sets was not scored."""
    if any(s not in scores for s in sets):
        return None
    n = sum(scores[s]["n"] for s in sets)
    return {"n": n, **{level: round(sum(scores[s][level] * scores[s]["n"] for s in sets) / max(n, 1), 2)
                       for level in LEVELS}}


def table_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per arm: the pooled scores by column group, and the arm's budget and times."""
    rows = []
    for r in results:
        train = r.get("train") or {}
        rows.append({"arm": r["arm"], "label": r["label"],
                     "scores": {name: pooled(r["scores"], sets) for name, sets in BENCHMARK_COLUMNS},
                     "steps": train.get("steps", train.get("rollout_batches")), "tokens": train.get("tokens"),
                     "supervised_tokens": train.get("supervised_tokens"),
                     "train_minutes": round(r["train_seconds"] / 60, 1), "eval_minutes": round(r["eval_seconds"] / 60, 1),
                     "wall_minutes": round(r["wall_seconds"] / 60, 1), "attempts": r["attempts"]})
    return rows


def _cell(value: Any) -> str:
    return "–" if value is None else str(value)


def markdown(results: Sequence[dict[str, Any]], budget: dict[str, Any]) -> str:
    """``ablation.md``: the table, then the budget and the per-set item counts."""
    rows = table_rows(results)
    header = ["arm"] + [f"{name} {level.upper()}" for name, _ in BENCHMARK_COLUMNS for level in LEVELS] + [
        "steps", "tokens seen", "supervised tokens", "train min", "eval min", "wall min"]
    lines = ["# Ablation (miniature): TS / PI / CF in %", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["label"]]
        for name, _ in BENCHMARK_COLUMNS:
            s = row["scores"][name]
            cells += [_cell(None if s is None else f"{s[level]:.2f}") for level in LEVELS]
        cells += [_cell(row[k]) for k in ("steps", "tokens", "supervised_tokens", "train_minutes",
                                           "eval_minutes", "wall_minutes")]
        lines.append("| " + " | ".join(cells) + " |")
    emitted = [r for r in results if "emitted" in r]
    if emitted:
        lines += ["", "## What the models emit (all scored items together)", "",
                  "| arm | items | with a parseable call | first call names a gold tool | ... ignoring case |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['label']} | {r['emitted']['items']} | {r['emitted']['parsed']} | {r['emitted']['named']} | "
                  f"{r['emitted']['named_ignoring_case']} |" for r in emitted]
    counts = {}
    for r in results:
        for name, s in r["scores"].items():
            counts.setdefault(name, s["n"])
    lines += ["", "## Budget", ""] + [f"- {k}: `{v}`" for k, v in budget.items()]
    lines += [f"- items scored per set: " + ", ".join(f"{k} {v}" for k, v in counts.items())]
    lines += ["- steps: optimizer steps of the SFT arms; rollout batches of the IRM arm (which starts "
              "from the MAE + PKT model, so its budget is that arm's plus PPO)",
              "- tokens seen / supervised: non-padding and loss-bearing tokens of the batches the arm trained on",
              "- wall time: training plus evaluation, summed over attempts (a resumed arm counts each)", ""]
    return "\n".join(lines)


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a Lightning ``metrics.csv`` as floats (empty cells left out)."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def series(rows: Sequence[dict[str, float]], name: str) -> tuple[list[float], list[float]]:
    """``(steps, values)`` of the rows that logged ``name``."""
    points = [(row["step"], row[name]) for row in rows if name in row and "step" in row]
    return [p[0] for p in points], [p[1] for p in points]


def plot_curves(results: Sequence[dict[str, Any]], runs_dir: Path, results_dir: Path) -> list[Path]:
    """``curves_sft.png`` (loss, key-token accuracy by step, one line per SFT arm) and
    ``curves_irm.png`` (mean reward and reward category shares by rollout batch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    logs = {r["arm"]: read_metrics(runs_dir / r["arm"] / "logs" / "version_0" / "metrics.csv") for r in results}
    labels = {r["arm"]: r["label"] for r in results}
    sft = [r["arm"] for r in results if r["settings"]["train"] == "sft"]
    if sft:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for arm in sft:
            for ax, name in zip(axes, ("train/loss_step", "train/key_token_acc_step")):
                ax.plot(*series(logs[arm], name), label=labels[arm])
        for ax, title in zip(axes, ("training loss (PKT-weighted where w_max > 1)", "key-token accuracy")):
            ax.set_title(title)
            ax.set_xlabel("optimizer step")
            ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(results_dir / "curves_sft.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    for arm in (r["arm"] for r in results if r["settings"]["train"] == "ppo"):
        rows = logs[arm]
        shares = sorted({k for row in rows for k in row if k.startswith("reward/share_")})
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        xs, ys = series(rows, "reward/mean")
        axes[0].plot(range(1, len(ys) + 1), ys, marker="o")
        axes[0].set_title("mean IRM reward per rollout batch")
        for name in shares:
            xs, ys = series(rows, name)
            axes[1].plot(range(1, len(ys) + 1), ys, marker=".", label=name.removeprefix("reward/share_"))
        axes[1].set_title("share of rollouts by reward category")
        axes[1].legend(fontsize=7)
        for ax in axes:
            ax.set_xlabel("rollout batch")
        fig.tight_layout()
        written.append(results_dir / f"curves_{arm}.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written


def write_results(results: Sequence[dict[str, Any]], budget: dict[str, Any], runs_dir: Path,
                  results_dir: Path) -> dict[str, Any]:
    """Write ``ablation.json``, ``ablation.md`` and the curves into ``results_dir``; print the table."""
    results_dir.mkdir(parents=True, exist_ok=True)
    text = markdown(results, budget)
    (results_dir / "ablation.md").write_text(text, encoding="utf-8")
    figures = {"budget": budget, "rows": table_rows(results), "arms": list(results)}
    (results_dir / "ablation.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    figures["plots"] = [str(p) for p in plot_curves(results, runs_dir, results_dir)]
    print(text, flush=True)
    return figures
