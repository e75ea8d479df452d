"""``ToolUseDataModule``: wires the data path into Lightning dataloaders.

source files (or the built-in tool world) -> train/val split by trajectory -> MAE samples ->
rendered text + spans -> token ids, labels, PKT weights -> length-bucketed (optionally packed)
batches. Every step is a plain function of its own module; this file only adds what is about
batches:

- ``max_length`` never cuts a target silently: an over-long sample is dropped and counted
  (``on_overlength="drop"``) or raises ``DataError`` (``"raise"``).
- Length bucketing (``sampling.BucketBatchSampler``): batches hold similar lengths, so padding
  stays small.
- Packing (``sft`` only): samples are packed first-fit-decreasing into rows of at most
  ``max_length`` tokens; ``position_ids`` restart at 0 for every sample (and for the padding run
  at the end of a row). Hugging Face models then keep attention inside each sample when they get
  ``position_ids`` and no ``attention_mask``: ``model_inputs(batch)`` gives exactly those kwargs.
- Mid-epoch resume: the train loader is a ``sampling.ResumableDataLoader``, whose position
  Lightning keeps in every checkpoint; shuffling is seeded by (seed, epoch).
- Each stage builds its items in its own method (``_sft_items``, ``_rl_items``, ``_eval_items``;
  ``env`` hands out task indices) and names its item length and collate function (``_batching``).

Batches (the contract the modules consume):

- ``sft``: ``input_ids``, ``attention_mask``, ``labels`` (-100 = no loss, unshifted),
  ``loss_weights``, ``key_mask``; with packing also ``position_ids``. All (B, T).
- ``rl`` / ``eval``: LEFT-padded prompts ``input_ids``, ``attention_mask`` (B, P) and python
  lists ``ids``, ``gold`` (acceptable call sets of the target turn), ``tools``; ``eval`` batches
  also ``bfcl_ground_truth`` (``meta["bfcl_ground_truth"]`` per prompt, None when absent).
- ``eval`` prompts are the benchmark's items: exactly one per trajectory, at its scored turn
  (``gold_turn_index``: the last assistant turn, the first for ToolAlpaca), whatever MAE would
  select (MAE is not applied); an over-long prompt raises ``DataError`` (never dropped).
- ``env`` (multi-turn RL, ``episodes.py``): the tasks of the RL module's environment, split into
  train / val by ``val_fraction``; a batch is python lists ``tasks`` (indices into
  ``environment.tasks``) and ``ids`` (their ids), and ``prompt_format`` (the format the module
  renders the episodes in). The module renders and runs the episodes; ``max_length``, MAE and PKT
  do not apply (the episode's token budget does, and MAE in RL is the module's option).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from tl_lightning.data import world
from tl_lightning.data.formats import scored_turn
from tl_lightning.data.mae import LAYOUTS, ErrorDetector, Sample, apply_mae
from tl_lightning.data.prompt_record import saved_prompt_format
from tl_lightning.data.render import PROMPT_FORMATS, choose_prompt_format, render_prompt, render_sample
from tl_lightning.data.sampling import BucketBatchSampler, EpochSampler, ResumableDataLoader
from tl_lightning.data.sources import read_trajectories_with_report
from tl_lightning.data.tokenize import TokenizedSample, encode_prompt, tokenize_rendered
from tl_lightning.losses import IGNORE_INDEX
from tl_lightning.modeling import load_tokenizer
from tl_lightning.records import DataError, ToolCall, ToolSpec, Trajectory

STAGES = ("sft", "rl", "eval", "env")
OVERLENGTH = ("drop", "raise")
Built = tuple[list[Any], dict[str, Any], list[str]]
"""What a stage builds from trajectories: its items, the MAE report, the ids dropped as over-long."""


# ---------------------------------------------------------------- read and split


def read_sources(paths: Sequence[str], format: str = "auto",
                 on_error: str = "raise") -> tuple[list[Trajectory], list[dict[str, Any]]]:
    """All trajectories of ``paths`` in order (``format`` applies to every path) and one read
    report per path (records skipped with ``on_error="skip"``)."""
    trajs, reports = [], []
    for p in paths:
        read, report = read_trajectories_with_report(p, format=format, on_error=on_error)
        trajs += read
        reports.append(report.to_dict())
    return trajs, reports


def split_by_trajectory(trajs: Sequence[Any], val_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """A seeded train/val split of whole trajectories, so no conversation (nor any of its
    per-turn samples) is in both. At least one validation trajectory when ``val_fraction > 0``
    and there are two or more."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = list(range(len(trajs)))
    random.Random(seed).shuffle(order)
    n_val = round(len(trajs) * val_fraction)
    if val_fraction > 0 and n_val == 0 and len(trajs) > 1:
        n_val = 1
    val = set(order[:n_val])
    return [t for i, t in enumerate(trajs) if i not in val], [t for i, t in enumerate(trajs) if i in val]


