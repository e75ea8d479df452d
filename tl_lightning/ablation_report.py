"""The ablation study's results (``reproduce.py``): ``ablation.json``, ``ablation.md`` and PNGs.

Per arm and evaluation set: TS / PI / CF, the exact-call rate and the mean IRM reward, each the
mean over the arm's seeds with a 95% bootstrap interval over items and seeds (``stats.py``), from
the runs' per-item ``report.json``. Per set: the paired difference full method minus standard SFT
(every metric; ``paired`` holds CF, the strictest). Where the components act: the share of
synthetic held-out items in each IRM category per arm (wrong tool: PKT's target; hallucinated,
redundant or missing arguments: what MAE keeps out of the targets).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tl_lightning.evaluate import METRICS, paired_comparison
from tl_lightning.plots import pyplot, read_metrics, save, series
from tl_lightning.study import ARMS, FULL, SET_NAMES, STANDARD
from tl_lightning.reward import CATEGORIES
from tl_lightning.stats import bootstrap_mean

FIGURES = (*METRICS, "mean_reward")
# IRM categories grouped by the component that acts on them
COMPONENT_GROUPS = {
    "wrong tool (PKT)": ("wrong_tool",),
    "hallucinated argument (MAE)": ("hallucinated", "hallucinated_and_redundant_or_missing",
                                    "hallucinated_redundant_missing"),
    "redundant / missing argument (MAE)": ("redundant_or_missing", "redundant_and_missing"),
    "wrong value": ("wrong_value",),
    "no call / unknown tool": ("unparsable_or_unknown_tool",),
    "exact": ("exact",),
}


def reports(output: Path, result: dict[str, Any], name: str) -> dict[str, Any]:
    return json.loads((output / result["arm"] / f"seed{result['seed']}" / "eval" / name / "report.json").read_text())


def arm_figures(item_reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One arm on one set over its seeds: each figure's mean with its interval over items and seeds."""
    ids = [item["id"] for item in item_reports[0]["items"]]
    out: dict[str, Any] = {"n": len(ids), "seeds": len(item_reports), "ci": {}}
    for metric in FIGURES:
        key = "reward" if metric == "mean_reward" else metric
        runs = [[float(i[key]) for i in r["items"]] for r in item_reports]
        interval = bootstrap_mean(np.array(runs)).scaled(1.0 if metric == "mean_reward" else 100.0)
        digits = 3 if metric == "mean_reward" else 2
        out[metric] = round(interval.estimate, digits)
        out["ci"][metric] = [round(interval.low, digits), round(interval.high, digits)]
    counts = {c: sum(i["category"] == c for r in item_reports for i in r["items"]) for c in CATEGORIES}
    out["categories"] = {c: n for c, n in counts.items() if n}
    return out


def summarise(results: Sequence[dict[str, Any]], output: Path) -> dict[str, Any]:
    """``arms: {arm: {set: figures}}``, ``paired: {set: {diff, low, high}}`` (CF, full - SFT),
    ``paired_all`` (every metric) and ``components`` (category shares on the synthetic set)."""
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    arms = {arm: {name: arm_figures([reports(output, r, name) for r in runs]) for name in SET_NAMES}
            for arm, runs in by_arm.items()}
    summary: dict[str, Any] = {"arms": arms, "paired": {}, "paired_all": {}, "components": {}}
    if FULL in by_arm and STANDARD in by_arm:
        for name in SET_NAMES:
            comparison = paired_comparison([reports(output, r, name) for r in by_arm[FULL]],
                                           [reports(output, r, name) for r in by_arm[STANDARD]])
            summary["paired_all"][name] = comparison
            summary["paired"][name] = comparison["cf"]
    for arm, sets in arms.items():
        categories = sets["synthetic"]["categories"]
        total = sum(categories.values())
        summary["components"][arm] = {group: round(100.0 * sum(categories.get(c, 0) for c in members) / total, 1)
                                      for group, members in COMPONENT_GROUPS.items()}
    return summary


def _cell(figures: dict[str, Any], metric: str) -> str:
    low, high = figures["ci"][metric]
    return f"{figures[metric]:.1f} [{low:.0f}, {high:.0f}]"


