"""IRMPPOModule under FSDP2 (ModelParallelStrategy) or DDP with 2 gloo processes on CPU, or (for
a group-relative estimator) in one process on both ranks' batches.

Usage: ``python tests/scripts/ppo_fsdp.py OUT_DIR [--strategy fsdp|ddp|single]
[--critic_layout shared_lora|copy] [--estimator gae|grpo|...]``. Lightning starts the second rank
by re-running this script.
DDP needs ``find_unused_parameters``: one training step makes many backward passes, each through
a part of the parameters (actor adapter, critic adapter, value head). The ranks generate different lengths (rank r
stops after ``3 + 5 r`` new tokens), so without synchronised generation the rank that finishes
first would leave the other waiting in a parameter all-gather forever. Each rank writes
``OUT_DIR/rank{r}.json``: whether the actor is sharded, the logged metrics, the KL coefficient,
and a LoRA weight of the actor and of the critic (gathered in full) before and after training.

A group-relative estimator (REINFORCE++-baseline is the one that looks beyond a group: it whitens
over the whole batch) runs groups of 2 sampled completions, 2 epochs, the KL as a loss term with
adaptive control (the second step's KL moves it), every rank generating the same length, with
``varied_rewards``, for 2 steps; ``single`` runs it in one process on the two ranks' batches of
each step concatenated, which must end with the same weights and KL coefficient.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.utils.data import DataLoader

from tl_lightning.data.datamodule import ToolUseDataModule, collate_prompts
from tl_lightning.modeling import TINY_LLAMA, LoraOptions
from tl_lightning.ppo import IRMPPOModule
from varied_rewards import varied_rewards


def full_weight(module: torch.nn.Module, name_part: str) -> list[float]:
    """The first parameter whose name contains ``name_part``, gathered in full, as a list."""
    for name, param in module.named_parameters():
        if name_part in name:
            value = param.full_tensor() if hasattr(param, "full_tensor") else param
            return value.detach().flatten()[:8].tolist()
    raise KeyError(name_part)


class Record(pl.Callback):
    def __init__(self, out: Path, critic_layout: str) -> None:
        self.out, self.critic_layout, self.before = out, critic_layout, {}

    def _weights(self, module: IRMPPOModule) -> dict[str, list[float]]:
        if not module.has_critic:
            return {"actor": full_weight(module.actor, "lora_B.default")}
        critic_owner = module.actor if self.critic_layout == "shared_lora" else module.critic
        critic_part = "lora_B.critic" if self.critic_layout == "shared_lora" else "lora_B.default"
        return {"actor": full_weight(module.actor, "lora_B.default"), "critic": full_weight(critic_owner, critic_part),
                "value_head": full_weight(module.value_head, "weight")}

    def on_train_start(self, trainer, module) -> None:
        self.before = self._weights(module)

    def on_train_end(self, trainer, module) -> None:
        from torch.distributed.tensor import DTensor

        result = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "sharded": isinstance(next(module.actor.parameters()), DTensor),
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
            "kl_coef": module.kl_controller.value,
            "before": self.before,
            "after": self._weights(module),
        }
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--strategy", choices=("fsdp", "ddp", "single"), default="fsdp")
    parser.add_argument("--critic_layout", default="shared_lora")
    parser.add_argument("--estimator", default="gae")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("LOCAL_RANK", 0))
    torch.set_num_threads(1)

    lora = LoraOptions(r=4, alpha=8)
    if args.estimator == "gae":
        module = IRMPPOModule(model_name=TINY_LLAMA, lora=lora, critic_layout=args.critic_layout,
                              critic_lora=lora, max_new_tokens=3 + 5 * rank, ppo_epochs=2, minibatch_size=1,
                              actor_lr=1e-2, critic_lr=1e-2)
    else:
        module = IRMPPOModule(model_name=TINY_LLAMA, lora=lora, advantage_estimator=args.estimator,
                              num_generations=2, do_sample=True, temperature=1.0, max_new_tokens=4, ppo_epochs=2,
                              actor_lr=1e-2, kl_coef=0.1, kl_target=0.05, kl_horizon=10, kl_mode="loss")
    steps = 1 if args.estimator == "gae" else 2
    data = ToolUseDataModule(tokenizer=TINY_LLAMA, stage="rl", batch_size=2, synthetic_size=24, max_length=2048)
    data.connect(module.tokenizer)
    data.setup("fit")
    batches = list(data.train_dataloader())[:2 * steps]
    # step t: rank r trains on batch 2t + r; one process on both of them, concatenated
    if args.strategy == "single":
        by_id = {p.id: p for p in data.train_items}
        batches = [collate_prompts([by_id[i] for b in batches[2 * t:2 * t + 2] for i in b["ids"]],
                                   module.tokenizer.pad_token_id) for t in range(steps)]
    else:
        batches = batches[rank::2]

    strategy = {"fsdp": ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1),
                "ddp": "ddp_find_unused_parameters_true", "single": "auto"}[args.strategy]
    trainer = pl.Trainer(accelerator="cpu", devices=1 if args.strategy == "single" else 2, strategy=strategy,
                         max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[Record(out, args.critic_layout)],
                         use_distributed_sampler=False)
    loader = DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    with varied_rewards() if args.estimator != "gae" else contextlib.nullcontext():
        trainer.fit(module, loader)


if __name__ == "__main__":
    main()
