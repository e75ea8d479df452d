"""The ablation driver (``reproduce.py``) and its report (``ablation_report.py``)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from tl_lightning import reproduce
from tl_lightning.ablation_report import arm_figures, summarise


def test_plan_runs_seeded_arms_once_per_seed():
    budget = reproduce.Budget(seeds=(0, 1, 2))
    names = [run.name for run in reproduce.plan(reproduce.ARM_NAMES, budget)]
    assert names == ["base:0", "sft:0", "sft:1", "sft:2", "sft_mae:0", "pkt:0", "mae_pkt:0", "mae_pkt:1",
                     "mae_pkt:2", "mae_pkt_irm:0", "mae_pkt_irm:1", "mae_pkt_irm:2"]
    assert [r.name for r in reproduce.plan(["pkt", "base"], budget)] == ["base:0", "pkt:0"]
    assert reproduce.plan(["sft"], budget)[1].folder(Path("out")) == Path("out/sft/seed1")


def test_fit_args_resume_from_last_checkpoint(tmp_path):
    assert "--ckpt_path=last" not in reproduce.fit_args("c.yaml", tmp_path, 0, [])
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    args = reproduce.fit_args("c.yaml", tmp_path, 3, ["--x=1"])
    assert args[-2:] == ["--x=1", "--ckpt_path=last"] and "--seed_everything=3" in args


def test_missing_training_data_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="Seal-Tools"):
        reproduce.training_paths(tmp_path)


def test_a_new_training_budget_keeps_the_base_arm_but_not_trained_arms():
    budget = reproduce.Budget()
    base, sft = reproduce.plan(["base", "sft"], budget)[:2]
    finished = json.loads(json.dumps(asdict(budget)))  # as read back from result.json
    longer = replace(budget, sft_steps=budget.sft_steps + 10)
    assert reproduce.same_budget(base, finished, longer) and not reproduce.same_budget(sft, finished, longer)
    assert not reproduce.same_budget(base, finished, replace(budget, max_new_tokens=5))
    assert reproduce.same_budget(sft, finished, budget) and not reproduce.same_budget(sft, None, budget)


def _report(flags: list[int], category: str = "exact") -> dict:
    return {"items": [{"id": str(k), "ts": f, "pi": f, "cf": f, "exact_call": f,
                       "category": category if f else "wrong_tool", "reward": 1.0 if f else -1.5}
                      for k, f in enumerate(flags)]}


def test_arm_figures_pool_seeds_with_an_interval():
    figures = arm_figures([_report([1, 1, 0, 0]), _report([1, 0, 0, 0])])
    assert (figures["n"], figures["seeds"], figures["cf"]) == (4, 2, 37.5)
    assert figures["ci"]["cf"][0] <= 37.5 <= figures["ci"]["cf"][1]
    assert figures["categories"] == {"wrong_tool": 5, "exact": 3}
    assert figures["mean_reward"] == round((3 * 1.0 - 5 * 1.5) / 8, 3)


def test_summary_pairs_the_full_method_with_standard_sft(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "SET_NAMES", ("synthetic",))
    monkeypatch.setattr("tl_lightning.ablation_report.SET_NAMES", ("synthetic",))
    results = []
    for arm, flags in (("sft", [1, 0, 0, 0, 1, 0]), ("mae_pkt_irm", [1, 1, 1, 0, 1, 1])):
        for seed in (0, 1):
            out = tmp_path / arm / f"seed{seed}" / "eval" / "synthetic"
            out.mkdir(parents=True)
            (out / "report.json").write_text(json.dumps(_report(flags)))
            results.append({"arm": arm, "seed": seed})
    summary = summarise(results, tmp_path)
    assert summary["paired"]["synthetic"]["diff"] == pytest.approx(100 * (5 - 2) / 6, abs=0.01)
    assert summary["components"]["sft"]["wrong tool (PKT)"] == round(100 * 4 / 6, 1)


@pytest.fixture
def data_root(shared_data) -> Path:
    return shared_data


@pytest.mark.slow
def test_study_runs_resumes_and_reports(data_root, tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    args = ["--arms", "base", "mae_pkt", "mae_pkt_irm", "--model", "tiny-llama", "--seeds", "0", "--sft-steps", "2",
            "--rl-batches", "1", "--eval-items", "2", "--max-new-tokens", "4", "--data-root", str(data_root),
            "--output", str(runs), "--results", str(results)]
    figures = reproduce.main(args)
    assert list(figures["arms"]) == ["base", "mae_pkt", "mae_pkt_irm"]
    pkt = json.loads((runs / "mae_pkt" / "seed0" / "result.json").read_text())
    assert pkt["train"]["steps"] == 2 and pkt["train"]["tokens"] > pkt["train"]["supervised_tokens"] > 0
    assert pkt["train"]["mae"]["dropped_turns"] > 0  # the synthetic world's failed calls
    assert {s["n"] for s in pkt["scores"].values()} == {2}
    irm = json.loads((runs / "mae_pkt_irm" / "seed0" / "result.json").read_text())
    assert irm["train"]["rollout_batches"] == 1
    for arm in figures["arms"].values():
        assert set(arm) == set(reproduce.SET_NAMES)
    for name in ("ablation.md", "ablation.json", "curves.png", "ablation.png"):
        assert (results / name).stat().st_size > 0

    # a finished run is not run again; a run stopped during evaluation resumes there
    (runs / "mae_pkt" / "seed0" / "result.json").unlink()
    report = runs / "mae_pkt" / "seed0" / "eval" / "bfcl_multiple" / "report.json"
    report.unlink()
    before = json.loads((runs / "mae_pkt" / "seed0" / "progress.json").read_text())
    reproduce.main(args)
    after = json.loads((runs / "mae_pkt" / "seed0" / "progress.json").read_text())
    assert after["attempts"] == 2 and after["train_seconds"] == before["train_seconds"]  # not trained again
    assert report.exists()
    assert json.loads((runs / "base" / "seed0" / "progress.json").read_text())["attempts"] == 1

    # runs finished with another budget are left out of the results of a call that does not run them
    other = [a if a != "2" or args[i - 1] != "--sft-steps" else "3" for i, a in enumerate(args)]
    figures = reproduce.main([*other[:1], "base", *other[4:]])
    assert list(figures["arms"]) == ["base"]
    with pytest.raises(ValueError, match="another budget"):
        reproduce.main(other)
