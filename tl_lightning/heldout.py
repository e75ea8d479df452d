"""``HeldOutEvaluation``: tool-calling accuracy on held-out data while a model trains.

A Lightning ``Callback`` for ``PKTModule`` and ``IRMPPOModule`` (any module with ``model`` and
``tokenizer``): before the first training batch, every ``every_n_batches`` training batches and
after the last one, it generates answers to a held-out benchmark (``evaluate.load_items``: a
benchmark file or a synthetic world split such as ``synthetic:heldout_domains?n=100``) in the
prompt format the DataModule trains with, scores them (``evaluate.score_items``: TS / PI / CF, the
exact-call rate and the mean IRM reward, each with its 95% bootstrap interval) and

- logs ``<name>/ts``, ``/pi``, ``/cf``, ``/exact_call`` (percent) and ``/mean_reward`` to every
  logger at the current ``global_step`` (TensorBoard, CSV, ...);
- puts them into ``trainer.callback_metrics``, so ``ModelCheckpoint(monitor="heldout/exact_call",
  mode="max", every_n_train_steps=...)`` keeps the best model when its saves fall on evaluations
  (Lightning runs checkpoint callbacks after all others; the evaluation after the last batch runs
  when training has ended, after the last save, so it is logged but chooses no checkpoint);
- keeps every evaluation in ``history``: step, batches, the figures with their intervals and the
  per-item results (``items``, in item order, as in a ``report.json``), so two evaluations compare
  item by item (``evaluate.paired_comparison``); ``results`` holds the latest per-item results;
- writes that history to ``<log_dir>/<name>.json`` after every evaluation (rank 0; also the
  evaluation after the last batch, which no checkpoint holds).

Counting: ``every_n_batches`` counts training batches: optimizer steps for ``PKTModule`` (without
gradient accumulation), rollout batches for the RL module (whose ``global_step`` counts each of its
optimizer steps). Resumed runs go on counting from the checkpoint's position.

Processes: each rank answers its share of the items (ranks padded to the same number of prompts,
so synchronised FSDP generation steps together); the per-item figures are gathered, so every rank
computes the same result over all items.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from tl_lightning.evaluate import (
    METRICS,
    ItemResult,
    aggregate,
    generate_predictions,
    load_items,
    render_prompts,
    score_items,
    stops_after_call,
)
from tl_lightning.reward import CATEGORIES, DEFAULT_TABLE


def _encode(results: list[ItemResult], count: int) -> torch.Tensor:
    """(count, 5) float tensor of per-item ts, pi, cf, category index, counted flag; rows past
    ``len(results)`` are padding (flag 0)."""
    rows = torch.zeros(count, 5)
    for k, r in enumerate(results):
        rows[k] = torch.tensor([r.ts, r.pi, r.cf, CATEGORIES.index(r.category), 1.0])
    return rows


def _decode(rows: torch.Tensor) -> list[ItemResult]:
    """The counted rows of ``_encode`` (gathered over ranks, in item order) back as results (ids
    are positions)."""
    results = []
    for k, (ts, pi, cf, category, counted) in enumerate(rows.tolist()):
        if counted:
            name = CATEGORIES[int(category)]
            results.append(ItemResult(str(k), bool(ts), bool(pi), bool(cf), name, DEFAULT_TABLE.value(name)))
    return results


class HeldOutEvaluation(Callback):
    """Generate on held-out items during ``fit`` and log tool-calling figures (module docstring).

    Args:
        data: a benchmark file or built-in world string (``synthetic:heldout_domains?n=100``).
        benchmark: the scoring rules: ``generic`` (any data; the default), ``bfcl``, ``rotbench``,
            ``toolalpaca``.
        every_n_batches: evaluate after every N training batches (0: only at start and end).
        at_start, at_end: evaluate the model before training and after the last batch.
        sample, seed: a seeded sample of N items (kept in file order); None: every item.
        max_new_tokens, batch_size: generation budget and rows per generation batch (greedy).
        prompt_format: None: the format the DataModule renders its training data in.
        name: the metrics' prefix (``heldout/exact_call``).
    """

    def __init__(self, data: str, benchmark: str = "generic", every_n_batches: int = 0, at_start: bool = True,
                 at_end: bool = True, sample: int | None = None, seed: int = 0, max_new_tokens: int = 96,
                 batch_size: int = 16, prompt_format: str | None = None, name: str = "heldout") -> None:
        if every_n_batches < 0 or max_new_tokens < 1 or batch_size < 1:
            raise ValueError("every_n_batches must be >= 0, max_new_tokens and batch_size >= 1")
        self.data, self.benchmark, self.every_n_batches = data, benchmark, every_n_batches
        self.at_start, self.at_end, self.sample, self.seed = at_start, at_end, sample, seed
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.prompt_format, self.name = prompt_format, name
        self.items: list = []
        self.history: list[dict[str, Any]] = []
        self.results: list[ItemResult] = []
        self._last_evaluated: int | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit" and not self.items:
            self.items = load_items(self.benchmark, self.data, sample=self.sample, seed=self.seed)

    # ---- when

    @staticmethod
    def _batches_done(trainer: Trainer) -> int:
        return trainer.fit_loop.epoch_loop.batch_progress.total.processed

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.at_start and self._batches_done(trainer) == 0:
            self.evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        done = self._batches_done(trainer)
        if self.every_n_batches and done % self.every_n_batches == 0:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.at_end and self._last_evaluated != self._batches_done(trainer):
            self.evaluate(trainer, pl_module)

    # ---- what

    def _prompt_format(self, trainer: Trainer) -> str:
        if self.prompt_format is not None:
            return self.prompt_format
        datamodule = trainer.datamodule
        hparams = getattr(datamodule, "hparams", {}) if datamodule is not None else {}
        if "prompt_format" not in hparams:
            raise ValueError("HeldOutEvaluation needs a prompt_format (or a ToolUseDataModule that has set one up)")
        return hparams["prompt_format"]

    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        """Answer this rank's share of the items, gather every rank's figures, log them."""
        started = time.perf_counter()
        rank, world = trainer.global_rank, trainer.world_size
        share = self.items[rank::world]
        per_rank = -(-len(self.items) // world)
        padded = share + [self.items[0]] * (per_rank - len(share))  # equal generation work on every rank
        tokenizer = pl_module.tokenizer
        prompts = render_prompts(padded, tokenizer, self._prompt_format(trainer))
        answers = generate_predictions(pl_module.model, tokenizer, prompts, batch_size=self.batch_size,
                                       max_new_tokens=self.max_new_tokens, stop_at_newline=stops_after_call(self.benchmark),
                                       progress=trainer.is_global_zero and trainer.progress_bar_callback is not None)
        rows = _encode(score_items(self.benchmark, share, answers[:len(share)]), per_rank).to(pl_module.device)
        if world > 1:
            rows = trainer.strategy.all_gather(rows).reshape(-1, rows.shape[-1])
        # gathered rows are rank-major: item k of rank r sits at r * per_rank + k, i.e. item r + k * world
        order = [r * per_rank + k for k in range(per_rank) for r in range(world)]
        self.results = _decode(rows.cpu()[order])
        figures = aggregate(self.results, seed=self.seed)
        figures["seconds"] = round(time.perf_counter() - started, 1)
        self._record(trainer, figures)
        return figures

    def _record(self, trainer: Trainer, figures: dict[str, Any]) -> None:
        step, batches = trainer.global_step, self._batches_done(trainer)
        self._last_evaluated = batches
        self.history.append({"step": step, "batches": batches, **figures,
                             "items": [r.to_dict() for r in self.results]})
        values = {f"{self.name}/{m}": float(figures[m]) for m in (*METRICS, "mean_reward")}
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)
        log_dir = trainer.log_dir  # every rank: the property broadcasts rank 0's answer
        if trainer.is_global_zero and log_dir is not None:
            path = Path(log_dir) / f"{self.name.replace('/', '_')}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"data": self.data, "benchmark": self.benchmark, "history": self.history},
                                       indent=1) + "\n")
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})

    # ---- resume: the history travels with the checkpoint

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "last_evaluated": self._last_evaluated}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])
        self._last_evaluated = state_dict["last_evaluated"]
