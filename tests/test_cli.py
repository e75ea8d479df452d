"""The LightningCLI end to end, in process: fit, resume, validate, test, predict, --print_config,
optimizer override. tiny-llama on a few synthetic trajectories, 2-3 steps each."""

from __future__ import annotations

import pytest
import torch
import yaml

from tl_lightning.cli import main
from tl_lightning.faults import CheckpointOnSignal


def tiny_args(root, *extra: str) -> list[str]:
    return [
        "--model=tl_lightning.pkt.PKTModule", "--model.model_name=tiny-llama", "--model.lr=1e-3",
        "--model.max_new_tokens=4",
        "--data.synthetic_size=8", "--data.batch_size=2", "--data.max_length=1024", "--data.val_fraction=0.25",
        "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=1", "--trainer.limit_predict_batches=1",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.log_every_n_steps=1",
        f"--trainer.default_root_dir={root}", *extra,
    ]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One 2-step fit shared by the tests below (its checkpoint folder and CLI object)."""
    root = tmp_path_factory.mktemp("run")
    cli = main(["fit", *tiny_args(root, "--trainer.max_steps=2", "--checkpoint.every_n_train_steps=1")])
    return root, cli


@pytest.mark.slow
def test_fit_writes_checkpoints_logs_and_config(fitted):
    root, cli = fitted
    assert cli.trainer.global_step == 2
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert any(isinstance(c, CheckpointOnSignal) for c in cli.trainer.callbacks)
    log_dir = root / "lightning_logs" / "version_0"
    header = (log_dir / "metrics.csv").read_text().splitlines()[0]
    assert "train/loss_step" in header and "lr-AdamW/pg1" in header  # LearningRateMonitor is on
    saved = yaml.safe_load((log_dir / "config.yaml").read_text())
    assert saved["model"]["class_path"] == "tl_lightning.pkt.PKTModule"
    # the DataModule tokenized with the model's own tokenizer
    assert cli.datamodule.tokenizer is cli.model.tokenizer


@pytest.mark.slow
def test_resume_from_last_continues_the_step_count(fitted):
    root, _ = fitted
    cli = main(["fit", *tiny_args(root, "--trainer.max_steps=3", "--checkpoint.every_n_train_steps=1", "--ckpt_path=last")])
    assert cli.trainer.global_step == 3
    assert torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


@pytest.mark.slow
def test_validate_test_and_predict(fitted):
    root, _ = fitted
    ckpt = str(root / "checkpoints" / "last.ckpt")
    cli = main(["validate", *tiny_args(root), f"--ckpt_path={ckpt}"])
    assert {"val/loss", "val/token_acc", "val/key_token_acc"} <= set(cli.trainer.callback_metrics)
    cli = main(["test", *tiny_args(root), f"--ckpt_path={ckpt}"])
    assert torch.isfinite(cli.trainer.callback_metrics["test/loss"])
    cli = main(["predict", *tiny_args(root, "--data.stage=eval"), f"--ckpt_path={ckpt}"])
    (batch,) = cli.trainer.predict_loop.predictions
    assert len(batch) == 2 and all(set(p) == {"id", "prediction"} for p in batch)


def test_print_config(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_args(tmp_path), "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["init_args"]["model_name"] == "tiny-llama"
    assert config["model"]["init_args"]["betas"] == [0.9, 0.95]
    assert config["checkpoint"]["save_last"] is True
    assert config["seed_everything"] == 0


def test_instantiation_without_run_is_cheap(tmp_path):
    cli = main(tiny_args(tmp_path), run=False)
    assert cli.model.model is None  # weights load in configure_model, inside the Trainer
    checkpoint = cli.trainer.checkpoint_callback
    assert checkpoint.dirpath == str(tmp_path / "checkpoints") and checkpoint.save_last


def test_exclude_value_end_is_a_data_option(tmp_path):
    """The authors' |NK| option reaches the PKT weights from the command line."""
    cli = main(tiny_args(tmp_path, "--data.exclude_value_end=true"), run=False)
    assert cli.datamodule.exclude_value_end is True
    default = main(tiny_args(tmp_path), run=False).datamodule
    weights = {}
    for dm in (default, cli.datamodule):
        dm.connect(cli.model.tokenizer)
        dm.setup("fit")
        weights[dm.exclude_value_end] = [max(s.loss_weights) for row in dm.train_items for s in row]
    # fewer non-key tokens, so lighter key tokens (|NK| / |K| below the cap of 9)
    assert weights[True] != weights[False] and all(a <= b for a, b in zip(weights[True], weights[False]))


@pytest.mark.slow
def test_cli_optimizer_replaces_the_default(tmp_path):
    cli = main(["fit", *tiny_args(tmp_path, "--trainer.max_steps=1", "--trainer.limit_val_batches=0",
                                  "--optimizer=torch.optim.SGD", "--optimizer.lr=0.05",
                                  "--lr_scheduler=torch.optim.lr_scheduler.StepLR", "--lr_scheduler.step_size=5")])
    (optimizer,) = cli.trainer.optimizers
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["lr"] == 0.05
    assert type(cli.trainer.lr_scheduler_configs[0].scheduler).__name__ == "StepLR"


def test_scheduler_without_optimizer_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="needs --optimizer"):
        main(tiny_args(tmp_path, "--lr_scheduler=torch.optim.lr_scheduler.StepLR",
                       "--lr_scheduler.step_size=5"), run=False)
