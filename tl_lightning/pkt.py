"""PKTModule: supervised fine-tuning with the PKT key-token-weighted loss (docs/design.md, "PKT").

Construction is cheap (no weights, no tokenizer): the model is loaded in ``configure_model()``
so Lightning can place or shard it (FSDP2 through ``ModelParallelStrategy``), and the tokenizer
on first use of ``self.tokenizer`` (``lm_module.CausalLMModule``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchmetrics import MeanMetric

from tl_lightning.data.datamodule import model_inputs
from tl_lightning.generation import StopRule, generate, single_call_rule
from tl_lightning.lm_module import CausalLMModule
from tl_lightning.losses import SupervisedTokens, prediction_mask, supervised_tokens, token_hits, weighted_token_ce_sums
from tl_lightning.modeling import SMOLLM2, LoraOptions, load_model, lora_options, shard_model

STAGES = ("train", "val", "test")
METRICS = ("loss", "token_acc", "key_token_acc")


class PKTModule(CausalLMModule):
    """Fine-tune a causal LM on ``stage="sft"`` batches of ``ToolUseDataModule`` with the PKT loss.

    Args:
        model_name: ``"smollm2-135m-instruct"``, ``"tiny-llama"``, an HF id or a local folder.
        dtype: weights dtype for loading (``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"``).
        gradient_checkpointing: recompute activations in backward to save memory.
        lora: LoRA adapter settings; ``None`` trains all weights.
        quantization: ``None``, ``"4bit"`` (QLoRA) or ``"8bit"``; needs ``lora``.
        seed: picks tiny-llama's weights and the LoRA initialisation.
        lr, weight_decay, betas, warmup_ratio: the default AdamW + cosine schedule with linear
            warmup (the authors' SFT settings, docs/design.md "PKT"); LightningCLI's ``--optimizer`` /
            ``--lr_scheduler`` replace them.
        max_new_tokens: generation length of ``predict_step`` (greedy).
    """

    def __init__(
        self,
        model_name: str = SMOLLM2,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
        lora: LoraOptions | None = None,
        quantization: str | None = None,
        seed: int = 0,
        lr: float = 1e-6,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_ratio: float = 0.01,
        max_new_tokens: int = 256,
    ) -> None:
        super().__init__()
        lora = lora_options(lora)
        if quantization is not None and lora is None:
            raise ValueError(f"quantization={quantization!r} freezes the weights: it needs lora options to train")
        if not 0.0 <= warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
        self.save_options(lora=lora)
        self.lora = lora
        self.model: nn.Module | None = None
        self.metrics = nn.ModuleDict({f"{stage}_{name}": MeanMetric() for stage in STAGES for name in METRICS})

    def configure_model(self) -> None:
        """Load the model once; shard it with FSDP2 when the strategy provides a device mesh."""
        if self.model is not None:
            return
        hp = self.hparams
        self.model = load_model(hp.model_name, dtype=hp.dtype, gradient_checkpointing=hp.gradient_checkpointing,
                                lora=self.lora, quantization=hp.quantization, seed=hp.seed)
        # from_pretrained returns eval mode and Lightning keeps submodule modes as found: without
        # this, dropout (e.g. LoRA's) would silently stay off in training.
        self.model.train()
        if self.device_mesh is not None:
            shard_model(self.model, self.device_mesh["data_parallel"])

    def forward(self, batch: dict, logits_to_keep: int | torch.Tensor = 0) -> torch.Tensor:
        """Logits of an sft batch (packed batches: one causal block per sample): (B, T, V), or
        (N, V) for a boolean (B, T) ``logits_to_keep`` mask (transformers' option)."""
        return self.model(**model_inputs(batch), logits_to_keep=logits_to_keep).logits

    def _supervised(self, batch: dict) -> tuple[SupervisedTokens, torch.Tensor, torch.Tensor]:
        """The supervised tokens of a batch and the PKT loss sums (sum w*CE, sum w) of this process."""
        if "labels" not in batch:
            raise ValueError("PKTModule trains on stage='sft' batches (input_ids, labels, loss_weights, key_mask); "
                             f"got keys {sorted(batch)}")
        # Only the positions that predict a supervised token go through the (vocabulary-sized) head.
        tokens = supervised_tokens(self(batch, prediction_mask(batch["labels"])), batch["labels"])
        numerator, denominator = weighted_token_ce_sums(tokens, tokens.select(batch["loss_weights"]))
        return tokens, numerator, denominator

    def _update_accuracy(self, stage: str, tokens: SupervisedTokens, key_mask: torch.Tensor) -> None:
        """Feed token and key-token hits (per token, so the epoch value is a global token mean)."""
        hits = token_hits(tokens).float()
        key_hits = hits[tokens.select(key_mask.bool())]
        if hits.numel():
            self.metrics[f"{stage}_token_acc"](hits)
        if key_hits.numel():
            self.metrics[f"{stage}_key_token_acc"](key_hits)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        tokens, numerator, denominator = self._supervised(batch)
        # Divide by the weight sum of the whole global batch, not this process's share: data-parallel
        # gradient averaging then reproduces the single-process loss on the same global batch.
        world = self.trainer.world_size
        global_sums = torch.stack([numerator, denominator]).detach()
        if world > 1:
            global_sums = self.trainer.strategy.reduce(global_sums, reduce_op="sum")
        global_denominator = global_sums[1].clamp_min(torch.finfo(global_sums.dtype).tiny)
        global_loss = global_sums[0] / global_denominator
        self.check_finite(global_loss, "PKT loss", batch_idx,
                          "Lower the learning rate, use bf16 instead of fp16, or inspect this batch.")
        self.log("train/loss", global_loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=1)
        self._update_accuracy("train", tokens, batch["key_mask"])
        self.log("train/token_acc", self.metrics["train_token_acc"], on_step=True, on_epoch=True)
        self.log("train/key_token_acc", self.metrics["train_key_token_acc"], on_step=True, on_epoch=True,
                 prog_bar=True)
        return numerator / global_denominator * world

    def _evaluation_step(self, stage: str, batch: dict) -> None:
        tokens, numerator, denominator = self._supervised(batch)
        if denominator > 0:
            self.metrics[f"{stage}_loss"].update(numerator / denominator, weight=denominator)
        self._update_accuracy(stage, tokens, batch["key_mask"])
        for name in METRICS:
            self.log(f"{stage}/{name}", self.metrics[f"{stage}_{name}"], on_step=False, on_epoch=True,
                     prog_bar=name != "token_acc")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluation_step("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluation_step("test", batch)

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        """Greedy completions of a ``stage="eval"`` batch (LEFT-padded prompts), each cut where its
        answer ends (``generation.single_call_rule``: after a complete call when the gold wants one).

        Returns one ``{"id", "prediction"}`` per prompt (``id`` from the batch's ``ids`` when present).
        """
        if "labels" in batch:
            raise ValueError("predict needs prompt batches: set data.stage to 'eval' (got an sft batch with labels)")
        rules = [single_call_rule(gold) for gold in batch["gold"]] if "gold" in batch else StopRule()
        texts = generate(self.model, self.tokenizer, batch["input_ids"], batch["attention_mask"],
                         max_new_tokens=self.hparams.max_new_tokens, stop=rules,
                         synced=self.device_mesh is not None and self.trainer.world_size > 1).texts
        ids = batch.get("ids") or [f"{batch_idx}:{i}" for i in range(len(texts))]
        return [{"id": sample_id, "prediction": text} for sample_id, text in zip(ids, texts)]

    def configure_optimizers(self):
        """AdamW (no decay on vectors: norms, biases) + linear warmup then cosine decay, stepped per batch."""
        from transformers import get_cosine_schedule_with_warmup

        hp = self.hparams
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": hp.weight_decay},
                  {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=hp.lr, betas=tuple(hp.betas))
        total_steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(total_steps):
            raise ValueError("the cosine schedule needs a finite run: set trainer.max_steps or trainer.max_epochs")
        scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=math.ceil(hp.warmup_ratio * total_steps),
                                                    num_training_steps=int(total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
