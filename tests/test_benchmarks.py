"""Smoke tests of the benchmark scripts: each runs its ``--quick`` setting in this process (so the
heavy imports are paid once) and must end with its JSON line of well-formed figures."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def last_json_line(capsys) -> dict:
    lines = capsys.readouterr().out.strip().splitlines()
    return json.loads(lines[-1])


def test_timing_helpers():
    from benchmarks._timing import interleaved, paired_ratio, spread

    s = spread([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.low, s.high, s.n) == (2.5, 1.0, 10.0, 4)
    assert paired_ratio([2.0, 4.0, 6.0], [1.0, 1.0, 2.0]).median == 3.0
    calls = []
    times = interleaved({"a": lambda: calls.append("a"), "b": lambda: 0.5}, repeats=3, warmup=1)
    assert calls == ["a"] * 4 and times["b"] == [0.5] * 3  # a self-timed variant reports its own time
    with pytest.raises(ValueError):
        spread([])


def test_pkt_overhead_quick(capsys):
    from benchmarks import pkt_overhead

    figures = pkt_overhead.main(["--quick"])
    assert last_json_line(capsys) == json.loads(json.dumps(figures))
    assert figures["benchmark"] == "pkt_overhead"
    assert figures["step_ratio"]["tiny-llama (full)"] > 0
    assert sum(figures["authors_agreement"].values()) == figures["authors_samples"]
    assert figures["pkt_speedup"] > 0


def test_authors_reimplementation_agrees_with_ours(smollm2_tokenizer):
    """The authors' token-string search finds the gold name, and where it finds what the spans
    say, its weights and loss equal ours (``agreement`` asserts that)."""
    import torch

    from benchmarks.pkt_overhead import PretokenizedText, agreement, authors_weights, per_turn_samples
    from tl_lightning.data.tokenize import tokenize_rendered

    samples = per_turn_samples(smollm2_tokenizer, 8)
    ids = smollm2_tokenizer(samples[0].text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    found = authors_weights(ids, smollm2_tokenizer)
    assert smollm2_tokenizer.convert_tokens_to_string(found.gold).strip() == samples[0].targets[0].calls[0].name
    assert found.pre[0] == found.first_target
    pretokenized = PretokenizedText(smollm2_tokenizer, [r.text for r in samples])
    outcomes = []
    for r in samples:
        ours = tokenize_rendered(r, smollm2_tokenizer, exclude_value_end=True)
        logits = torch.randn(1, len(ours.input_ids), len(smollm2_tokenizer), generator=torch.Generator().manual_seed(0))
        outcomes.append(agreement(r, ours, pretokenized._encodings[r.text], smollm2_tokenizer, logits, 9.0))
    assert "agree" in outcomes


def test_mae_layouts_quick(capsys, shared_data):
    from benchmarks import mae_layouts

    figures = mae_layouts.main(["--quick", "--data-root", str(shared_data)])
    assert last_json_line(capsys)["benchmark"] == "mae_layouts"
    assert 0 < figures["token_ratio"] <= 1.0  # one sample per trajectory never has more tokens
    assert figures["epoch_seconds"]["trajectory"] > 0


def test_padding_quick(capsys, shared_data):
    from benchmarks import padding

    figures = padding.main(["--quick", "--data-root", str(shared_data)])
    assert last_json_line(capsys)["benchmark"] == "padding"
    waste = figures["waste"]
    assert 0 <= waste["bucketing"] <= waste["naive"] < 1 and 0 <= waste["packing"] < 1


def test_memory_quick(capsys):
    from benchmarks import memory

    figures = memory.main(["--quick", "--device", "cpu", "--parts", "pkt"])  # PPO half: test_benchmark_ppo.py
    assert last_json_line(capsys)["benchmark"] == "memory"
    pkt = figures["pkt"]
    assert pkt["lora"]["trainable_params"] < pkt["full"]["trainable_params"]
    assert pkt["full"]["peak_rss_mib"] > 0 and pkt["lora"]["peak_rss_mib"] > 0


def test_multi_turn_rl_quick(capsys, tmp_path):
    from benchmarks import multi_turn_rl

    figures = multi_turn_rl.main(["--quick", "--root", str(tmp_path), "--set", "model.episodes.mae=true"])
    assert last_json_line(capsys)["benchmark"] == "multi_turn_rl"
    assert figures["tasks"] == 4 and figures["rl_steps"] == 1 and figures["settings"] == ["model.episodes.mae=true"]
    for side in ("before", "after"):
        assert figures[side]["tasks"] == 4 and 0 <= figures[side]["success"]["estimate"] <= 100
    assert figures["success_difference"]["n"] == 4
