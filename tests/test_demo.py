"""make demo's driver end to end on the tiny-llama configs (mechanics: nothing is learned)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_demo_writes_the_heldout_table_summary_and_curves(tmp_path, monkeypatch, capsys):
    from tl_lightning import demo

    monkeypatch.chdir(tmp_path)
    for name in ("configs",):
        os.symlink(REPO / name, tmp_path / name)
    summary = demo.main(["--tiny"])
    heldout = summary["heldout"]
    assert set(heldout) == {"base", "pkt", "irm"}
    for entry in heldout.values():
        assert entry["n"] == 8
        assert {"ts", "pi", "cf", "exact_call", "mean_reward", "ci", "categories"} <= set(entry)
    assert set(summary["paired"]) == {"pkt_minus_base", "irm_minus_pkt"}
    written = json.loads((tmp_path / "runs" / "demo" / "summary.json").read_text())
    assert written["heldout"] == heldout
    assert (tmp_path / "runs" / "demo" / "curves.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "held-out domains" in out and "paired pkt - base" in out
