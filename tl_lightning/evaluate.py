"""Evaluate tool calling on RoTBench, ToolAlpaca, BFCL and any tool-use data (``generic``): TS / PI /
CF by each benchmark's rules (``metrics.py``), the exact-call rate and the mean IRM reward.

Commands (``python -m tl_lightning.evaluate ...``; each prints one JSON object as its LAST line:
``{"benchmark", "n", "ts", "pi", "cf", "exact_call", "mean_reward", "ci", "categories"}``, rates in
percent with two decimals, ``ci`` the 95% bootstrap interval of each figure over items):

- ``score --benchmark B --data PATH --predictions P.jsonl``: score a predictions file, one line
  ``{"id", "prediction"}`` per benchmark item in the data file's order (``id`` checked when
  present), the prediction in any rendering ``calls.parse_calls`` reads.
- ``run --benchmark B --data PATH --model M [--ckpt_path C] [--prompt_format F] ...``: render the
  prompts in the training format, generate greedily in batches, write ``predictions.jsonl``,
  ``report.json`` and ``report.md`` into ``--output_dir``, and score.
- ``gold --benchmark B --data PATH --output P.jsonl``: write the gold answers as a predictions
  file; scoring it gives the most the benchmark's own rules allow (below 100 where gold answers
  break them, e.g. RoTBench gold calls with empty arguments).
- ``compare --a A/report.json [...] --b B/report.json [...]``: model A minus model B on the same
  items, each figure's difference with its paired 95% bootstrap interval (several reports on a
  side: that model's runs with other seeds).

``--benchmark generic`` reads any format (``--data`` may be a normalized JSONL written by
``python -m tl_lightning.data convert``, or a synthetic world split such as
``synthetic:heldout_domains``) and scores the last assistant turn's calls (``metrics.py``).

Bad input (a missing, unreadable, non-UTF-8 or empty file, a malformed record, a predictions file
that does not match the items) prints one line ``error: file ..., record ..., field ...: reason``
on stderr and exits with status 2, no traceback, as ``python -m tl_lightning.data`` does.

An item is one gold assistant turn of a trajectory read by ``data.sources.read_trajectories``:
the LAST assistant turn (RoTBench, BFCL), or the FIRST one for ToolAlpaca (its first gold step);
``data.datamodule.gold_turn_index`` has the rule, so the ``eval`` batches score the same turns.
A BFCL item whose answer record is malformed is unscorable: it counts in ``n`` as failed, and the
result lists it (``"unscorable": [{"id", "reason"}]``, present only when there are such items).
Generation is ``generation.generate`` (greedy), with its ``StopRule``: the single-call benchmarks
(RoTBench, ToolAlpaca) stop after a complete call, BFCL and the generic rules at end of turn.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tl_lightning.bfcl_answers import BfclAnswer, bfcl_unscorable_reason
from tl_lightning.calls import ParseFailure, format_call, parse_calls
from tl_lightning.data.datamodule import gold_turn_index
from tl_lightning.data.formats.reading import read_text
from tl_lightning.data.prompt_record import checkpoint_prompt_format, saved_prompt_format
from tl_lightning.data.render import DEFAULT_PROMPT_FORMAT, choose_prompt_format, render_prompt
from tl_lightning.data.sources import read_trajectories
from tl_lightning.data.tokenize import encode_prompt
from tl_lightning.generation import StopRule, generate
from tl_lightning.lm_module import CausalLMModule
from tl_lightning.metrics import BENCHMARKS, ToolCallMetrics, item_category, score_item
from tl_lightning.modeling import load_model, load_tokenizer
from tl_lightning.pkt import PKTModule
from tl_lightning.quiet import quiet_library_noise
from tl_lightning.records import DataError, ToolCall, ToolSpec, Trajectory, exit_on_bad_input
from tl_lightning.reward import CATEGORIES, DEFAULT_TABLE
from tl_lightning.stats import bootstrap_mean, paired_difference


# ---------------------------------------------------------------------------------------------
# items


@dataclass(frozen=True)
class EvalItem:
    """One scored turn: ``trajectory.messages[turn]`` is the gold assistant turn; the prompt is
    everything before it."""

    trajectory: Trajectory
    turn: int

    @property
    def id(self) -> str:
        return self.trajectory.id

    @property
    def gold(self) -> tuple[tuple[ToolCall, ...], ...]:
        """Every acceptable call set of the gold turn."""
        return self.trajectory.messages[self.turn].acceptable()

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        return self.trajectory.tools

    @property
    def bfcl_ground_truth(self) -> BfclAnswer | None:
        return self.trajectory.meta.get("bfcl_ground_truth")

    @property
    def scenario(self) -> str | None:
        return self.trajectory.meta.get("scenario")

    @property
    def unscorable(self) -> str | None:
        """Why the item cannot be scored (a malformed BFCL answer record), or None."""
        return bfcl_unscorable_reason(self.bfcl_ground_truth)


def load_items(benchmark: str, data_path: str | Path, limit: int | None = None, sample: int | None = None,
               seed: int = 0) -> list[EvalItem]:
    """The benchmark items of ``data_path`` in file order: the first ``limit`` when given, or a
    ``sample`` of that many drawn with ``seed`` (still in file order; files are often sorted by
    scenario, so the first N would cover one scenario only). A file without records, or a record
    without an assistant turn to score, is a ``DataError`` naming the file (and record)."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r} (expected one of {BENCHMARKS})")
    if limit is not None and sample is not None:
        raise ValueError("give limit (the first N items) or sample (N items drawn at random), not both")
    if (limit is not None and limit < 1) or (sample is not None and sample < 1):
        raise ValueError(f"limit and sample must be >= 1, got limit={limit}, sample={sample}")
    # the generic rules score any format (normalized JSONL, the synthetic world, ...)
    trajectories = read_trajectories(str(data_path), format="auto" if benchmark == "generic" else benchmark)
    indices = range(len(trajectories))
    if limit is not None:
        indices = indices[:limit]
    if sample is not None and sample < len(indices):
        indices = sorted(random.Random(seed).sample(indices, sample))
    items = []
    for index in indices:
        try:
            items.append(EvalItem(trajectories[index], gold_turn_index(trajectories[index])))
        except DataError as e:
            raise e.located(source=str(data_path), index=index) from None
    return items