# ---------------------------------------------------------------- samples -> token rows


def _reject_overlength(what: str, sample_id: str, length: int, max_length: int, on_overlength: str) -> None:
    """Raise for an over-long sample or prompt unless ``on_overlength`` is ``"drop"``."""
    if on_overlength == "raise":
        raise DataError(f"{what} is {length} tokens, longer than max_length={max_length}; raise max_length "
                        "or use on_overlength='drop'", record_id=sample_id, field="max_length")


def tokenize_samples(samples: Iterable[Sample], tokenizer: Any, *, prompt_format: str, w_max: float,
                     max_length: int, on_overlength: str, exclude_value_end: bool = False,
                     name_end_key: bool = False) -> tuple[list[TokenizedSample], list[str]]:
    """Render and tokenize SFT samples (PKT weights: ``tokenize_rendered``); return those that fit
    ``max_length`` and the ids of those that did not (dropped whole: cutting would lose
    supervised tokens)."""
    kept, dropped = [], []
    for s in samples:
        tok = tokenize_rendered(render_sample(s, prompt_format, tokenizer), tokenizer, w_max=w_max,
                                exclude_value_end=exclude_value_end, name_end_key=name_end_key)
        if len(tok.input_ids) > max_length:
            _reject_overlength("sample", s.id, len(tok.input_ids), max_length, on_overlength)
            dropped.append(s.id)
        else:
            kept.append(tok)
    return kept, dropped


@dataclass(frozen=True)
class PromptSample:
    """A prompt for generation: the conversation before an assistant call turn, the call sets
    accepted there, the tools offered, the length in tokens of the gold answer as trained
    (``answer_length``: what generation must produce, end marker included), and (eval prompts of
    BFCL) BFCL's acceptable-value lists."""

    id: str
    input_ids: list[int]
    gold: tuple[tuple[ToolCall, ...], ...]
    tools: tuple[ToolSpec, ...]
    answer_length: int
    bfcl_ground_truth: Any = None


def answer_length(traj: Trajectory, turn: int, tokenizer: Any, prompt_format: str) -> int:
    """Tokens of the assistant turn ``traj.messages[turn]`` as SFT supervises it (its content and
    end marker, in a sample that ends with it): what a generation budget must hold for it."""
    prefix = Trajectory(traj.id, traj.tools, traj.messages[:turn + 1], traj.meta)
    labels = tokenize_rendered(render_sample(Sample(traj.id, prefix, (turn,)), prompt_format, tokenizer),
                               tokenizer).labels
    return sum(label != IGNORE_INDEX for label in labels)


def truncated_answers_warning(lengths: Sequence[int], max_new_tokens: int, tolerance: float = 0.01) -> str | None:
    """A warning when more than ``tolerance`` of the gold answers (``answer_length`` each) are longer
    than ``max_new_tokens`` (a perfect policy would be cut off on them), else None."""
    over = sum(n > max_new_tokens for n in lengths)
    if not lengths or over <= tolerance * len(lengths):
        return None
    p99 = sorted(lengths)[math.ceil(0.99 * len(lengths)) - 1]
    return (f"{over} of {len(lengths)} gold answers ({100 * over / len(lengths):.1f}%) are longer than "
            f"max_new_tokens={max_new_tokens} (99th percentile: {p99} tokens): generation cuts them off; "
            f"raise max_new_tokens to at least {p99}")


