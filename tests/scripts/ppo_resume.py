"""A small IRM RL run on tiny-llama that can be killed and resumed (CPU, deterministic).

Usage: ``python tests/scripts/ppo_resume.py OUT_DIR --batches N [--kill_before K] [--resume]
[--estimator gae|grpo|...] [--environment]``.

Trains on the first N rollout batches of the synthetic ``rl`` data with sampled generation (so
the torch RNG matters), saving ``OUT_DIR/ckpt/last.ckpt`` after every batch and appending one JSON
line per batch to ``OUT_DIR/steps.jsonl`` (prompt ids and losses). ``--kill_before K`` sends itself
SIGKILL when batch K is about to start (batches 0..K-1 are done and checkpointed); ``--resume``
continues from ``last.ckpt``. ``gae``: PPO with a shared-LoRA critic and adaptive KL in the
reward; a group-relative estimator: groups of 2, the KL as a loss term (adaptive too), minibatches
of one group, and ``varied_rewards`` (so groups differ). ``--environment``: multi-turn episodes in a
``FunctionEnv`` on ``stage="env"`` data, a scripted failing call and its fix, then sampled turns
(``scripted_policy``), MAE in RL and per-turn rewards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from tl_lightning.data.datamodule import ToolUseDataModule
from tl_lightning.environments import FunctionEnv
from tl_lightning.episodes import EpisodeOptions
from tl_lightning.modeling import TINY_LLAMA, LoraOptions
from tl_lightning.ppo import IRMPPOModule
from scripted_policy import add, failed_call_then_fix, scripted
from varied_rewards import varied_episode_rewards, varied_rewards

LOGGED = ("ppo/policy_loss", "ppo/kl", "ppo/kl_coef", "ppo/entropy", "ppo/advantage_std", "reward/mean")
EPISODES = ("episodes/turns", "episodes/calls", "episodes/policy_token_share")


class StepLog(pl.Callback):
    def __init__(self, path: Path, kill_before: int | None) -> None:
        self.path, self.kill_before, self.ids = path, kill_before, []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.kill_before:
            os.kill(os.getpid(), signal.SIGKILL)
        self.ids = batch["ids"]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        logged = LOGGED + (("ppo/value_loss",) if module.has_critic else ("reward/group_std",))
        logged += EPISODES if module.environment is not None else ()
        row = {"batch": batch_idx, "ids": self.ids, **{k: float(trainer.callback_metrics[k]) for k in logged}}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--batches", type=int, required=True)
    parser.add_argument("--kill_before", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--estimator", default="gae")
    parser.add_argument("--environment", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    pl.seed_everything(0)

    # adaptive KL, so the controller's state is part of what must be restored
    common = dict(model_name=TINY_LLAMA, lora=LoraOptions(r=4, alpha=8), max_new_tokens=6, do_sample=True,
                  temperature=1.0, ppo_epochs=2, actor_lr=1e-2, kl_target=0.5, kl_horizon=10)
    if args.environment:
        environment = FunctionEnv([add], [f"Add {i} and 2." for i in range(12)])
        common.update(environment=environment, max_new_tokens=16,
                      episodes=EpisodeOptions(max_turns=3, max_episode_tokens=128, reward_mode="per_turn", mae=True))
    if args.estimator == "gae":  # the rows one by one
        module = IRMPPOModule(**common, minibatch_size=1, critic_layout="shared_lora", critic_lr=1e-2)
    else:  # minibatches of one group
        module = IRMPPOModule(**common, minibatch_size=2, advantage_estimator=args.estimator, num_generations=2,
                              kl_mode="loss")
    if args.environment:  # connects itself to the module's tokenizer and environment
        data = ToolUseDataModule(stage="env", batch_size=2, val_fraction=0.0, prompt_format="codellama")
    else:
        data = ToolUseDataModule(tokenizer=TINY_LLAMA, stage="rl", batch_size=2, synthetic_size=24, max_length=2048,
                                 val_fraction=0.0)
        data.connect(module.tokenizer)
    checkpoint = ModelCheckpoint(dirpath=out / "ckpt", save_last=True, save_top_k=0, every_n_train_steps=1)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=args.batches,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[StepLog(out / "steps.jsonl", args.kill_before), checkpoint],
                         default_root_dir=out)
    with contextlib.ExitStack() as stack:
        if args.environment:
            stack.enter_context(scripted(module.tokenizer, failed_call_then_fix))
        if args.estimator != "gae":
            stack.enter_context(varied_episode_rewards() if args.environment else varied_rewards())
        trainer.fit(module, data, ckpt_path="last" if args.resume else None)


if __name__ == "__main__":
    main()