def gold_prediction(item: EvalItem) -> str:
    """The gold answer as a prediction (python form, one call per line): the first acceptable
    call set (for BFCL the reader's reference calls of its acceptable-value lists)."""
    return "\n".join(format_call(call) for call in item.gold[0])


def read_predictions(path: str | Path, items: Sequence[EvalItem]) -> list[str]:
    """The ``prediction`` of each line of a JSONL file, checked against ``items`` (count, order
    by ``id`` when present)."""
    lines = [line for line in read_text(path).splitlines() if line.strip()]
    if len(lines) != len(items):
        raise DataError(f"{len(lines)} predictions for {len(items)} benchmark items (one line per item, "
                        "in the data file's order)", source=str(path))
    predictions = []
    for index, (line, item) in enumerate(zip(lines, items)):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"not JSON: {e}", source=str(path), index=index) from None
        if not isinstance(record, dict) or not isinstance(record.get("prediction"), str):
            raise DataError("each line must be an object with a string 'prediction'", source=str(path),
                            index=index, field="prediction")
        if "id" in record and str(record["id"]) != item.id:
            raise DataError(f"id {record['id']!r} where the data file has {item.id!r} (predictions must "
                            "follow the data file's order)", source=str(path), index=index, field="id")
        predictions.append(record["prediction"])
    return predictions


