"""The command line: ``python train.py {fit,validate,test,predict} --config configs/....yaml``.

A ``LightningCLI`` whose model is any ``LightningModule`` named in the config
(``model: {class_path: tl_lightning.pkt.PKTModule, init_args: ...}``; IRM PPO plugs in the same
way) and whose data is ``ToolUseDataModule``. It adds to Lightning's defaults:

- ``--checkpoint.*``: a ``ModelCheckpoint`` that keeps ``last.ckpt`` and saves every
  ``every_n_train_steps``, in ``<trainer.default_root_dir>/checkpoints`` unless ``dirpath`` is
  set, a fixed folder so ``fit --ckpt_path last`` finds it again after a restart;
- ``CheckpointOnSignal``: SIGTERM / SIGUSR1 save ``last.ckpt`` before the process exits;
- a ``LearningRateMonitor`` whenever a logger is on (Lightning's default logger: TensorBoard if
  installed, else CSV, under ``default_root_dir``);
- the model's tokenizer and recorded prompt format (``recorded_prompt_format``: how the model was
  trained to be prompted) handed to the DataModule (``connect``) before every run, so the data is
  always tokenized for the model being trained, in its format unless the config names another;
  and the RL module's multi-turn environment (``--model.environment``), whose tasks the
  ``stage: env`` DataModule hands out;
- ``--optimizer`` / ``--lr_scheduler`` (any torch optimizer / scheduler) replace the module's
  default AdamW + warmup-cosine; they are built lazily, after the model is loaded;
- ``seed_everything: 0`` by default, for reproducible runs.
"""

from __future__ import annotations

import os
from types import MethodType

import lightning.pytorch as pl
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, instantiate_class
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from tl_lightning.data.datamodule import ToolUseDataModule
from tl_lightning.faults import CheckpointOnSignal
from tl_lightning.quiet import quiet_library_noise

CHECKPOINT_DEFAULTS = {"checkpoint.save_last": True, "checkpoint.every_n_train_steps": 500}


class TLLightningCLI(LightningCLI):
    """LightningCLI with checkpoint/signal/LR-monitor defaults and tokenizer / prompt format hand-over."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)
        # Lightning's own --optimizer builds the optimizer when the CLI starts, from parameters
        # that do not exist yet (weights load in configure_model); these are built lazily instead.
        parser.add_subclass_arguments(Optimizer, "optimizer", required=False, instantiate=False,
                                      fail_untyped=False, skip={"params"})
        parser.add_subclass_arguments(LRScheduler, "lr_scheduler", required=False, instantiate=False,
                                      fail_untyped=False, skip={"optimizer"})

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        optimizer_init = self._get(self.config_init, "optimizer")
        scheduler_init = self._get(self.config_init, "lr_scheduler")
        if scheduler_init and not optimizer_init:
            raise ValueError("--lr_scheduler needs --optimizer too (the module's default optimizer has its own schedule)")
        if optimizer_init:
            def configure_optimizers(module: pl.LightningModule):
                return configure_cli_optimizers(module, optimizer_init, scheduler_init)

            self.model.configure_optimizers = MethodType(configure_optimizers, self.model)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.checkpoint.dirpath is None:
            root = config.trainer.default_root_dir or os.getcwd()
            config.checkpoint.dirpath = os.path.join(root, "checkpoints")

    def instantiate_trainer(self, **kwargs) -> pl.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if trainer.loggers and not any(isinstance(c, LearningRateMonitor) for c in trainer.callbacks):
            trainer.callbacks.append(LearningRateMonitor(logging_interval="step"))
        return trainer

    def _connect_model(self) -> None:
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is not None and self.datamodule is not None and hasattr(self.datamodule, "connect"):
            self.datamodule.connect(tokenizer, getattr(self.model, "recorded_prompt_format", None),
                                    getattr(self.model, "environment", None))

    before_fit = before_validate = before_test = before_predict = _connect_model


def configure_cli_optimizers(module: pl.LightningModule, optimizer_init: dict, scheduler_init: dict | None):
    """``configure_optimizers`` from the CLI's ``--optimizer`` / ``--lr_scheduler`` (class_path +
    init_args), over the trainable parameters only (LoRA adapters when the base is frozen);
    a scheduler steps every batch."""
    optimizer = instantiate_class([p for p in module.parameters() if p.requires_grad], optimizer_init)
    if not scheduler_init:
        return optimizer
    scheduler = instantiate_class(optimizer, scheduler_init)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def main(args: list[str] | None = None, run: bool = True) -> TLLightningCLI:
    """Run the CLI on ``args`` (default: ``sys.argv``); ``run=False`` only parses and instantiates."""
    quiet_library_noise()
    return TLLightningCLI(
        pl.LightningModule,
        ToolUseDataModule,
        subclass_mode_model=True,
        trainer_defaults={"callbacks": [CheckpointOnSignal()]},
        seed_everything_default=0,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )
