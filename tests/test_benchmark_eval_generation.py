"""Smoke test of ``benchmarks/eval_generation.py``: its ``--quick`` setting (tiny-llama, 4 RoTBench
prompts) runs in this process and must end with a JSON line of well-formed, consistent figures."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.slow


def test_eval_generation_quick(capsys, shared_data):
    from benchmarks import eval_generation

    data = shared_data / "RoTBench" / "First_Turn" / "clean.json"
    threads = torch.get_num_threads()
    # one thread: two spin against other jobs on a busy 2-core machine (5x slower there)
    figures = eval_generation.main(["--quick", "--data", str(data), "--batch-sizes", "1", "2", "16", "--threads", "1"])
    assert torch.get_num_threads() == threads and figures["threads"] == 1
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == json.loads(json.dumps(figures))
    assert figures["benchmark"] == "eval_generation" and figures["n_prompts"] == 4
    by_variant = figures["by_variant"]
    assert list(by_variant) == ["batch 1", "batch 2", "batch 16", "prefill-alone 16"]
    assert figures["speedup"] == round(by_variant["batch 16"]["speedup"]["median"], 3) > 0
    assert by_variant["batch 1"]["speedup"]["median"] == 1.0

    new_tokens = figures["batch1_new_tokens"]  # one prefill per prompt at batch 1
    assert len(new_tokens) == 4 and all(1 <= t <= figures["max_new_tokens"] for t in new_tokens)
    assert by_variant["batch 1"]["decode_steps"] == by_variant["batch 1"]["row_steps"] == sum(t - 1 for t in new_tokens)
    assert figures["batch1_stopped_early"] == sum(t < figures["max_new_tokens"] for t in new_tokens)
    for name, f in by_variant.items():
        forward = f["prefill_s"]["median"] + f["decode_s"]["median"]
        assert f["prefill_s"]["median"] > 0 and forward <= f["wall_s"]["high"]
        assert 0 <= f["padding_waste"] < 1 and 0 <= f["stopped_row_share"] < 1
        # a batch decodes until its longest row stops: never fewer row steps than batch 1 needed
        assert f["row_steps"] >= by_variant["batch 1"]["row_steps"]
    assert by_variant["batch 1"]["padding_waste"] == by_variant["prefill-alone 16"]["padding_waste"] == 0
    assert by_variant["batch 16"]["decode_steps"] == max(new_tokens) - 1  # all 4 rows in one batch
    assert set(figures["differing"]) == {"batch 2", "batch 16", "prefill-alone 16"}
    for name, count in figures["differing"].items():
        assert count == len(figures["divergences"][name]) <= 4
    assert figures["repeat_stable"] is True


def test_first_divergence_finds_the_token(shared_data):
    """A batched answer that departs at character 3 is traced to a batch-1 generated token, with a
    non-negative top-2 margin and greedy's own token first."""
    from benchmarks.eval_generation import first_divergence
    from tl_lightning.evaluate import generate_predictions, load_items, render_prompts
    from tl_lightning.modeling import TINY_LLAMA, load_model, load_tokenizer

    tokenizer, model = load_tokenizer(TINY_LLAMA), load_model(TINY_LLAMA).eval()
    items = load_items("rotbench", shared_data / "RoTBench" / "First_Turn" / "clean.json", limit=1)
    prompt = render_prompts(items, tokenizer, "codellama")[0]
    [single] = generate_predictions(model, tokenizer, [prompt], batch_size=1, max_new_tokens=8, progress=False)
    assert len(single) > 4
    batched = single[:3] + ("X" if single[3] != "X" else "Y") + single[4:]
    found = first_divergence(model, tokenizer, prompt, single, batched, max_new_tokens=8)
    assert found["single_at"].startswith(single[3]) and found["batched_at"].startswith(batched[3])
    assert found["step"] is not None and found["margin"] >= 0 and found["position"] >= 3
    assert found["top2"][0].strip() in single  # top-1 is the token greedy generated there
