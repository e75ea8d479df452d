"""The ablation driver (``reproduce.py``) and its report (``ablation_report.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tl_lightning import reproduce
from tl_lightning.ablation_report import markdown, pooled, read_metrics, series, table_rows


def _result(arm: str, label: str, scores: dict, train: dict | None = None, kind: str = "sft") -> dict:
    return {"arm": arm, "label": label, "settings": {"train": kind}, "train": train or {},
            "train_seconds": 120.0, "eval_seconds": 60.0, "wall_seconds": 180.0, "attempts": 1, "scores": scores}


def _scores(n: int, ts: float, pi: float, cf: float) -> dict:
    return {"n": n, "ts": ts, "pi": pi, "cf": cf, "unparsable_predictions": 0}


def test_pooled_weights_sets_by_item_count():
    scores = {"bfcl_simple": _scores(30, 50.0, 40.0, 30.0), "bfcl_multiple": _scores(10, 10.0, 0.0, 0.0)}
    assert pooled(scores, ("bfcl_simple", "bfcl_multiple")) == {"n": 40, "ts": 40.0, "pi": 30.0, "cf": 22.5}
    assert pooled(scores, ("rotbench",)) is None


def test_markdown_has_a_row_per_arm_with_budget_and_times():
    results = [_result("base", "base model (no training)", {"rotbench": _scores(4, 0, 0, 0)}, kind="none"),
               _result("pkt", "PKT", {"rotbench": _scores(4, 75.0, 50.0, 25.0)},
                       {"steps": 30, "tokens": 9000, "supervised_tokens": 800})]
    results[1]["emitted"] = {"items": 4, "parsed": 3, "named": 1, "named_ignoring_case": 2}
    text = markdown(results, {"sft_steps": 30})
    assert "| PKT | 4 | 3 | 1 | 2 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| PKT"))
    assert "| 75.00 | 50.00 | 25.00 | – |" in row and "| 30 | 9000 | 800 | 2.0 | 1.0 | 3.0 |" in row
    assert "- sft_steps: `30`" in text and "rotbench 4" in text
    assert table_rows(results)[0]["steps"] is None


def test_metrics_csv_series(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss_step,reward/mean\n0,0,2.5,\n0,1,2.0,\n0,1,,-1.5\n")
    rows = read_metrics(path)
    assert series(rows, "train/loss_step") == ([0.0, 1.0], [2.5, 2.0])
    assert series(rows, "reward/mean") == ([1.0], [-1.5])
    assert read_metrics(tmp_path / "missing.csv") == []


def test_fit_args_resume_from_last_checkpoint(tmp_path):
    budget = reproduce.Budget()
    assert "--ckpt_path=last" not in reproduce.fit_args("c.yaml", tmp_path, budget, [])
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert reproduce.fit_args("c.yaml", tmp_path, budget, ["--x=1"])[-2:] == ["--x=1", "--ckpt_path=last"]


def test_missing_training_data_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="SGD/train"):
        reproduce.data_paths(tmp_path)


@pytest.fixture
def small_data_root(shared_data, tmp_path) -> Path:
    """The study's folders with one SGD file instead of six (the same readers, much faster)."""
    root = tmp_path / "data"
    (root / "SGD" / "train").mkdir(parents=True)
    for name in ("dialogues_001.json", "schema.json"):
        (root / "SGD" / "train" / name).symlink_to(shared_data / "SGD" / "train" / name)
    for name in ("API-Bank", "tau-bench", "RoTBench", "ToolAlpaca", "BFCL_v3"):
        (root / name).symlink_to(shared_data / name)
    return root


@pytest.mark.slow
def test_study_runs_resumes_and_reports(small_data_root, tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    args = ["--arms", "base", "mae_pkt", "mae_pkt_irm", "--model", "tiny-llama", "--sft-steps", "2",
            "--ppo-batches", "1", "--eval-sample", "2", "--max-new-tokens", "2", "--data-root", str(small_data_root),
            "--output", str(runs), "--results", str(results)]
    figures = reproduce.main(args)
    assert [row["arm"] for row in figures["rows"]] == ["base", "mae_pkt", "mae_pkt_irm"]
    pkt = json.loads((runs / "mae_pkt" / "result.json").read_text())
    assert pkt["train"]["steps"] == 2 and pkt["train"]["tokens"] > pkt["train"]["supervised_tokens"] > 0
    assert pkt["train"]["overlength_dropped"] > 0  # tau-bench airline does not fit max_length 1024
    assert {s["n"] for s in pkt["scores"].values()} == {2}
    assert (runs / "mae_pkt" / "hf_model" / "config.json").exists()
    irm = json.loads((runs / "mae_pkt_irm" / "result.json").read_text())
    assert irm["train"]["rollout_batches"] == 1
    for arm in figures["arms"]:  # 4 sets x 2 items; the counts nest
        e = arm["emitted"]
        assert e["items"] == 8 and e["parsed"] >= e["named_ignoring_case"] >= e["named"] >= 0
    for name in ("ablation.md", "ablation.json", "curves_sft.png", "curves_mae_pkt_irm.png"):
        assert (results / name).stat().st_size > 0
    assert (results / "curves_sft.png").read_bytes()[:4] == b"\x89PNG"

    # a finished arm is not run again; an arm stopped during evaluation resumes there
    (runs / "mae_pkt" / "result.json").unlink()
    report = runs / "mae_pkt" / "eval" / "bfcl_multiple" / "report.json"
    report.unlink()
    before = json.loads((runs / "mae_pkt" / "progress.json").read_text())
    reproduce.main(args)
    after = json.loads((runs / "mae_pkt" / "progress.json").read_text())
    assert after["attempts"] == 2 and after["train_seconds"] == before["train_seconds"]  # not trained again
    assert report.exists()
    assert json.loads((runs / "base" / "progress.json").read_text())["attempts"] == 1

    # arms finished with another budget are left out of the results of a call that does not run them
    figures = reproduce.main([*args[:-4], "--arms", "base", "--sft-steps", "3", "--output", str(runs),
                              "--results", str(results)])
    assert [row["arm"] for row in figures["rows"]] == ["base"]
    with pytest.raises(ValueError, match="another budget"):
        reproduce.main([*args[:-4], "--sft-steps", "3", "--output", str(runs), "--results", str(results)])


def test_a_new_training_budget_keeps_the_base_arm_but_not_trained_arms():
    from dataclasses import asdict, replace

    budget = reproduce.Budget()
    base, sft = reproduce.ARMS[0], reproduce.ARMS[1]
    finished = asdict(budget)
    longer = replace(budget, sft_steps=budget.sft_steps + 10)
    assert reproduce.same_budget(base, finished, longer) and not reproduce.same_budget(sft, finished, longer)
    assert not reproduce.same_budget(base, finished, replace(budget, eval_sample=5))
    assert reproduce.same_budget(sft, finished, budget) and not reproduce.same_budget(sft, None, budget)
