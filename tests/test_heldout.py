"""HeldOutEvaluation: held-out tool-calling figures logged during fit (tiny-llama, seconds)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.test_cli import tiny_args
from tl_lightning.cli import main
from tl_lightning.evaluate import ItemResult, paired_comparison
from tl_lightning.heldout import HeldOutEvaluation, _decode, _encode

HELDOUT = "synthetic:heldout_domains?n=6"


def callback_args(**init_args) -> str:
    return "--trainer.callbacks=" + json.dumps([{"class_path": "tl_lightning.heldout.HeldOutEvaluation",
                                                "init_args": {"data": HELDOUT, "max_new_tokens": 8, **init_args}}])


def test_per_item_figures_survive_the_gather_encoding():
    results = [ItemResult("a", True, True, False, "wrong_value", -0.25),
               ItemResult("b", False, False, False, "unparsable_or_unknown_tool", -2.0)]
    rows = _encode(results, 3)
    assert rows.shape == (3, 5) and rows[2, 4] == 0  # the padding row is not counted
    decoded = _decode(rows)
    assert [(r.ts, r.pi, r.cf, r.category, r.reward) for r in decoded] == [
        (r.ts, r.pi, r.cf, r.category, r.reward) for r in results]


def test_options_are_checked():
    with pytest.raises(ValueError):
        HeldOutEvaluation(HELDOUT, every_n_batches=-1)


@pytest.mark.slow
def test_fit_logs_heldout_figures_at_start_every_n_batches_and_end(tmp_path):
    cli = main(["fit", *tiny_args(tmp_path, "--trainer.max_steps=3", "--checkpoint.every_n_train_steps=2",
                                  "--checkpoint.monitor=heldout/exact_call", "--checkpoint.mode=max",
                                  "--checkpoint.save_top_k=1", callback_args(every_n_batches=2))])
    [callback] = [c for c in cli.trainer.callbacks if isinstance(c, HeldOutEvaluation)]
    assert [h["batches"] for h in callback.history] == [0, 2, 3]  # start, every 2 batches, end
    for entry in callback.history:
        assert entry["n"] == 6 and set(entry["ci"]) == {"ts", "pi", "cf", "exact_call", "mean_reward"}
        assert -2.0 <= entry["mean_reward"] <= 1.0
        assert [item["id"] for item in entry["items"]] == [str(k) for k in range(6)]
    # two evaluations of the same items compare item by item
    first_vs_last = paired_comparison([callback.history[-1]], [callback.history[0]])
    assert first_vs_last["n"] == 6 and set(first_vs_last["cf"]) == {"diff", "low", "high"}
    assert cli.trainer.callback_metrics["heldout/exact_call"] == torch.tensor(callback.history[-1]["exact_call"])
    written = json.loads((tmp_path / "lightning_logs" / "version_0" / "heldout.json").read_text())
    assert written["data"] == HELDOUT and [h["batches"] for h in written["history"]] == [0, 2, 3]
    header = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "heldout/exact_call" in header and "heldout/mean_reward" in header
    # the monitored checkpoint was chosen by the held-out figure of batch 2
    checkpoint = cli.trainer.checkpoint_callback
    assert checkpoint.best_model_path and float(checkpoint.best_model_score) == callback.history[1]["exact_call"]
    # the history travels with the checkpoints (the final evaluation comes after the last save)
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    [state] = [v for k, v in saved["callbacks"].items() if k.startswith("HeldOutEvaluation")]
    assert [h["batches"] for h in state["history"]] == [0, 2]
