"""Smoke tests of the RL benchmarks: ``ppo_step --quick`` and ``rl_step --quick`` (in this process)
and the PPO half of ``memory.py`` at its quick setting (two child processes), all on tiny-llama."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.slow


def last_json_line(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_ppo_step_quick(capsys):
    from benchmarks import ppo_step

    threads = torch.get_num_threads()
    figures = ppo_step.main(["--quick", "--no-trl"])
    assert torch.get_num_threads() == threads  # restored: the rest of the session keeps its threads
    assert last_json_line(capsys) == json.loads(json.dumps(figures))
    assert figures["benchmark"] == "ppo_step" and figures["trl"] is None and figures["trl_skipped"] == "--no-trl"
    assert figures["rollout_ratio_batches"] == [2, 1]
    for name, b in figures["by_batch"].items():
        ms = b["per_sample_ms"]
        assert all(ms[p] > 0 for p in ("generation", "passes", "updates")) and ms["scoring"] >= 0, name
        # the phases partition the step: rollout and total are their sums (rounding aside)
        assert ms["rollout"] == pytest.approx(ms["generation"] + ms["scoring"] + ms["passes"], abs=0.05)
        assert ms["total"] == pytest.approx(ms["rollout"] + ms["updates"], abs=0.05)
        assert b["samples_per_s"] == pytest.approx(1e3 / ms["total"], rel=1e-2)
        # generation was forced to full length: every prompt got all its tokens
        assert b["generated_width"] == 4 and b["mean_response_tokens"] == 4.0
    assert figures["by_batch"]["batch 1"]["rollout_vs_batch1"] == 1.0
    assert figures["rollout_ratio"] == figures["by_batch"]["batch 2"]["rollout_vs_batch1"]


def test_phase_recorder_partitions_the_real_training_step():
    """The recorder reads the module's own phase times and the rollout's width, and the patched
    names are restored afterwards."""
    from benchmarks.ppo_step import PhaseRecorder, build_module, prompt_batch, quiet_lightning, rl_prompts, run_ours
    from tl_lightning import ppo

    original = ppo.generate
    module = build_module("tiny-llama", max_new_tokens=2, minibatch_size=1)
    batches = [prompt_batch(rl_prompts(module.tokenizer, 2), 2, module.tokenizer.pad_token_id)]
    recorder = PhaseRecorder()
    with recorder.installed(module), quiet_lightning():
        steps = run_ours(module, recorder, batches)
    assert ppo.generate is original and "training_step" not in vars(module)
    assert len(steps) == 1 and steps[0].batch == 2 and steps[0].width <= 2
    assert all(v >= 0 for v in steps[0].seconds.values()) and steps[0].seconds["updates"] > 0


def test_rl_step_quick(capsys):
    """One iteration per estimator variant, phases from the module itself, the GRPO / PPO ratio."""
    from benchmarks import rl_step

    figures = rl_step.main(["--quick"])
    assert last_json_line(capsys) == json.loads(json.dumps(figures))
    assert figures["benchmark"] == "rl_step" and figures["trl"] is None and figures["trl_skipped"] == "--no-trl"
    assert set(figures["by_variant"]) == {"gae", "grpo"} and figures["generated_width"] == {"gae": 4, "grpo": 4}
    for name, v in figures["by_variant"].items():
        phases = v["phases_s"]
        assert phases["generation"] > 0 and phases["updates"] > 0, name
        assert sum(phases.values()) == pytest.approx(v["seconds"]["median"], abs=0.01)  # one round: same step
    assert figures["grpo_vs_gae"] == figures["by_variant"]["grpo"]["vs_gae"] > 0


def test_memory_ppo_quick(capsys):
    from benchmarks import memory

    figures = memory.main(["--quick", "--device", "cpu", "--parts", "ppo"])
    assert last_json_line(capsys)["benchmark"] == "memory" and "pkt" not in figures
    p = figures["ppo"]
    shared, copy = p["shared_lora"], p["copy"]
    assert (shared["models_held"], copy["models_held"]) == (1, 3)  # actor (+ reference + critic)
    assert shared["trainable_params"] < copy["trainable_params"] and shared["total_params"] < copy["total_params"]
    assert 0 < shared["rss_after_load_mib"] <= shared["peak_rss_mib"]
    assert p["peak_ratio_copy_vs_shared_lora"] == round(copy["peak_rss_mib"] / shared["peak_rss_mib"], 3)