def markdown(summary: dict[str, Any], results: Sequence[dict[str, Any]], budget: dict[str, Any]) -> str:
    labels = {a.name: a.label for a in ARMS}
    lines = ["# Ablation (miniature): SmolLM2-135M-Instruct + LoRA on CPU", "",
             "Percent of items, mean over the arm's seeds, with 95% bootstrap intervals over items and seeds.", ""]
    for metric, title in (("cf", "CF (content filling: the whole call right, by each benchmark's rules)"),
                          ("ts", "TS (tool selection)"), ("exact_call", "exact-call rate (IRM reward's exact)")):
        lines += [f"## {title}", "", "| arm | seeds | " + " | ".join(SET_NAMES) + " |",
                  "|---|---|" + "---|" * len(SET_NAMES)]
        for arm, sets in summary["arms"].items():
            cells = [_cell(sets[name], metric) for name in SET_NAMES]
            lines.append(f"| {labels[arm]} | {sets['synthetic']['seeds']} | " + " | ".join(cells) + " |")
        lines.append("")
    n = {name: summary["arms"][next(iter(summary["arms"]))][name]["n"] for name in SET_NAMES}
    lines.append("Items per set: " + ", ".join(f"{name} {k}" for name, k in n.items()) + ".")
    lines.append("")
    if summary["paired"]:
        lines += ["## Full method minus standard SFT, paired over the same items (95% interval)", "",
                  "| set | CF | TS | exact call | mean reward |", "|---|---|---|---|---|"]
        for name, comparison in summary["paired_all"].items():
            cells = [f"{comparison[m]['diff']:+.2f} [{comparison[m]['low']:+.2f}, {comparison[m]['high']:+.2f}]"
                     for m in ("cf", "ts", "exact_call", "reward")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Where the components act: synthetic held-out items by IRM category (% of items, all seeds)", "",
              "| arm | " + " | ".join(COMPONENT_GROUPS) + " |", "|---|" + "---|" * len(COMPONENT_GROUPS)]
    for arm, shares in summary["components"].items():
        lines.append(f"| {labels[arm]} | " + " | ".join(f"{v:.1f}" for v in shares.values()) + " |")
    lines += ["", "## Runs", "", "| run | steps / rollout batches | tokens seen | train min | eval min |",
              "|---|---|---|---|---|"]
    for r in results:
        train = r.get("train") or {}
        steps = train.get("steps", train.get("rollout_batches", "–"))
        lines.append(f"| {r['arm']}:{r['seed']} | {steps} | {train.get('tokens', '–')} | "
                     f"{r['train_seconds'] / 60:.1f} | {r['eval_seconds'] / 60:.1f} |")
    total = sum(r["wall_seconds"] for r in results) / 60
    lines += ["", f"Summed run time: {total:.0f} min (runs may overlap with --jobs).", "", "## Budget", ""]
    lines += [f"- {k}: `{v}`" for k, v in budget.items()]
    return "\n".join(lines) + "\n"


def plot_curves(results: Sequence[dict[str, Any]], output: Path, results_dir: Path) -> list[Path]:
    """``curves_sft.png`` (loss and key-token accuracy of every SFT run) and ``curves_irm.png``
    (mean IRM reward of every RL run)."""
    plt = pyplot()
    written = []
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for r in results:
        rows = read_metrics(output / r["arm"] / f"seed{r['seed']}" / "logs" / "version_0" / "metrics.csv")
        label = f"{r['arm']}:{r['seed']}"
        if r["settings"]["train"] == "sft":
            axes[0].plot(*series(rows, "train/loss_step"), label=label, linewidth=0.8)
            axes[1].plot(*series(rows, "train/key_token_acc_step"), label=label, linewidth=0.8)
        elif r["settings"]["train"] == "rl":
            ys = series(rows, "reward/mean")[1]
            axes[2].plot(range(1, len(ys) + 1), ys, marker="o", label=label)
    for ax, title, xlabel in zip(axes, ("training loss (PKT-weighted where w_max > 1)", "key-token accuracy",
                                        "IRM: mean reward of the rollouts"),
                                 ("optimizer step", "optimizer step", "rollout batch")):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.legend(fontsize=6)
    written.append(save(fig, results_dir / "curves.png"))
    return written


def plot_arms(summary: dict[str, Any], results_dir: Path) -> Path:
    """``ablation.png``: CF of every arm on every set with its interval."""
    plt = pyplot()
    arms = list(summary["arms"])
    fig, ax = plt.subplots(figsize=(14, 4.5))
    width = 0.8 / len(arms)
    for k, arm in enumerate(arms):
        xs = [i + k * width for i in range(len(SET_NAMES))]
        ys = [summary["arms"][arm][name]["cf"] for name in SET_NAMES]
        errors = [[y - summary["arms"][arm][name]["ci"]["cf"][0] for y, name in zip(ys, SET_NAMES)],
                  [summary["arms"][arm][name]["ci"]["cf"][1] - y for y, name in zip(ys, SET_NAMES)]]
        ax.bar(xs, ys, width, yerr=errors, capsize=2, label=arm)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(SET_NAMES))], SET_NAMES)
    ax.set_ylabel("CF, % of items (95% CI)")
    ax.legend(fontsize=8)
    return save(fig, results_dir / "ablation.png")


def write_results(results: Sequence[dict[str, Any]], budget: dict[str, Any], output: Path,
                  results_dir: Path) -> dict[str, Any]:
    """Write ``ablation.json``, ``ablation.md`` and the PNGs into ``results_dir``; print the table."""
    results_dir.mkdir(parents=True, exist_ok=True)
    if not results:
        raise ValueError(f"no finished runs in {output} for this budget")
    summary = summarise(results, output)
    text = markdown(summary, results, budget)
    (results_dir / "ablation.md").write_text(text, encoding="utf-8")
    runs = [{k: r[k] for k in ("arm", "seed", "train", "train_seconds", "eval_seconds", "wall_seconds", "attempts")}
            for r in results]
    figures = {"budget": budget, **summary, "runs": runs}
    (results_dir / "ablation.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    figures["plots"] = [str(p) for p in (*plot_curves(results, output, results_dir), plot_arms(summary, results_dir))]
    print(text, flush=True)
    return figures
