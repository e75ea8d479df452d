"""``ActorCriticModule``: the networks an RL step trains and reads, and the passes over a rollout
(``ppo.IRMPPOModule`` is one; docs/design.md, "IRM: reinforcement learning").

- the actor, the policy being trained, loaded from ``model_source()`` with dropout off everywhere
  (RL's ratio compares the same network's log-probs in rollout and update);
- the reference: with LoRA the actor with its adapter switched off (no second copy); a fully
  trained actor needs a frozen copy;
- for an estimator with a critic (``has_critic``), the critic with a scalar ``ValueHead``: its own
  LoRA adapter over the actor's frozen base (``critic_layout="shared_lora"``, peft multi-adapter),
  or a separate copy of the model (``"copy"``: full, or with ``critic_lora``);
- FSDP2 sharding of all of them when the strategy gives a device mesh, and one AdamW each for actor
  and critic;
- the passes: logits and log-probs of the response tokens at the sampling temperature, the
  reference's with each group's prompt run once, the critic's values.

A subclass sets ``lora``, ``critic_lora`` and ``has_critic`` in its ``__init__`` and saves the
hyper-parameters ``dtype``, ``gradient_checkpointing``, ``quantization``, ``seed``,
``critic_layout``, ``num_generations``, ``do_sample``, ``temperature``, ``actor_lr``, ``critic_lr``,
``betas`` and ``weight_decay``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from tl_lightning.generation import Rollout
from tl_lightning.lm_module import CausalLMModule
from tl_lightning.losses import gather_logprobs
from tl_lightning.modeling import LoraOptions, ValueHead, disable_dropout, last_hidden_state, load_model, shard_model
from tl_lightning.rollouts import forward_inputs, response_logits, shared_prompt_logprobs

CRITIC_LAYOUTS = ("shared_lora", "copy")
ACTOR_ADAPTER = "default"  # peft's name for the adapter get_peft_model creates
CRITIC_ADAPTER = "critic"


class ActorCriticModule(CausalLMModule):
    """The actor, its reference and (``has_critic``) a critic with its value head (module docstring)."""

    lora: LoraOptions | None
    critic_lora: LoraOptions | None
    has_critic: bool

    def __init__(self) -> None:
        super().__init__()
        self.actor: nn.Module | None = None
        self.reference: nn.Module | None = None  # only for a fully trained actor
        self.critic: nn.Module | None = None  # only for a critic with critic_layout="copy"
        self.value_head: ValueHead | None = None  # only with a critic

    @property
    def model(self) -> nn.Module | None:
        """The policy being trained (the actor), under the name ``export.HFExport`` reads."""
        return self.actor

    def _load(self, lora: LoraOptions | None) -> nn.Module:
        hp = self.hparams
        model = load_model(self.model_source(), dtype=hp.dtype, gradient_checkpointing=hp.gradient_checkpointing,
                           lora=lora, quantization=hp.quantization, seed=hp.seed)
        disable_dropout(model)
        return model

    @property
    def shared_critic(self) -> bool:
        """Whether the critic is a second adapter on the actor's network."""
        return self.has_critic and self.hparams.critic_layout == "shared_lora"

    def configure_model(self) -> None:
        """Load the actor, the critic (if any) and, for a full actor, the reference once; shard
        them with FSDP2 when the strategy provides a device mesh."""
        if self.actor is not None:
            return
        hp = self.hparams
        self.actor = self._load(self.lora)
        if self.lora is None:
            self.reference = self._load(None).requires_grad_(False).eval()
        if self.shared_critic:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(hp.seed + 1)
                self.actor.add_adapter(CRITIC_ADAPTER, self.critic_lora.peft_config())
            disable_dropout(self.actor)
            self._use_adapter(ACTOR_ADAPTER)
        elif self.has_critic:
            self.critic = self._load(self.critic_lora)
        if self.has_critic:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(hp.seed + 2)
                self.value_head = ValueHead(self.actor.config.hidden_size)
        # from_pretrained leaves models in eval mode; gradient checkpointing only acts in train mode
        self.actor.train()
        if self.critic is not None:
            self.critic.train()
        if self.device_mesh is not None:
            self._shard(self.device_mesh["data_parallel"])

    def _shard(self, mesh) -> None:
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        for model in (self.actor, self.reference, self.critic):
            if model is not None:
                shard_model(model, mesh)
        if self.value_head is not None:
            fully_shard(self.value_head, mesh=mesh)
        if hasattr(self.actor, "get_base_model"):
            # peft's generate calls the inner model, not the sharded root: unshard the root for it.
            register_fsdp_forward_method(self.actor, "generate")

    def _use_adapter(self, name: str) -> None:
        """Route the shared network through adapter ``name``. peft's ``set_adapter`` also freezes
        the other adapter; both stay trainable here (each optimizer steps only its own), because
        FSDP2 fixes ``requires_grad`` of its unsharded parameters at their first use."""
        self.actor.set_adapter(name)
        for param_name, param in self.actor.named_parameters():
            if "lora_" in param_name:
                param.requires_grad_(True)

    @contextmanager
    def _critic_adapter(self) -> Iterator[None]:
        if not self.shared_critic:
            yield
            return
        self._use_adapter(CRITIC_ADAPTER)
        try:
            yield
        finally:
            self._use_adapter(ACTOR_ADAPTER)

    def _reference_context(self):
        """The reference policy: the actor with its adapter(s) off, or the frozen copy."""
        return self.actor.disable_adapter() if self.reference is None else nullcontext()

    def actor_parameters(self) -> list[nn.Parameter]:
        if self.shared_critic:
            return [p for n, p in self.actor.named_parameters() if f".{ACTOR_ADAPTER}." in n and p.requires_grad]
        return [p for p in self.actor.parameters() if p.requires_grad]

    def critic_parameters(self) -> list[nn.Parameter]:
        if self.shared_critic:
            body = [p for n, p in self.actor.named_parameters() if f".{CRITIC_ADAPTER}." in n]
        else:
            body = [p for p in self.critic.parameters() if p.requires_grad]
        return body + list(self.value_head.parameters())

    def configure_optimizers(self):
        """AdamW for the actor, and for the critic if there is one (the critic-free estimators have
        no critic optimizer, so none in their checkpoints either)."""
        hp = self.hparams
        actor_opt = torch.optim.AdamW(self.actor_parameters(), lr=hp.actor_lr, betas=tuple(hp.betas),
                                      weight_decay=hp.weight_decay)
        if not self.has_critic:
            return actor_opt
        critic_opt = torch.optim.AdamW(self.critic_parameters(), lr=hp.critic_lr, betas=tuple(hp.betas),
                                       weight_decay=hp.weight_decay)
        return [actor_opt, critic_opt]

    # ---- passes over a rollout

    @property
    def rollout_temperature(self) -> float:
        """The temperature the rollouts are drawn at: ``temperature`` when sampling, 1 when greedy."""
        return self.hparams.temperature if self.hparams.do_sample else 1.0

    def policy_logits(self, model: nn.Module, rollout: Rollout) -> torch.Tensor:
        """(B, R, V) logits that predict the response tokens, at ``rollout_temperature``
        (``rollouts.response_logits``)."""
        return response_logits(model, rollout, self.rollout_temperature)

    def logprobs(self, model: nn.Module, rollout: Rollout) -> torch.Tensor:
        """(B, R) log-probs of the response tokens under ``model`` (``policy_logits``)."""
        return gather_logprobs(self.policy_logits(model, rollout), rollout.response_ids)

    def reference_logprobs(self, rollout: Rollout) -> torch.Tensor:
        """(B, R) log-probs of the response tokens under the reference policy (the prompt of each
        group run once: ``group_logprobs``)."""
        with self._reference_context():
            return self.group_logprobs(self.actor if self.reference is None else self.reference, rollout)

    def group_logprobs(self, model: nn.Module, rollout: Rollout) -> torch.Tensor:
        """(B, R) log-probs of the response tokens without grad, each group's prompt run once
        (``rollouts.shared_prompt_logprobs``)."""
        return shared_prompt_logprobs(model, rollout, self.hparams.num_generations, self.rollout_temperature)

    def values(self, rollout: Rollout) -> torch.Tensor:
        """(B, R) critic values of the states before each response token."""
        with self._critic_adapter():
            hidden = last_hidden_state(self.actor if self.critic is None else self.critic, **forward_inputs(rollout))
        P = rollout.prompt_length
        return self.value_head(hidden[:, P - 1:-1])