def gold_turn_index(traj: Trajectory) -> int:
    """The message index of the assistant turn a benchmark scores: the format registry's
    ``scored_turn`` of ``traj.meta["format"]``, the first turn for ToolAlpaca (its first gold
    step), else the last one. (``meta["format"]`` is set by the reader and kept through the
    normalized JSONL.)"""
    turns = traj.assistant_turns()
    if not turns:
        raise DataError("no assistant turn, so no gold answer to score", record_id=traj.id)
    return turns[0] if scored_turn(traj.meta.get("format")) == "first" else turns[-1]


def make_eval_prompts(trajs: Iterable[Trajectory], tokenizer: Any, *, prompt_format: str,
                      max_length: int) -> list[PromptSample]:
    """Exactly one prompt per trajectory, at its ``gold_turn_index`` (no MAE: the benchmark
    decides what is scored), id = the trajectory id. A prompt longer than ``max_length`` raises
    ``DataError``: dropping it would change the benchmark's denominator."""
    prompts = []
    for traj in trajs:
        turn = gold_turn_index(traj)
        ids = encode_prompt(render_prompt(traj, turn, prompt_format, tokenizer), tokenizer)
        if len(ids) > max_length:
            raise DataError(f"eval prompt is {len(ids)} tokens, longer than max_length={max_length}; raise "
                            "max_length (eval never drops an item: the benchmark's denominator must stay)",
                            source=traj.meta.get("source"), record_id=traj.id, field="max_length")
        prompts.append(PromptSample(traj.id, ids, traj.messages[turn].acceptable(), traj.tools,
                                    answer_length(traj, turn, tokenizer, prompt_format),
                                    traj.meta.get("bfcl_ground_truth")))
    return prompts


def make_prompts(samples: Iterable[Sample], tokenizer: Any, *, prompt_format: str, max_length: int,
                 on_overlength: str) -> tuple[list[PromptSample], list[str]]:
    """One prompt per supervised assistant turn that makes calls (final text answers have no
    call to score); return the prompts that fit ``max_length`` and the ids of the others."""
    kept, dropped = [], []
    for s in samples:
        traj = s.trajectory
        turn_number = {i: k for k, i in enumerate(traj.assistant_turns(), start=1)}
        for t in s.targets:
            if not traj.messages[t].calls:
                continue
            pid = f"{traj.id}/turn{turn_number[t]}"
            ids = encode_prompt(render_prompt(traj, t, prompt_format, tokenizer), tokenizer)
            if len(ids) > max_length:
                _reject_overlength("prompt", pid, len(ids), max_length, on_overlength)
                dropped.append(pid)
            else:
                kept.append(PromptSample(pid, ids, traj.messages[t].acceptable(), traj.tools,
                                         answer_length(traj, t, tokenizer, prompt_format)))
    return kept, dropped


