"""PKTModule on tiny-llama with hand-made sft batches: training, metrics, NaN stop, optimizer,
checkpoint round trip, evaluation and prediction."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from tl_lightning.losses import IGNORE_INDEX
from tl_lightning.modeling import TINY_LLAMA, LoraOptions, decoder_layers
from tl_lightning.pkt import PKTModule


def sft_batch(seed: int, batch_size: int = 2, length: int = 12, vocab: int = 500) -> dict:
    """One stage='sft' batch: the first third is prompt (no loss), one key token per row (weight 3)."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (batch_size, length), generator=g)
    labels = input_ids.clone()
    labels[:, : length // 3] = IGNORE_INDEX
    weights = (labels != IGNORE_INDEX).float()
    key_mask = torch.zeros(batch_size, length, dtype=torch.bool)
    key_mask[:, length // 3] = True
    weights[key_mask] = 3.0
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels,
            "loss_weights": weights, "key_mask": key_mask}


def loader(batches: list[dict]) -> DataLoader:
    return DataLoader(batches, batch_size=None)


def trainer(tmp_path, **kwargs) -> pl.Trainer:
    defaults = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    return pl.Trainer(**{**defaults, **kwargs})


def test_construction_is_cheap_and_records_hyperparameters():
    module = PKTModule(model_name="codellama/CodeLlama-7b-hf", lora=LoraOptions(r=4), lr=2e-5)
    assert module.model is None and module._tokenizer is None
    assert module.hparams.model_name == "codellama/CodeLlama-7b-hf"
    assert module.hparams.lora == {"r": 4, "alpha": 16, "dropout": 0.05,
                                   "target_modules": ("q_proj", "k_proj", "v_proj", "o_proj")}


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="needs lora"):
        PKTModule(model_name=TINY_LLAMA, quantization="4bit")
    with pytest.raises(ValueError, match="warmup_ratio"):
        PKTModule(model_name=TINY_LLAMA, warmup_ratio=1.5)


@pytest.mark.slow
def test_fit_lowers_the_loss_and_logs_metrics(tmp_path):
    module = PKTModule(model_name=TINY_LLAMA, lr=3e-3, warmup_ratio=0.0)
    batch = sft_batch(0)
    t = trainer(tmp_path, max_steps=8, limit_val_batches=1, val_check_interval=8)
    t.fit(module, train_dataloaders=loader([batch] * 8), val_dataloaders=loader([batch]))
    metrics = t.callback_metrics
    for name in ("train/loss_step", "train/token_acc_epoch", "train/key_token_acc_epoch",
                 "val/loss", "val/token_acc", "val/key_token_acc"):
        assert name in metrics, name
    module.eval()
    with torch.no_grad():
        logits = module(batch)
    from tl_lightning.losses import pkt_loss

    final = pkt_loss(logits, batch["labels"], batch["loss_weights"]).item()
    assert metrics["val/loss"].item() == pytest.approx(final, rel=1e-5)
    assert final < math.log(module.model.config.vocab_size) - 1.0  # learnt the repeated batch


def test_configure_model_is_idempotent():
    module = PKTModule(model_name=TINY_LLAMA)
    module.configure_model()
    first = module.model
    module.configure_model()
    assert module.model is first
    assert len(decoder_layers(first)) == first.config.num_hidden_layers


def test_decoder_layers_found_through_peft():
    module = PKTModule(model_name=TINY_LLAMA, lora=LoraOptions(r=2))
    module.configure_model()
    assert len(decoder_layers(module.model)) == 2
    assert all(p.requires_grad == ("lora_" in n) for n, p in module.model.named_parameters())


@pytest.mark.slow
def test_default_optimizer_and_schedule(tmp_path):
    module = PKTModule(model_name=TINY_LLAMA, lr=1e-3, weight_decay=0.01, betas=(0.9, 0.95), warmup_ratio=0.2)
    lrs = []

    class RecordLR(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    t = trainer(tmp_path, max_steps=10, callbacks=[RecordLR()])
    t.fit(module, train_dataloaders=loader([sft_batch(i, length=6) for i in range(10)]))
    optimizer = t.optimizers[0]
    assert isinstance(optimizer, torch.optim.AdamW)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert decay["betas"] == (0.9, 0.95)
    # warmup = ceil(0.2 * 10) = 2 steps from 0, then cosine down towards 0
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(5e-4) and lrs[2] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] < 1e-4


@pytest.mark.slow
def test_nan_loss_stops_with_step_and_batch_and_saves_nothing_after(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    batches = [sft_batch(i) for i in range(4)]
    batches[2]["loss_weights"][0, 6] = float("nan")
    checkpoints = tmp_path / "ckpt"
    module = PKTModule(model_name=TINY_LLAMA, lr=1e-3)
    t = trainer(tmp_path, max_steps=4, enable_checkpointing=True,
                callbacks=[ModelCheckpoint(dirpath=checkpoints, every_n_train_steps=1, save_top_k=-1, save_last=True)])
    with pytest.raises(FloatingPointError, match=r"global step 2, batch index 2"):
        t.fit(module, train_dataloaders=loader(batches))
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch=0-step=1.ckpt", "epoch=0-step=2.ckpt", "last.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_checkpoint_round_trip_with_lora(tmp_path):
    module = PKTModule(model_name=TINY_LLAMA, lora=LoraOptions(r=2, dropout=0.0), lr=1e-2)
    t = trainer(tmp_path, max_steps=2)
    t.fit(module, train_dataloaders=loader([sft_batch(0), sft_batch(1)]))
    path = tmp_path / "m.ckpt"
    t.save_checkpoint(path)
    restored = PKTModule.load_from_checkpoint(path)
    assert restored.lora == LoraOptions(r=2, dropout=0.0)
    batch = sft_batch(5)
    module.eval(), restored.eval()
    with torch.no_grad():
        assert torch.equal(module(batch), restored(batch))


def test_validate_test_and_predict(tmp_path):
    module = PKTModule(model_name=TINY_LLAMA, max_new_tokens=3)
    t = trainer(tmp_path)
    (val,) = t.validate(module, dataloaders=loader([sft_batch(0), sft_batch(1)]))
    (test,) = t.test(module, dataloaders=loader([sft_batch(0), sft_batch(1)]))
    assert val["val/loss"] == pytest.approx(test["test/loss"])
    assert 0.0 <= test["test/key_token_acc"] <= 1.0
    prompts = {"input_ids": torch.tensor([[0, 0, 7, 8], [9, 10, 11, 12]]),
               "attention_mask": torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]]), "ids": ["a", "b"]}
    (predictions,) = t.predict(module, dataloaders=loader([prompts]))
    assert [p["id"] for p in predictions] == ["a", "b"]
    assert all(isinstance(p["prediction"], str) for p in predictions)
    with pytest.raises(ValueError, match="data.stage"):
        t.predict(module, dataloaders=loader([sft_batch(0)]))