def write_predictions(path: str | Path, items: Sequence[EvalItem], predictions: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for item, prediction in zip(items, predictions):
            f.write(json.dumps({"id": item.id, "prediction": prediction}, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# scoring


METRICS = ("ts", "pi", "cf", "exact_call")  # pass rates, in percent; beside them the mean IRM reward
# Benchmarks whose every item wants exactly one call: generation may stop at the newline after a
# complete call. Elsewhere (BFCL parallel, the generic rules) the model must end its turn itself,
# and a second call it makes is scored, not cut off.
SINGLE_CALL_BENCHMARKS = ("rotbench", "toolalpaca")


def stops_after_call(benchmark: str) -> bool:
    """Whether answers to ``benchmark`` end at the newline after a complete call (``StopRule``)."""
    return benchmark in SINGLE_CALL_BENCHMARKS


@dataclass(frozen=True)
class ItemResult:
    """One scored item: the benchmark's TS / PI / CF, and the IRM category and reward of the
    prediction (``exact_call`` = the category is ``exact``; ``metrics.item_category``)."""

    id: str
    ts: bool
    pi: bool
    cf: bool
    category: str
    reward: float

    @property
    def exact_call(self) -> bool:
        return self.category == "exact"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts, "pi": self.pi, "cf": self.cf, "exact_call": self.exact_call,
                "category": self.category, "reward": self.reward}


def score_items(benchmark: str, items: Sequence[EvalItem], predictions: Sequence[str]) -> list[ItemResult]:
    results = []
    for item, prediction in zip(items, predictions, strict=True):
        score = score_item(benchmark, prediction, item.gold, item.tools, item.bfcl_ground_truth)
        category = item_category(prediction, item.gold, item.tools)
        results.append(ItemResult(item.id, score.ts, score.pi, score.cf, category, DEFAULT_TABLE.value(category)))
    return results


def aggregate(results: Sequence[ItemResult], seed: int = 0) -> dict[str, Any]:
    """``n``, TS / PI / CF / exact-call rate in percent and the mean reward (two decimals), each with
    its 95% bootstrap interval over items (``ci``: name -> [low, high]), and the count of each IRM
    category."""
    if not results:
        raise ValueError("no items to aggregate")
    figures: dict[str, Any] = {"n": len(results)}
    ci: dict[str, list[float]] = {}
    for name in METRICS:
        interval = bootstrap_mean([float(getattr(r, name)) for r in results], seed=seed).scaled(100.0)
        figures[name], ci[name] = round(interval.estimate, 2), [round(interval.low, 2), round(interval.high, 2)]
    reward = bootstrap_mean([r.reward for r in results], seed=seed)
    figures["mean_reward"], ci["mean_reward"] = round(reward.estimate, 3), [round(reward.low, 3), round(reward.high, 3)]
    figures["ci"] = ci
    figures["categories"] = {c: n for c in CATEGORIES if (n := sum(r.category == c for r in results))}
    return figures


def summary(benchmark: str, results: Sequence[ItemResult], items: Sequence[EvalItem] = ()) -> dict[str, Any]:
    """The one-line result: ``{"benchmark", "n", "ts", "pi", "cf", "exact_call", "mean_reward", "ci",
    "categories"}`` (``aggregate``), plus ``"unscorable"`` (id and reason of each unscorable item of
    ``items``, counted in ``n`` as failed) when there are any."""
    result = {"benchmark": benchmark, **aggregate(results)}
    unscorable = [{"id": item.id, "reason": item.unscorable} for item in items if item.unscorable]
    if unscorable:
        result["unscorable"] = unscorable
    return result


def by_scenario(items: Sequence[EvalItem], results: Sequence[ItemResult]) -> dict[str, dict[str, Any]]:
    """Per-scenario figures (RoTBench's TG/RS/DU/... split), empty when items carry no scenario."""
    groups: dict[str, list[ItemResult]] = {}
    for item, result in zip(items, results):
        if item.scenario is not None:
            groups.setdefault(str(item.scenario), []).append(result)
    return {name: aggregate(group) for name, group in sorted(groups.items())}


def item_scores(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The per-item figures of a ``report.json`` as ``{id: {metric: value}}`` (pass flags as 0/1)."""
    try:
        return {str(i["id"]): {m: float(i[m]) for m in (*METRICS, "reward")} for i in report["items"]}
    except (KeyError, TypeError) as e:
        raise DataError(f"not a report.json of this version (items need id, {', '.join(METRICS)}, reward): {e}",
                        field="items") from None


def paired_comparison(reports_a: Sequence[dict[str, Any]], reports_b: Sequence[dict[str, Any]],
                      seed: int = 0) -> dict[str, Any]:
    """A minus B on the same items: for each metric the difference of means with its paired 95%
    bootstrap interval (``stats.paired_difference``). Several reports on one side are runs of one
    model (seeds) on the same items. Items are matched by id; the sets must be equal."""
    sides = [[item_scores(r) for r in reports] for reports in (reports_a, reports_b)]
    ids = sorted(sides[0][0])
    for side in sides:
        for scores in side:
            if sorted(scores) != ids:
                raise DataError("the reports do not score the same items (compare needs one item set)",
                                field="items")
    out: dict[str, Any] = {"n": len(ids), "runs": [len(sides[0]), len(sides[1])]}
    for metric in (*METRICS, "reward"):
        scale = 1.0 if metric == "reward" else 100.0
        a, b = ([[scores[i][metric] for i in ids] for scores in side] for side in sides)
        diff = paired_difference(a, b, seed=seed).scaled(scale)
        out[metric] = {"diff": round(diff.estimate, 3), "low": round(diff.low, 3), "high": round(diff.high, 3)}
    return out


# ---------------------------------------------------------------------------------------------
# generation


def render_prompts(items: Sequence[EvalItem], tokenizer, prompt_format: str) -> list[str]:
    """Each item's conversation before the gold turn plus the assistant generation prompt, in the
    training prompt format."""
    return [render_prompt(item.trajectory, item.turn, prompt_format=prompt_format, tokenizer=tokenizer)
            for item in items]


def length_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int | None = None) -> list[list[int]]:
    """Indices of ``lengths`` in batches, longest first: at most ``batch_size`` rows and, when
    given, at most ``max_batch_tokens`` padded prompt tokens (rows x longest) per batch, so one
    long prompt does not pad a whole batch to its length (a row longer than the cap goes alone)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        fits = batch is not None and len(batch) < batch_size and (
            max_batch_tokens is None or (len(batch) + 1) * lengths[batch[0]] <= max_batch_tokens)
        if fits:
            batch.append(i)
        else:
            batches.append([i])
    return batches


def generate_predictions(model, tokenizer, prompts: Sequence[str], batch_size: int = 16,
                         max_new_tokens: int = 128, stop_at_newline: bool = True,
                         progress: bool = True, max_batch_tokens: int | None = None) -> list[str]:
    """Answers for ``prompts`` (same order), generated in batches of similar length (less
    padding; ``length_batches``); a tqdm bar counts prompts."""
    from tqdm import tqdm

    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    encoded = [encode_prompt(p, tokenizer) for p in prompts]  # token for token as in training
    answers: list[str] = [""] * len(prompts)
    with tqdm(total=len(prompts), desc="generate", unit="prompt", disable=not progress, file=sys.stderr) as bar:
        for rows in length_batches([len(e) for e in encoded], batch_size, max_batch_tokens):
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors="pt")
            texts = generate(model, tokenizer, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                             max_new_tokens=max_new_tokens, stop=StopRule(after_call=stop_at_newline)).texts
            for i, text in zip(rows, texts):
                answers[i] = text
            bar.update(len(rows))
    return answers


def load_for_generation(model: str, ckpt_path: str | None = None, dtype: str = "float32"):
    """``(model, tokenizer, recorded prompt format or None)``: a PKTModule checkpoint when
    ``ckpt_path`` is given (the format its data was rendered in), else ``model`` (built-in name,
    HF id or exported folder: the format recorded in the folder)."""
    if ckpt_path:
        module = PKTModule.load_from_checkpoint(ckpt_path, map_location="cpu")
        net, tokenizer = module.model, module.tokenizer
        prompt_format = checkpoint_prompt_format(ckpt_path)
    else:
        net, tokenizer = load_model(model, dtype=dtype), load_tokenizer(model)
        prompt_format = saved_prompt_format(model)
    net.eval()
    if torch.cuda.is_available():
        net.to("cuda")
    return net, tokenizer, prompt_format


# ---------------------------------------------------------------------------------------------
# the same through Lightning: python train.py test --config configs/eval/<benchmark>.yaml


class ToolCallEvaluator(CausalLMModule):
    """Generate and score TS / PI / CF on ``ToolUseDataModule(stage="eval")`` batches, so that
    ``python train.py test --config configs/eval/rotbench.yaml`` gives ``run``'s figures (logged
    as ``test/ts``, ``test/pi``, ``test/cf``) on any devices / strategy Lightning offers.

    Args:
        benchmark: ``rotbench``, ``toolalpaca`` or ``bfcl`` (BFCL batches must carry
            ``bfcl_ground_truth``: its acceptable-value lists).
        model_name: built-in name, HF id or exported folder; ignored with ``pkt_checkpoint``.
        pkt_checkpoint: a ``PKTModule`` checkpoint to evaluate (its model, LoRA and tokenizer).
        The prompt format the model was trained with (``recorded_prompt_format``) is the eval
        DataModule's default (the CLI hands it over with ``connect``).
        dtype: weights dtype for ``model_name``; max_new_tokens: generation length.
    """

    def __init__(self, benchmark: str, model_name: str = "smollm2-135m-instruct", pkt_checkpoint: str | None = None,
                 dtype: str = "float32", max_new_tokens: int = 128) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tool_metrics = ToolCallMetrics(benchmark)
        self.model = None

    def model_source(self) -> str:
        """``model_name``, or the model a ``pkt_checkpoint`` was trained from (its tokenizer)."""
        if self.hparams.pkt_checkpoint:
            checkpoint = torch.load(self.hparams.pkt_checkpoint, map_location="cpu", weights_only=False)
            return checkpoint["hyper_parameters"]["model_name"]
        return self.hparams.model_name

    @property
    def recorded_prompt_format(self) -> str | None:
        """The prompt format the evaluated model was trained with, or None (not recorded)."""
        if self.hparams.pkt_checkpoint:
            return checkpoint_prompt_format(self.hparams.pkt_checkpoint)
        return super().recorded_prompt_format

    def configure_model(self) -> None:
        if self.model is not None:
            return
        if self.hparams.pkt_checkpoint:
            self.model = PKTModule.load_from_checkpoint(self.hparams.pkt_checkpoint, map_location="cpu").model
        else:
            self.model = load_model(self.hparams.model_name, dtype=self.hparams.dtype)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        benchmark = self.hparams.benchmark
        if "labels" in batch:
            raise ValueError("ToolCallEvaluator needs prompt batches: set data.stage to 'eval'")
        if benchmark == "bfcl" and "bfcl_ground_truth" not in batch:
            raise ValueError("BFCL scoring needs the acceptable-value lists: eval batches must carry "
                             "'bfcl_ground_truth' (Trajectory.meta['bfcl_ground_truth'] per prompt)")
        texts = generate(self.model, self.tokenizer, batch["input_ids"], batch["attention_mask"],
                         max_new_tokens=self.hparams.max_new_tokens,
                         stop=StopRule(after_call=stops_after_call(benchmark))).texts
        self.tool_metrics.update(texts, batch["gold"], batch["tools"], batch.get("bfcl_ground_truth"))

    def on_test_epoch_end(self) -> None:
        # compute() sums the states of all processes; every rank logs the same global figures
        self.log_dict({f"test/{name}": value for name, value in self.tool_metrics.compute().items()})
        self.tool_metrics.reset()


# ---------------------------------------------------------------------------------------------
# reports


def _cell(result: dict[str, Any], name: str) -> str:
    low, high = result["ci"][name]
    digits = 3 if name == "mean_reward" else 1
    return f"{result[name]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def figures_table(rows: dict[str, dict[str, Any]], first: str = "") -> list[str]:
    """Markdown rows (one per entry of ``rows``: an ``aggregate`` result) of n, TS / PI / CF /
    exact-call rate and mean reward, each with its 95% interval."""
    lines = [f"| {first} | n | TS | PI | CF | exact call | mean reward |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        cells = " | ".join(_cell(r, m) for m in (*METRICS, "mean_reward"))
        lines.append(f"| {name} | {r['n']} | {cells} |")
    return lines


def write_report(output_dir: Path, result: dict[str, Any], items: Sequence[EvalItem],
                 predictions: Sequence[str], results: Sequence[ItemResult], settings: dict[str, Any]) -> None:
    """``report.json`` (result, settings, per-scenario and per-item figures) and ``report.md``."""
    scenarios = by_scenario(items, results)
    unparsable = sum(isinstance(parse_calls(p), ParseFailure) for p in predictions)
    report = {**result, "settings": settings, "unparsable_predictions": unparsable, "by_scenario": scenarios,
              "items": [r.to_dict() for r in results]}
    (output_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = [f"# {result['benchmark']}: TS / PI / CF, exact-call rate, mean IRM reward", "",
             "Percent of items (mean reward: the IRM table's values), with 95% bootstrap intervals over items.", ""]
    lines += figures_table({"all": result}) + [""]
    if scenarios:
        lines += figures_table(scenarios, "scenario") + [""]
    categories = ", ".join(f"{c} {n}" for c, n in result["categories"].items())
    lines.append(f"IRM categories: {categories}.")
    lines.append(f"Predictions without a parseable call: {unparsable} of {len(predictions)}.")
    for entry in result.get("unscorable", ()):
        lines.append(f"Unscorable (counted as failed): `{entry['id']}`: {entry['reason']}")
    lines += ["", "## Settings", ""] + [f"- {k}: `{v}`" for k, v in settings.items()]
    (output_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# command line


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tl_lightning.evaluate", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("score", "score a predictions file"), ("run", "generate with a model, then score"),
                       ("gold", "write the gold answers as a predictions file, then score it")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--benchmark", required=True, choices=BENCHMARKS)
        sub.add_argument("--data", required=True, help="benchmark file (BFCL: the question file)")
        subset = sub.add_mutually_exclusive_group()
        subset.add_argument("--limit", type=_positive_int, default=None, help="only the first N items")
        subset.add_argument("--sample", type=_positive_int, default=None,
                            help="only N items drawn at random with --seed (kept in file order)")
        sub.add_argument("--seed", type=int, default=0, help="the seed of --sample")
        if name == "score":
            sub.add_argument("--predictions", required=True, help="JSONL, one {id, prediction} per item")
        if name == "gold":
            sub.add_argument("--output", required=True, help="where to write the predictions JSONL")
        if name == "run":
            sub.add_argument("--model", default="smollm2-135m-instruct",
                             help="built-in name, HF id or exported folder (tokenizer too)")
            sub.add_argument("--ckpt_path", default=None, help="a PKTModule checkpoint (.ckpt)")
            sub.add_argument("--prompt_format", default=None,
                             help="prompt format (default: the one the model was trained with, recorded in its "
                                  f"folder or checkpoint, else {DEFAULT_PROMPT_FORMAT})")
            sub.add_argument("--dtype", default="float32")
            sub.add_argument("--batch_size", type=int, default=16)
            sub.add_argument("--max_batch_tokens", type=int, default=16384,
                             help="cap on padded prompt tokens per batch (rows x longest prompt); 0: no cap")
            sub.add_argument("--max_new_tokens", type=int, default=128)
            sub.add_argument("--output_dir", default="eval_output")
    compare = commands.add_parser("compare", help="paired differences of two models on the same items")
    compare.add_argument("--a", nargs="+", required=True, help="report.json of model A (several: its seeds)")
    compare.add_argument("--b", nargs="+", required=True, help="report.json of model B (several: its seeds)")
    return parser


def _read_report(path: str) -> dict[str, Any]:
    try:
        return json.loads(read_text(Path(path)))
    except json.JSONDecodeError as e:
        raise DataError(f"not JSON: {e}", source=path) from None


def _run(args: argparse.Namespace, items: list[EvalItem]) -> tuple[list[str], dict[str, Any]]:
    started = time.perf_counter()
    model, tokenizer, recorded_format = load_for_generation(args.model, args.ckpt_path, args.dtype)
    prompt_format = choose_prompt_format(args.prompt_format, recorded_format)
    prompts = render_prompts(items, tokenizer, prompt_format)
    generation_started = time.perf_counter()
    predictions = generate_predictions(model, tokenizer, prompts, args.batch_size, args.max_new_tokens,
                                       stop_at_newline=stops_after_call(args.benchmark),
                                       max_batch_tokens=args.max_batch_tokens or None)
    finished = time.perf_counter()
    settings = {"data": args.data, "model": args.model, "ckpt_path": args.ckpt_path,
                "prompt_format": prompt_format, "dtype": args.dtype, "batch_size": args.batch_size,
                "max_batch_tokens": args.max_batch_tokens,
                "max_new_tokens": args.max_new_tokens, "limit": args.limit, "sample": args.sample,
                "seed": args.seed,
                "device": str(next(model.parameters()).device),
                "wall_s": round(finished - started, 1), "generation_s": round(finished - generation_started, 1)}
    return predictions, settings


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run one command; bad input raises ``DataError`` (the process entry point below turns it
    into one line on stderr and exit status 2, like ``python -m tl_lightning.data``)."""
    quiet_library_noise()
    args = _parser().parse_args(argv)
    if args.command == "compare":
        result = paired_comparison([_read_report(p) for p in args.a], [_read_report(p) for p in args.b])
        print(json.dumps(result), flush=True)
        return result
    items = load_items(args.benchmark, args.data, args.limit, args.sample, args.seed)
    if args.command == "score":
        predictions = read_predictions(args.predictions, items)
    elif args.command == "gold":
        predictions = [gold_prediction(item) for item in items]
        write_predictions(args.output, items, predictions)
    else:
        predictions, settings = _run(args, items)
    scores = score_items(args.benchmark, items, predictions)
    result = summary(args.benchmark, scores, items)
    if args.command == "run":
        output_dir = Path(args.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        write_predictions(output_dir / "predictions.jsonl", items, predictions)
        write_report(output_dir, result, items, predictions, scores, settings)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        sys.exit(exit_on_bad_input(error))