def pack_rows(lengths: Sequence[int], max_length: int) -> list[list[int]]:
    """Group sample indices into rows of at most ``max_length`` tokens, first-fit decreasing
    (ties by index, so deterministic). Every length must be <= ``max_length``."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        if lengths[i] > max_length:
            raise ValueError(f"sample {i} has {lengths[i]} tokens > max_length={max_length}")
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(max_length - lengths[i])
    return rows


# ---------------------------------------------------------------- collate


def collate_sft(rows: list[Sequence[TokenizedSample]], pad_id: int, packed: bool) -> dict[str, torch.Tensor]:
    """Right-pad rows of concatenated samples into (B, T) tensors (T = longest row).

    With ``packed``, ``position_ids`` restart at 0 at every sample and at the padding run, and
    the first token of every sample is unsupervised, so no loss crosses a sample boundary.
    """
    lengths = [sum(len(s.input_ids) for s in row) for row in rows]
    B, T = len(rows), max(lengths)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    loss_weights = torch.zeros((B, T), dtype=torch.float)
    key_mask = torch.zeros((B, T), dtype=torch.bool)
    position_ids = torch.zeros((B, T), dtype=torch.long)
    for b, row in enumerate(rows):
        at = 0
        for s in row:
            n = len(s.input_ids)
            input_ids[b, at:at + n] = torch.tensor(s.input_ids)
            labels[b, at:at + n] = torch.tensor(s.labels)
            loss_weights[b, at:at + n] = torch.tensor(s.loss_weights)
            key_mask[b, at:at + n] = torch.tensor(s.key_mask, dtype=torch.bool)
            position_ids[b, at:at + n] = torch.arange(n)
            labels[b, at] = -100  # predicted from the previous sample's last token: never a target
            loss_weights[b, at] = 0.0
            at += n
        attention_mask[b, :at] = 1
        position_ids[b, at:] = torch.arange(T - at)
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
             "loss_weights": loss_weights, "key_mask": key_mask}
    if packed:
        batch["position_ids"] = position_ids
    return batch


def collate_prompts(prompts: list[PromptSample], pad_id: int, bfcl_ground_truth: bool = False) -> dict[str, Any]:
    """LEFT-pad prompts into (B, P) ``input_ids`` / ``attention_mask`` (generation appends on
    the right), plus the python lists ``ids``, ``gold``, ``tools`` and, with ``bfcl_ground_truth``
    (eval batches), ``bfcl_ground_truth`` (None for items without one)."""
    P = max(len(p.input_ids) for p in prompts)
    input_ids = torch.full((len(prompts), P), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), P), dtype=torch.long)
    for b, p in enumerate(prompts):
        n = len(p.input_ids)
        input_ids[b, P - n:] = torch.tensor(p.input_ids)
        attention_mask[b, P - n:] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "ids": [p.id for p in prompts],
             "gold": [p.gold for p in prompts], "tools": [p.tools for p in prompts]}
    if bfcl_ground_truth:
        batch["bfcl_ground_truth"] = [p.bfcl_ground_truth for p in prompts]
    return batch


def row_length(row: Sequence[TokenizedSample]) -> int:
    """Tokens of an ``sft`` row (its samples concatenated)."""
    return sum(len(s.input_ids) for s in row)


def prompt_length(prompt: PromptSample) -> int:
    """Tokens of an ``rl`` / ``eval`` prompt."""
    return len(prompt.input_ids)


def collate_tasks(indices: list[int], environment: Any, prompt_format: str) -> dict[str, Any]:
    """An ``env`` batch: task ``indices`` into ``environment.tasks``, their ``ids`` and the
    ``prompt_format`` to render them in."""
    return {"tasks": list(indices), "ids": [str(getattr(environment.tasks[i], "id", i)) for i in indices],
            "prompt_format": prompt_format}


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The kwargs for a Hugging Face causal LM training forward on an ``sft`` batch.

    Packed batches pass ``position_ids`` and no ``attention_mask``: transformers then builds one
    causal block per sample from where the positions restart. It does so only without a KV cache,
    hence ``use_cache=False`` (which a training forward wants anyway).
    """
    if "position_ids" in batch:
        return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}


def padding_waste(batches: Iterable[dict[str, Any]]) -> float:
    """Fraction of the token slots in ``batches`` that are padding (0 = none)."""
    real = total = 0
    for b in batches:
        real += int(b["attention_mask"].sum())
        total += b["attention_mask"].numel()
    return 1.0 - real / total if total else 0.0


# ---------------------------------------------------------------- the DataModule


