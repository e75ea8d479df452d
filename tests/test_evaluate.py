"""tl_lightning.evaluate: gold ceilings on the real benchmark files, the score / gold / run
commands in-process, bad input through the real command (one line, exit status 2),
predictions-file checks (where generation stops: tests/test_generation.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tl_lightning.evaluate import (
    ItemResult,
    aggregate,
    gold_prediction,
    load_items,
    main,
    read_predictions,
    score_items,
    summary,
)
from tl_lightning.records import DataError

BFCL = "BFCL_v3"
EXEC = "BFCL_v3/unused_datasets/question"

# (benchmark, file under shared/data, items, TS, PI, CF) when the gold answers are the predictions
# (``gold_prediction``: the reader's first gold call set; for BFCL its reference calls).
GOLD_CEILINGS = [
    # 8 items whose every candidate has empty arguments ({}): RoTBench fails such predictions.
    ("rotbench", "RoTBench/First_Turn/clean.json", 105, 92.38, 92.38, 92.38),
    ("toolalpaca", "ToolAlpaca/data/eval_real.json", 114, 100.0, 100.0, 100.0),
    ("toolalpaca", "ToolAlpaca/data/eval_simulated.json", 100, 100.0, 100.0, 100.0),
    ("bfcl", f"{BFCL}/BFCL_v3_simple.json", 400, 100.0, 100.0, 100.0),
    ("bfcl", f"{BFCL}/BFCL_v3_multiple.json", 200, 100.0, 100.0, 100.0),
    ("bfcl", f"{BFCL}/BFCL_v3_parallel.json", 200, 100.0, 100.0, 100.0),
    ("bfcl", f"{BFCL}/BFCL_v3_parallel_multiple.json", 200, 100.0, 100.0, 100.0),
    # exec_simple_93: price=[0.1, 10] for an array of float; BFCL checks list items strictly (no int).
    ("bfcl", f"{EXEC}/BFCL_v3_exec_simple.json", 100, 100.0, 100.0, 99.0),
    # exec_multiple_46: the same order_food call; exec_multiple_45: gold passes price, not in the
    # schema, and a string for room_type, declared dict.
    ("bfcl", f"{EXEC}/BFCL_v3_exec_multiple.json", 50, 100.0, 98.0, 96.0),
    ("bfcl", f"{EXEC}/BFCL_v3_exec_parallel.json", 50, 100.0, 100.0, 100.0),
    ("bfcl", f"{EXEC}/BFCL_v3_exec_parallel_multiple.json", 40, 100.0, 100.0, 100.0),
]
EXPLAINED_FAILURES = {"exec_simple_93": "cf", "exec_multiple_46": "cf", "exec_multiple_45": "pi"}


@pytest.mark.parametrize("benchmark,relpath,n,ts,pi,cf", GOLD_CEILINGS, ids=[c[1].split("/")[-1] for c in GOLD_CEILINGS])
def test_gold_answers_reach_the_benchmark_ceiling(shared_data, benchmark, relpath, n, ts, pi, cf):
    items = load_items(benchmark, shared_data / relpath)
    scores = score_items(benchmark, items, [gold_prediction(item) for item in items])
    result = summary(benchmark, scores)
    assert {k: result[k] for k in ("benchmark", "n", "ts", "pi", "cf")} == {
        "benchmark": benchmark, "n": n, "ts": ts, "pi": pi, "cf": cf}
    # the gold call set itself is always the IRM reward's exact call
    assert (result["exact_call"], result["mean_reward"], result["categories"]) == (100.0, 1.0, {"exact": n})
    for item, score in zip(items, scores):
        if score.cf:
            continue
        if benchmark == "rotbench":  # the only RoTBench failures: no candidate with arguments
            assert all(not calls[0].arguments for calls in item.gold), item.id
        else:
            level = EXPLAINED_FAILURES[item.id]
            assert score.ts and (score.pi or level == "pi"), item.id


def test_toolalpaca_items_are_first_gold_steps(shared_data):
    items = load_items("toolalpaca", shared_data / "ToolAlpaca/data/eval_real.json")
    multi = [item for item in items if len(item.trajectory.meta["gold_steps"]) > 1]
    assert len(multi) == 20  # 13 + 6 + 1 instructions with 2, 3, 5 steps
    for item in multi:
        first = item.trajectory.meta["gold_steps"][0]
        assert item.gold[0][0].name == first["name"]


# ------------------------------------------------------------------ CLI in-process


def _last_json_line(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_gold_then_score_round_trip(shared_data, tmp_path, capsys):
    data = str(shared_data / "RoTBench/First_Turn/clean.json")
    gold = tmp_path / "gold.jsonl"
    written = main(["gold", "--benchmark", "rotbench", "--data", data, "--output", str(gold)])
    assert _last_json_line(capsys) == written
    lines = [json.loads(line) for line in gold.read_text().splitlines()]
    assert len(lines) == 105 and set(lines[0]) == {"id", "prediction"}
    scored = main(["score", "--benchmark", "rotbench", "--data", data, "--predictions", str(gold)])
    assert _last_json_line(capsys) == scored
    assert {k: scored[k] for k in ("benchmark", "n", "ts", "pi", "cf", "exact_call")} == {
        "benchmark": "rotbench", "n": 105, "ts": 92.38, "pi": 92.38, "cf": 92.38, "exact_call": 100.0}
    # a prediction in another rendering scores the same; a wrong one loses the item
    lines[0]["prediction"] = 'Thought: translate\nAction: get_translation_nllb\nAction Input: ' \
                             '{"input_text": "See you later", "tgt_lang": "jpn_Jpan", "src_lang": "eng_Latn", "max_length": "7"}'
    lines[1]["prediction"] = "I cannot help with that."
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(line) + "\n" for line in lines))
    main(["score", "--benchmark", "rotbench", "--data", data, "--predictions", str(edited)])
    assert _last_json_line(capsys)["ts"] == round(100 * 96 / 105, 2)


def test_bfcl_unscorable_item_counts_as_failed_and_is_listed(shared_data, tmp_path, capsys):
    """One broken line in the possible_answer file used to make the whole file unreadable; now
    that item fails and the result and the reports list it, the others are scored."""
    from tests.data.formats.test_bfcl import bfcl_files
    from tl_lightning.evaluate import write_report

    data = bfcl_files(shared_data, tmp_path, lambda q, a: a.__setitem__(1, "BROKEN"))
    result = main(["gold", "--benchmark", "bfcl", "--data", str(data), "--output", str(tmp_path / "g.jsonl")])
    assert _last_json_line(capsys) == result
    assert {k: result[k] for k in ("n", "ts", "pi", "cf")} == {"n": 3, "ts": 66.67, "pi": 66.67, "cf": 66.67}
    (entry,) = result["unscorable"]
    assert entry["id"] == "simple_1" and "invalid JSON on line 2" in entry["reason"]
    items = load_items("bfcl", data)
    predictions = [gold_prediction(item) for item in items]
    write_report(tmp_path, result, items, predictions, score_items("bfcl", items, predictions), {})
    assert json.loads((tmp_path / "report.json").read_text())["unscorable"] == [entry]
    assert "Unscorable (counted as failed): `simple_1`" in (tmp_path / "report.md").read_text()


def test_bfcl_irrelevance_gold_abstains_and_any_call_fails(shared_data, tmp_path, capsys):
    from tests.data.formats.test_bfcl import bfcl_category_file

    data = bfcl_category_file(shared_data, tmp_path, "irrelevance", with_answers=False)
    gold = tmp_path / "gold.jsonl"
    written = main(["gold", "--benchmark", "bfcl", "--data", str(data), "--output", str(gold)])
    assert {k: written[k] for k in ("benchmark", "n", "ts", "pi", "cf", "exact_call")} == {
        "benchmark": "bfcl", "n": 3, "ts": 100.0, "pi": 100.0, "cf": 100.0, "exact_call": 100.0}
    lines = [json.loads(line) for line in gold.read_text().splitlines()]
    assert [line["prediction"] for line in lines] == ["", "", ""]
    lines[0]["prediction"] = "calculate_triangle_area(base=10, height=5)"
    lines[1]["prediction"] = "No function fits this question."
    gold.write_text("".join(json.dumps(line) + "\n" for line in lines))
    scored = main(["score", "--benchmark", "bfcl", "--data", str(data), "--predictions", str(gold)])
    assert {k: scored[k] for k in ("ts", "pi", "cf", "exact_call")} == {
        "ts": 66.67, "pi": 66.67, "cf": 66.67, "exact_call": 66.67}


def test_score_checks_ids_and_count(shared_data, tmp_path):
    items = load_items("toolalpaca", shared_data / "ToolAlpaca/data/eval_real.json", limit=3)
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": i.id, "prediction": "x()"}) + "\n" for i in items))
    assert read_predictions(path, items) == ["x()"] * 3
    path.write_text("".join(json.dumps({"prediction": "x()"}) + "\n" for _ in items))  # ids are optional
    assert len(read_predictions(path, items)) == 3
    swapped = [items[1], items[0], items[2]]
    path.write_text("".join(json.dumps({"id": i.id, "prediction": "x()"}) + "\n" for i in swapped))
    with pytest.raises(DataError, match="data file's order"):
        read_predictions(path, items)
    with pytest.raises(DataError, match="2 predictions for 3"):
        path.write_text('{"prediction": "a()"}\n{"prediction": "b()"}\n')
        read_predictions(path, items)
    with pytest.raises(DataError, match="string 'prediction'"):
        path.write_text('{"prediction": 1}\n' * 3)
        read_predictions(path, items)


# ------------------------------------------------------------------ bad input, as a process

REPO = Path(__file__).resolve().parents[1]
TOOLS = [{"name": n, "description": n, "parameters": {"type": "object", "properties": {p: {"type": "string"}}}}
         for n, p in (("get_weather", "city"), ("finish", "answer"), ("ask_to_user", "question"))]


def _rotbench_record(index: int, call: str | None) -> dict:
    turns = [{"from": "system", "value": f"Action Input: use the tools\n{json.dumps(TOOLS)}\n"},
             {"from": "user", "value": "Weather in Paris?"}]
    if call is not None:
        turns.append({"from": "assistant", "value": f'Thought: look\nAction: {call}\nAction Input: {{"city": "Paris"}}'})
    return {"id": f"q{index}", "conversations": turns}


def _bad_input_files(folder: Path) -> None:
    """A good two-item RoTBench file and one of each kind of bad input."""
    (folder / "good.json").write_text(json.dumps([_rotbench_record(0, "get_weather"), _rotbench_record(1, "get_weather")]))
    (folder / "unknown_tool.json").write_text(json.dumps([_rotbench_record(0, "get_weather"), _rotbench_record(1, "get_time")]))
    (folder / "no_answer.json").write_text(json.dumps([_rotbench_record(0, None)]))
    (folder / "empty.json").write_text("[]")
    (folder / "latin1.json").write_bytes("[{\"id\": \"caf\u00e9\"}]".encode("latin-1"))
    (folder / "latin1.jsonl").write_bytes('{"prediction": "caf\u00e9()"}\n'.encode("latin-1") * 2)
    (folder / "one.jsonl").write_text('{"prediction": "get_weather(city=\\"Paris\\")"}\n')


# (argv after "score --benchmark rotbench", what the one error line must name)
BAD_INPUT = {
    "malformed record": (["--data", "unknown_tool.json", "--predictions", "one.jsonl"],
                         ["file unknown_tool.json", "record 1", "id 'q1'", "field 'messages[", "get_time"]),
    "no turn to score": (["--data", "no_answer.json", "--predictions", "one.jsonl"],
                         ["file no_answer.json", "record 0", "id 'q0'", "no assistant turn"]),
    "missing predictions": (["--data", "good.json", "--predictions", "nope.jsonl"], ["file nope.jsonl", "cannot read"]),
    "non-UTF-8 predictions": (["--data", "good.json", "--predictions", "latin1.jsonl"],
                              ["file latin1.jsonl", "not UTF-8"]),
    "non-UTF-8 data": (["--data", "latin1.json", "--predictions", "one.jsonl"], ["file latin1.json", "not UTF-8"]),
    "empty benchmark": (["--data", "empty.json", "--predictions", "one.jsonl"], ["file empty.json", "no records"]),
    "wrong count": (["--data", "good.json", "--predictions", "one.jsonl"], ["file one.jsonl", "1 predictions for 2"]),
}


def run_command(module: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", module, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_and_exit_status_2(case, tmp_path):
    """``python -m tl_lightning.evaluate`` answers bad input like ``python -m tl_lightning.data``:
    one line on stderr naming the file, record and field, exit status 2, no traceback."""
    _bad_input_files(tmp_path)
    argv, named = BAD_INPUT[case]
    done = run_command("tl_lightning.evaluate", "score", "--benchmark", "rotbench", *argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: file "), done.stderr
    for fragment in named:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.slow
@pytest.mark.parametrize("argv, message", [
    (["--benchmark", "bogus", "--data", "good.json", "--predictions", "one.jsonl"], "argument --benchmark: invalid choice"),
    (["--benchmark", "rotbench", "--data", "good.json", "--predictions", "one.jsonl", "--limit", "0"],
     "argument --limit: must be >= 1"),
])
def test_bad_arguments_are_argparse_errors(argv, message, tmp_path):
    _bad_input_files(tmp_path)
    done = run_command("tl_lightning.evaluate", "score", *argv, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message in done.stderr.strip().splitlines()[-1]


def test_good_input_still_scores(tmp_path, capsys):
    _bad_input_files(tmp_path)
    data = str(tmp_path / "good.json")
    assert main(["gold", "--benchmark", "rotbench", "--data", data, "--output", str(tmp_path / "g.jsonl")])["cf"] == 100.0
    with pytest.raises(DataError, match="no records"):  # in-process, main raises for its caller
        main(["gold", "--benchmark", "rotbench", "--data", str(tmp_path / "empty.json"),
              "--output", str(tmp_path / "x.jsonl")])


# ------------------------------------------------------------------ run (generation)


@pytest.mark.slow
def test_run_with_tiny_llama_writes_predictions_and_reports(shared_data, tmp_path, capsys):
    out = tmp_path / "eval"
    result = main(["run", "--benchmark", "toolalpaca", "--data", str(shared_data / "ToolAlpaca/data/eval_real.json"),
                   "--model", "tiny-llama", "--limit", "4", "--batch_size", "3", "--max_new_tokens", "8",
                   "--output_dir", str(out)])
    assert _last_json_line(capsys) == result
    assert result["benchmark"] == "toolalpaca" and result["n"] == 4
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    items = load_items("toolalpaca", shared_data / "ToolAlpaca/data/eval_real.json", limit=4)
    assert [line["id"] for line in lines] == [item.id for item in items]
    report = json.loads((out / "report.json").read_text())
    assert {k: report[k] for k in result} == result
    assert report["settings"]["model"] == "tiny-llama" and len(report["items"]) == 4
    assert "| 4 |" in (out / "report.md").read_text()
    # the written predictions score to the same figures
    main(["score", "--benchmark", "toolalpaca", "--data", str(shared_data / "ToolAlpaca/data/eval_real.json"),
          "--limit", "4", "--predictions", str(out / "predictions.jsonl")])
    assert _last_json_line(capsys) == result
    # a PKTModule checkpoint of the same weights generates the same answers
    import lightning.pytorch as pl

    from tl_lightning.pkt import PKTModule

    module = PKTModule(model_name="tiny-llama")
    module.configure_model()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, max_steps=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "tiny.ckpt")
    main(["run", "--benchmark", "toolalpaca", "--data", str(shared_data / "ToolAlpaca/data/eval_real.json"),
          "--ckpt_path", str(tmp_path / "tiny.ckpt"), "--limit", "2", "--max_new_tokens", "8",
          "--output_dir", str(tmp_path / "from_ckpt")])
    from_ckpt = [json.loads(line) for line in (tmp_path / "from_ckpt" / "predictions.jsonl").read_text().splitlines()]
    assert from_ckpt == lines[:2]


@pytest.mark.slow
def test_train_py_test_with_an_eval_config(shared_data, tmp_path):
    from tl_lightning.cli import main as cli_main

    config = Path(__file__).resolve().parents[1] / "configs" / "eval" / "toolalpaca.yaml"
    cli = cli_main(["test", "--config", str(config), f"--trainer.default_root_dir={tmp_path}",
                    "--trainer.accelerator=cpu", "--trainer.limit_test_batches=1",
                    "--model.init_args.model_name=tiny-llama", "--model.init_args.max_new_tokens=4",
                    f"--data.data_path={shared_data / 'ToolAlpaca/data/eval_real.json'}", "--data.batch_size=2"])
    metrics = cli.trainer.callback_metrics
    assert {"test/ts", "test/pi", "test/cf"} <= set(metrics)
    assert 0.0 <= float(metrics["test/cf"]) <= float(metrics["test/pi"]) <= float(metrics["test/ts"]) <= 100.0
    assert cli.model.tool_metrics.total.item() == 0  # reset after the epoch


def test_sample_is_seeded_and_in_file_order(shared_data):
    path = shared_data / "RoTBench/First_Turn/clean.json"
    every = [i.id for i in load_items("rotbench", path)]
    drawn = [i.id for i in load_items("rotbench", path, sample=10, seed=1)]
    assert len(set(drawn)) == 10 and drawn == [i for i in every if i in drawn]  # file order kept
    assert drawn == [i.id for i in load_items("rotbench", path, sample=10, seed=1)]
    assert drawn != [i.id for i in load_items("rotbench", path, sample=10, seed=2)]
    assert drawn != every[:10]  # not simply the head of a file sorted by scenario
    assert len(load_items("rotbench", path, sample=1000)) == len(every)
    with pytest.raises(ValueError, match="not both"):
        load_items("rotbench", path, limit=3, sample=3)


def test_length_batches_cap_padded_tokens():
    from tl_lightning.evaluate import length_batches

    lengths = [100, 4000, 300, 200, 1000, 50]
    assert length_batches(lengths, batch_size=4) == [[1, 4, 2, 3], [0, 5]]  # longest first
    capped = length_batches(lengths, batch_size=4, max_batch_tokens=2000)
    assert capped == [[1], [4, 2], [3, 0, 5]]  # 4000 alone; 2 x 1000; 3 x 200
    assert sorted(i for b in capped for i in b) == list(range(len(lengths)))
    assert all(len(b) * lengths[b[0]] <= 2000 for b in capped if len(b) > 1)
    with pytest.raises(ValueError, match="batch_size"):
        length_batches(lengths, batch_size=0)


# ---------------------------------------------------------------------------------------------
# the generic rules, intervals and paired comparisons


def test_generic_benchmark_scores_a_normalized_jsonl(tmp_path, capsys):
    from tl_lightning.data import synthetic
    from tl_lightning.data.sources import write_jsonl

    data = tmp_path / "heldout.jsonl"
    write_jsonl(synthetic.generate_prompts(8, seed=3), data)
    gold = tmp_path / "gold.jsonl"
    written = main(["gold", "--benchmark", "generic", "--data", str(data), "--output", str(gold)])
    assert (written["n"], written["ts"], written["cf"], written["exact_call"]) == (8, 100.0, 100.0, 100.0)
    lines = [json.loads(line) for line in gold.read_text().splitlines()]
    lines[0]["prediction"] = "I do not know."
    gold.write_text("".join(json.dumps(line) + "\n" for line in lines))
    scored = main(["score", "--benchmark", "generic", "--data", str(data), "--predictions", str(gold)])
    assert (scored["ts"], scored["cf"], scored["exact_call"]) == (87.5, 87.5, 87.5)
    assert scored["categories"] == {"unparsable_or_unknown_tool": 1, "exact": 7}
    assert scored["mean_reward"] == round((7 * 1.0 - 2.0) / 8, 3)
    low, high = scored["ci"]["cf"]
    assert low < 87.5 <= high == 100.0


def _result(i: int, passed: bool, category: str = "exact", reward: float = 1.0) -> ItemResult:
    return ItemResult(f"item{i}", passed, passed, passed, category if passed else "wrong_tool",
                      reward if passed else -1.5)


def test_aggregate_gives_every_figure_an_interval():
    results = [_result(i, i % 4 != 0) for i in range(40)]  # 30 of 40 pass
    figures = aggregate(results)
    assert (figures["n"], figures["ts"], figures["exact_call"]) == (40, 75.0, 75.0)
    assert figures["mean_reward"] == round((30 - 15) / 40, 3)
    assert set(figures["ci"]) == {"ts", "pi", "cf", "exact_call", "mean_reward"}
    low, high = figures["ci"]["ts"]
    assert 55 < low < 75 < high < 90
    assert figures["categories"] == {"wrong_tool": 10, "exact": 30}


def _report(path: Path, results: list[ItemResult]) -> str:
    path.write_text(json.dumps({"items": [r.to_dict() for r in results]}))
    return str(path)


def test_compare_gives_paired_differences_on_the_same_items(tmp_path, capsys):
    better = [_result(i, i % 5 != 0) for i in range(50)]  # 40 of 50
    worse = [_result(i, i % 5 != 0 and i % 2 == 0) for i in range(50)]  # 20 of 50, a subset
    a, b = _report(tmp_path / "a.json", better), _report(tmp_path / "b.json", worse)
    result = main(["compare", "--a", a, "--b", b])
    assert _last_json_line(capsys) == result
    assert (result["n"], result["runs"]) == (50, [1, 1])
    assert result["cf"]["diff"] == 40.0 and 0 < result["cf"]["low"] < 40.0 < result["cf"]["high"]
    assert result["reward"]["diff"] == round((40 - 15 - (20 - 45)) / 50, 3)
    same = main(["compare", "--a", a, "--b", a, a])  # a model against its own runs
    assert same["cf"] == {"diff": 0.0, "low": 0.0, "high": 0.0}
    other_items = _report(tmp_path / "c.json", better[:-1])
    with pytest.raises(DataError, match="same items"):
        main(["compare", "--a", a, "--b", other_items])
