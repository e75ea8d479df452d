"""``CausalLMModule``: what the project's LightningModules share (``pkt.PKTModule``,
``ppo.IRMPPOModule``, ``evaluate.ToolCallEvaluator``), so that each of them is about its algorithm.

- one causal LM, named by ``model_source()`` (a built-in name, an HF id or a folder), loaded by the
  subclass in ``configure_model`` so that construction stays cheap and Lightning can shard it;
- ``tokenizer``, loaded on first use; the CLI hands it to the DataModule (``connect``);
- ``recorded_prompt_format``, the prompt format the model was trained with
  (``data.prompt_record``), the DataModule's default, handed over the same way;
- ``save_options``: hyper-parameters with the dataclass options (LoRA, episodes) as plain dicts,
  because checkpoints are read with ``torch.load(weights_only=True)``;
- ``transfer_batch_to_device``: prompt batches carry python lists of frozen records (gold calls,
  tools), which Lightning's generic collection mover refuses; only the tensors move;
- ``check_finite``: a NaN/inf loss stops the run before the optimizer step, naming where.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import lightning.pytorch as pl
import torch

from tl_lightning.data.prompt_record import saved_prompt_format
from tl_lightning.modeling import load_tokenizer


class CausalLMModule(pl.LightningModule):
    """A LightningModule around one causal LM and its tokenizer (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._tokenizer = None

    def model_source(self) -> str:
        """What the model and its tokenizer load from: ``hparams.model_name`` unless a subclass
        knows better (a checkpoint to start from)."""
        return self.hparams.model_name

    @property
    def tokenizer(self):
        """The model's tokenizer (loaded on first use; the DataModule's ``connect`` takes it)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.model_source())
        return self._tokenizer

    @property
    def recorded_prompt_format(self) -> str | None:
        """The prompt format the model was trained with when ``model_source()`` is a folder exported
        here, else None: the DataModule's default (handed over by ``connect``)."""
        return saved_prompt_format(self.model_source())

    def save_options(self, ignore: Sequence[str] = (), **options: Any) -> None:
        """``save_hyperparameters`` of the caller's ``__init__`` arguments less ``ignore``, with each
        dataclass in ``options`` (``lora=LoraOptions(...)``, or None) stored as a plain dict."""
        frame = inspect.currentframe().f_back  # the subclass's __init__, whose arguments are saved
        self.save_hyperparameters(ignore=[*ignore, *options], frame=frame)
        for name, value in options.items():
            self.hparams[name] = None if value is None else asdict(value)

    def transfer_batch_to_device(self, batch: dict[str, Any], device: torch.device, dataloader_idx: int) -> dict:
        """Move the tensors only (module docstring)."""
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def check_finite(self, loss: torch.Tensor, what: str, batch_idx: int, advice: str) -> None:
        """Raise ``FloatingPointError`` naming the step and batch when ``loss`` is NaN or inf: called
        before the optimizer step, so the weights and the last checkpoint stay as they were."""
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{what} is {loss.item()} at global step {self.global_step}, batch index {batch_idx} "
                f"(epoch {self.current_epoch}); stopping before the optimizer step, nothing was saved for "
                f"this step. {advice}")