class ToolUseDataModule(LightningDataModule):
    """Tool-use data for ``PKTModule`` (``stage="sft"``) and ``IRMPPOModule`` (``"rl"``; ``"env"``:
    the tasks of its multi-turn environment), and prompts for evaluation (``"eval"``).

    Args:
        data_path: a file or folder (or a list of them) any ``sources`` reader takes, or a
            built-in world string (``synthetic:heldout_domains``, ``synthetic-sft:train?n=400``,
            ``synthetic:classic``; see ``world.spec``); None = the procedural world
            (``synthetic_size`` records): its ``train`` trajectories for ``sft`` and ``rl`` (there
            every correct call turn is a prompt), its ``heldout_domains`` prompts for ``eval``.
        format: the source format, or ``"auto"``; ``on_error``: ``"raise"`` or ``"skip"``
            malformed records (counted in ``report``).
        tokenizer: a name or path for ``modeling.load_tokenizer``, replaced by ``connect()``.
        prompt_format: ``"codellama"`` (the paper's) or ``"chat_template"``; None = the format
            the model was trained with (handed over by ``connect``, or recorded in the folder
            ``tokenizer`` names), else codellama. Naming another format than the model's record
            warns. The format used is ``hparams.prompt_format`` after ``setup`` (so checkpoints and
            exports record it).
        mae, mae_layout, error_patterns, error_regexes: MAE (``mae=False`` = standard SFT);
            None = the authors' patterns. Not applied in ``eval``: one prompt per trajectory at
            the benchmark's scored turn (``gold_turn_index``, from ``meta["format"]``).
        w_max: PKT's weight cap (1 = plain cross-entropy); exclude_value_end: leave the last
            token of each argument value out of |NK| (the authors' option, ``tokenize_rendered``);
            name_end_key: also weigh the token after a gold name that another offered name
            continues (``get_invoice`` vs ``get_invoice_status``; beyond the authors' rule, which
            marks nothing there; ``tokenize_rendered``). False gives the authors' key tokens.
        max_length: longest sample / packed row / prompt in tokens; ``on_overlength``: ``"drop"``
            (counted) or ``"raise"`` (``eval`` always raises: see ``make_eval_prompts``).
        batch_size, packing (``sft`` only), bucket_batches (batches per length-sorted mega-batch),
        val_fraction (split by trajectory), seed, num_workers.
    """

    def __init__(
        self,
        data_path: str | list[str] | None = None,
        format: str = "auto",
        tokenizer: str = "smollm2-135m-instruct",
        prompt_format: str | None = None,
        mae: bool = True,
        mae_layout: str = "trajectory",
        error_patterns: list[str] | None = None,
        error_regexes: list[str] | None = None,
        w_max: float = 9.0,
        exclude_value_end: bool = False,
        name_end_key: bool = True,
        max_length: int = 2048,
        on_overlength: str = "drop",
        batch_size: int = 4,
        packing: bool = False,
        bucket_batches: int = 32,
        val_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
        stage: str = "sft",
        synthetic_size: int = 512,
        on_error: str = "raise",
    ) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        if on_overlength not in OVERLENGTH:
            raise ValueError(f"on_overlength must be one of {OVERLENGTH}, got {on_overlength!r}")
        if packing and stage != "sft":
            raise ValueError("packing applies to stage='sft' only (prompts are generated from, not packed)")
        if prompt_format is not None and prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS} or None, got {prompt_format!r}")
        if mae_layout not in LAYOUTS:
            raise ValueError(f"mae_layout must be one of {LAYOUTS}, got {mae_layout!r}")
        if batch_size < 1 or max_length < 1:
            raise ValueError(f"batch_size and max_length must be >= 1, got {batch_size}, {max_length}")
        self.data_path, self.format, self.on_error = data_path, format, on_error
        self.tokenizer_name, self.tokenizer, self.model_prompt_format = tokenizer, None, None
        self.prompt_format, self.w_max, self.exclude_value_end = prompt_format, w_max, exclude_value_end
        self.name_end_key = name_end_key
        self.mae, self.mae_layout = mae, mae_layout
        self.error_patterns, self.error_regexes = error_patterns, error_regexes
        self.max_length, self.on_overlength = max_length, on_overlength
        self.batch_size, self.packing, self.bucket_batches = batch_size, packing, bucket_batches
        self.val_fraction, self.seed, self.num_workers = val_fraction, seed, num_workers
        self.stage, self.synthetic_size = stage, synthetic_size
        self.environment: Any = None
        self.report: dict[str, Any] = {}
        self.train_items: list[Any] = []
        self.val_items: list[Any] = []
        self._prepared = False

    def connect(self, tokenizer: Any, prompt_format: str | None = None, environment: Any = None) -> None:
        """Use the LightningModule's tokenizer, the prompt format its model was trained with
        (``recorded_prompt_format``; None: not known) and (``stage="env"``) its environment. Call
        before ``setup``; a change prepares the data again. In ``env`` stage an unconnected
        DataModule connects itself to the module the Trainer runs."""
        if tokenizer is not self.tokenizer or prompt_format != self.model_prompt_format or \
                (environment is not None and environment is not self.environment):
            self.tokenizer, self.model_prompt_format = tokenizer, prompt_format
            self.environment = environment if environment is not None else self.environment
            self._prepared = False

    def _connect_to_trainer_module(self) -> None:
        module = self.trainer.lightning_module if self.trainer is not None else None
        if self.environment is None and getattr(module, "environment", None) is not None:
            self.connect(module.tokenizer, module.recorded_prompt_format, module.environment)
        if self.environment is None:
            raise DataError("stage='env' needs the RL module's environment (--model.environment): connect() it "
                            "or fit with the module")

    def _read(self) -> tuple[list[Trajectory], list[dict[str, Any]]]:
        """The trajectories and the read reports (none for the built-in world)."""
        if self.data_path is None:
            if self.stage == "eval":
                return world.generate_prompts(self.synthetic_size, seed=self.seed, split="heldout_domains"), []
            return world.generate_trajectories(self.synthetic_size, seed=self.seed), []
        paths = [self.data_path] if isinstance(self.data_path, (str, Path)) else list(self.data_path)
        return read_sources([str(p) for p in paths], format=self.format, on_error=self.on_error)

    def setup(self, stage: str | None = None) -> None:
        if self.stage == "env":
            self._connect_to_trainer_module()
        if self._prepared:  # Lightning calls setup once per trainer entry point
            return
        if self.tokenizer is None:
            self.tokenizer = load_tokenizer(self.tokenizer_name)
            self.model_prompt_format = saved_prompt_format(self.tokenizer_name)
        # in the hyper-parameters, so checkpoints (and HFExport) record the format used
        self.hparams["prompt_format"] = choose_prompt_format(self.prompt_format, self.model_prompt_format)
        if self.stage == "env":
            self._setup_tasks()
        else:
            self._setup_items()
        self._prepared = True

    def _setup_items(self) -> None:
        """Read, split by trajectory (``eval``: everything is evaluated) and build each side's items
        with the stage's builder; the report counts what was read, kept and dropped."""
        trajs, read_reports = self._read()
        train, val = ([], trajs) if self.stage == "eval" else split_by_trajectory(trajs, self.val_fraction, self.seed)
        build = {"sft": self._sft_items, "rl": self._rl_items, "eval": self._eval_items}[self.stage]
        self.train_items, train_mae, train_dropped = build(train)
        self.val_items, val_mae, val_dropped = build(val)
        self.report = {
            "read": read_reports, "read_skipped": sum(r["skipped"] for r in read_reports),
            "trajectories": len(trajs), "train_trajectories": len(train), "val_trajectories": len(val),
            "train_items": len(self.train_items), "val_items": len(self.val_items),
            "mae": {"train": train_mae, "val": val_mae},
            "overlength_dropped": len(train_dropped) + len(val_dropped),
            "overlength_dropped_ids": (train_dropped + val_dropped)[:20],
        }

    def _setup_tasks(self) -> None:
        """``env``: the environment's task indices, split into train / val by ``val_fraction``."""
        tasks = len(self.environment.tasks)
        self.train_items, self.val_items = split_by_trajectory(list(range(tasks)), self.val_fraction, self.seed)
        self.report = {"tasks": tasks, "train_items": len(self.train_items), "val_items": len(self.val_items)}

    # ---- the items of each stage

    def _mae_samples(self, trajs: list[Trajectory]) -> tuple[list[Sample], dict[str, Any]]:
        detector = None
        if self.error_patterns is not None or self.error_regexes is not None:
            detector = ErrorDetector(patterns=tuple(self.error_patterns or ()), regexes=tuple(self.error_regexes or ()))
        samples, report = apply_mae(trajs, detector=detector, layout=self.mae_layout, enabled=self.mae)
        return samples, report.to_dict()

    def _sft_items(self, trajs: list[Trajectory]) -> Built:
        """MAE samples, rendered and tokenized with PKT weights, as rows of one sample or, with
        ``packing``, of several."""
        samples, mae_report = self._mae_samples(trajs)
        tokenized, dropped = tokenize_samples(samples, self.tokenizer, prompt_format=self.hparams.prompt_format,
                                              w_max=self.w_max, exclude_value_end=self.exclude_value_end,
                                              name_end_key=self.name_end_key, max_length=self.max_length,
                                              on_overlength=self.on_overlength)
        if self.packing:
            rows = pack_rows([len(t.input_ids) for t in tokenized], self.max_length)
            return [tuple(tokenized[i] for i in r) for r in rows], mae_report, dropped
        return [(t,) for t in tokenized], mae_report, dropped

    def _rl_items(self, trajs: list[Trajectory]) -> Built:
        """A prompt for every call turn MAE keeps as a target (``make_prompts``)."""
        samples, mae_report = self._mae_samples(trajs)
        prompts, dropped = make_prompts(samples, self.tokenizer, prompt_format=self.hparams.prompt_format,
                                        max_length=self.max_length, on_overlength=self.on_overlength)
        return prompts, mae_report, dropped

    def _eval_items(self, trajs: list[Trajectory]) -> Built:
        """One prompt per trajectory at the benchmark's scored turn: no MAE, nothing dropped."""
        return make_eval_prompts(trajs, self.tokenizer, prompt_format=self.hparams.prompt_format,
                                 max_length=self.max_length), {}, []

    # ---- loaders

    def _batching(self) -> tuple[Callable[[Any], int], Callable[[list[Any]], dict[str, Any]]]:
        """How long an item of this stage is (for bucketing) and how its items are collated."""
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        return {
            "sft": (row_length, partial(collate_sft, pad_id=pad_id, packed=self.packing)),
            "rl": (prompt_length, partial(collate_prompts, pad_id=pad_id)),
            "eval": (prompt_length, partial(collate_prompts, pad_id=pad_id, bfcl_ground_truth=True)),
            # episode lengths are not known before they run
            "env": (lambda task: 0, partial(collate_tasks, environment=self.environment,
                                            prompt_format=self.hparams.prompt_format)),
        }[self.stage]

    def _loader(self, items: list[Any], train: bool) -> DataLoader:
        if not items:
            raise DataError(f"no {'training' if train else 'validation'} data for stage {self.stage!r} "
                            f"(report: {self.report})")
        length, collate = self._batching()
        batch_sampler = BucketBatchSampler(
            EpochSampler(len(items), shuffle=train, seed=self.seed), self.batch_size, False,
            lengths=[length(item) for item in items], bucket_batches=self.bucket_batches if train else len(items),
            shuffle=train, seed=self.seed)
        loader_cls = ResumableDataLoader if train else DataLoader
        return loader_cls(items, batch_sampler=batch_sampler, collate_fn=collate, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        if self.stage == "eval":
            raise DataError("stage='eval' has no training data; use stage='sft' or 'rl' to train")
        return self._loader(self.train_items, train=True)

    def val_dataloader(self) -> DataLoader | list:
        # no validation split (val_fraction=0): an empty list makes Lightning skip validation
        return self._loader(self.val_items, train=False) if self.val_items else []

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_items, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.val_items, train=False)
