"""IRMPPOModule: reinforcement learning against the IRM rule reward (DESIGN §2): PPO with a
critic, as the authors run it with DeepSpeed-Chat, and the critic-free group-relative estimators
(GRPO, Dr. GRPO, RLOO, REINFORCE++-baseline), in one Lightning module.

One training step = one RL iteration on a batch of ``stage="rl"`` prompts:

1. rollouts (``generation.generate``): each prompt ``num_generations`` times in consecutive rows
   (a group), greedy or sampled with per-row seeds, each row stopping at eos or end-of-turn text;
2. the responses are scored with ``irm_reward`` (its category is logged);
3. the no-grad passes that the estimator needs: reference log-probs (only with a non-zero KL
   coefficient; each group's prompt runs once, ``group_logprobs``), old log-probs (unless the
   update is one pass over one minibatch: then they are the update's own, detached), critic
   values (``gae`` only); then the advantages, over the whole rollout batch (of all processes,
   where the estimator looks beyond a group), before any minibatch;
4. ``ppo_epochs`` passes over minibatches: a clipped-ratio policy update each (and a critic
   update for ``gae``), in micro-batches (gradient accumulation), with gradient clipping (manual
   optimization).

Advantage estimators (``advantage_estimator``; the formulas are in ``losses.py``):

| estimator | advantage | policy loss averaged as |
|---|---|---|
| ``gae`` | GAE over per-token rewards, learned critic | token mean |
| ``grpo`` | (r - group mean) / (group std + 1e-4) | per sequence, then over sequences |
| ``dr_grpo`` | r - group mean | token sums / ``max_new_tokens``, mean over sequences |
| ``rloo`` | r - mean of the other G - 1 | token mean |
| ``reinforce_pp_baseline`` | r - group mean, whitened over the batch's tokens | token mean |

RLOO and REINFORCE++ take the token mean as OpenRLHF implements both: every token weighs the same,
so long responses are not down-weighted. ``loss_aggregation`` overrides the column.

KL to the reference (``kl_mode``). ``"reward"`` (the paper's): ``-kl_coef * (logp - ref_logp)`` on
every token; GAE sees the per-token rewards, the group estimators the sequence reward
``clip(score) - kl_coef * sum_t (logp - ref_logp)`` (the per-token rewards summed, as verl does)
before the group baseline. ``"loss"`` (GRPO's): ``kl_coef * k3`` with
``k3 = exp(ref - logp) - (ref - logp) - 1`` added to each token's policy loss. Sampled rollouts
take every log-prob from ``logits / temperature``.

Stopping. Rollouts stop at eos or end-of-turn text only, never after the first complete call
(evaluation of single-call prompts does): a hedging second call must reach the reward, which
scores it as redundant. The cost is the tokens between a call and the end marker.

Models. The actor starts from the PKT model: a model name / HF folder (e.g. written by
``export.py``), or a ``PKTModule`` checkpoint (``init_checkpoint``). With LoRA the reference is
the same network with the adapter disabled, so no second copy is held; a fully trained actor
needs a frozen copy. Only ``gae`` has a critic: a scalar ``ValueHead`` on either its own LoRA
adapter over the actor's frozen base (``critic_layout="shared_lora"``, peft multi-adapter) or a
separate copy of the model (``"copy"``: full, or with ``critic_lora``).

Counting. ``trainer.global_step`` counts optimizer steps, as always with manual optimization:
``ppo_epochs * minibatches`` per rollout batch, twice that with a critic. Bound a run with
``max_epochs`` / ``limit_train_batches`` (rollout batches), or ``max_steps`` in those units.

Processes. Under FSDP2 (``ModelParallelStrategy``; ``configure_model`` shards actor, reference,
critic and value head) generation is synchronised across ranks. Under DDP use
``strategy="ddp_find_unused_parameters_true"``: each step makes many backward passes, each
through a part of the parameters. Each rank generates the groups of its own prompts, so a group
never straddles ranks; losses are divided by global counts and REINFORCE++ whitens over all
ranks, and sampling seeds depend on the prompt, not the rank: N processes end with the weights of
one process holding the global batch (tests/scripts/ppo_fsdp.py).

Multi-turn episodes. With an ``environment`` (``environments.py``; the DataModule's
``stage="env"`` batches hand out its task indices) each row of a rollout batch is an episode
(``episodes.py``): the policy calls tools, reads their outputs and goes on until it answers. The
response is everything after the first prompt; tool outputs are context (``response_mask`` 0 there),
the IRM reward scores every call turn and the environment the outcome (``episodes`` options:
turns, token budget, how the rewards reach the tokens, MAE in RL). PPO's GAE runs over the
generated tokens only (``masked_gae_advantages``); the group estimators take each episode's summed
reward. ``max_new_tokens`` bounds each turn; Dr. GRPO's constant is the episode's generated budget.
Not under FSDP2 yet: synced generation would need every rank to run the same number of turns.

Resume. Checkpoints hold the actor, the critic (``gae``), the optimizers (Lightning), the KL
controller and the torch / python / numpy RNG states (here), and the data position (the
DataModule's resumable loader), so a killed run resumed from ``last`` repeats an uninterrupted
run's later losses.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from tl_lightning.data.datamodule import truncated_answers_warning
from tl_lightning.environments import Environment
from tl_lightning.episodes import (
    EpisodeOptions,
    ScoredRollout,
    episode_batch,
    pad_id_of,
    run_episodes,
    void_neutral_rewards,
)
from tl_lightning.export import export_pkt_checkpoint
from tl_lightning.generation import Rollout, StopRule, generate, sampling_seed
from tl_lightning.losses import (
    LOSS_AGGREGATIONS,
    aggregate_token_losses,
    approx_kl,
    clipped_policy_losses,
    dr_grpo_advantages,
    gather_logprobs,
    grpo_advantages,
    k3_kl,
    kl_penalty,
    masked_gae_advantages,
    masked_mean,
    masked_whiten,
    ppo_value_loss,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
    tempered_logits,
    terminal_rewards,
    token_entropy,
)
from tl_lightning.lm_module import CausalLMModule
from tl_lightning.modeling import (
    SMOLLM2,
    LoraOptions,
    ValueHead,
    disable_dropout,
    last_hidden_state,
    load_model,
    lora_options,
    shard_model,
)
from tl_lightning.reward import CATEGORIES, RewardTable, classify_call

CRITIC_LAYOUTS = ("shared_lora", "copy")
ACTOR_ADAPTER = "default"  # peft's name for the adapter get_peft_model creates
CRITIC_ADAPTER = "critic"
KL_MODES = ("reward", "loss")
# each estimator's policy-loss averaging (module docstring); gae is the only one with a critic
ESTIMATORS = {"gae": "token_mean", "grpo": "sequence_mean", "dr_grpo": "sum_over_budget", "rloo": "token_mean",
              "reinforce_pp_baseline": "token_mean"}
# RL rollouts end at eos / end-of-turn text only: an extra call after the first must be scored
ROLLOUT_STOP = StopRule(after_call=False)
PHASES = ("generation", "scoring", "passes", "updates")


# ---------------------------------------------------------------------------------------------
# KL control


@dataclass
class FixedKLController:
    """A constant KL coefficient (the authors' setting: 0.3)."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> None:
        """A fixed coefficient does not follow the KL."""

    def state_dict(self) -> dict[str, float]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


@dataclass
class AdaptiveKLController:
    """Ziegler et al. (2019): move the coefficient so the per-sequence KL approaches ``target``;
    the proportional error is clipped to +-20% and scaled by ``n_steps / horizon``."""

    value: float
    target: float
    horizon: int

    def __post_init__(self) -> None:
        if self.target <= 0 or self.horizon <= 0:
            raise ValueError(f"adaptive KL control needs target > 0 and horizon > 0, got {self.target}, {self.horizon}")

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value, self.target, self.horizon = float(state["value"]), float(state["target"]), int(state["horizon"])


class PhaseClock:
    """Wall seconds of the phases of one training step: ``lap(phase)`` closes the phase that ran
    since the previous lap (on a GPU once the queued kernels are done, so time lands in its phase)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds, self._last = device, {}, time.perf_counter()

    def lap(self, phase: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[phase], self._last = now - self._last, now


# ---------------------------------------------------------------------------------------------
# rollouts and their rewards


def repeat_prompts(batch: dict[str, Any], times: int) -> dict[str, Any]:
    """A prompt batch with each row ``times`` times in consecutive rows (a group of completions):
    tensors and lists alike, along their first dimension."""
    if times == 1:
        return batch
    return {k: v.repeat_interleave(times, 0) if isinstance(v, torch.Tensor)
            else [x for x in v for _ in range(times)] if isinstance(v, list) else v for k, v in batch.items()}


def group_reward_stats(scores: torch.Tensor, group_size: int) -> dict[str, float]:
    """How much the scores (B,) vary within the groups of ``group_size`` consecutive rows: the mean
    within-group std and the share of groups whose scores are all equal (they carry no signal for
    a group-relative estimator)."""
    groups = scores.float().view(-1, group_size)
    spread = groups.max(1).values - groups.min(1).values
    return {"group_std": groups.std(1).mean().item(), "zero_variance_groups": (spread == 0).float().mean().item()}


def score_responses(texts: Sequence[str], gold: Sequence[Any], tools: Sequence[Any],
                    table: RewardTable | None = None) -> tuple[torch.Tensor, list[str]]:
    """IRM rewards (B,) float32 and categories of generated texts against the batch's ``gold``
    call sets and ``tools`` (text that is no call scores the table's lowest category)."""
    table = table or RewardTable()
    categories = [classify_call(text, g, t, table) for text, g, t in zip(texts, gold, tools, strict=True)]
    return torch.tensor([table.value(c) for c in categories], dtype=torch.float32), categories


def category_shares(categories: Sequence[str]) -> dict[str, float]:
    """Share of each reward category (all of ``CATEGORIES``, zeros included)."""
    counts = Counter(categories)
    return {c: counts[c] / max(len(categories), 1) for c in CATEGORIES}


@torch.no_grad()
def evaluate_rewards(model, tokenizer, dataloader, *, max_new_tokens: int = 128,
                     table: RewardTable | None = None) -> dict[str, Any]:
    """Greedy rollouts on every prompt of ``dataloader`` (``stage="rl"``/``"eval"`` batches) and
    their IRM scores: ``{"prompts", "mean_reward", "shares": {category: share}}``."""
    device = next(model.parameters()).device
    rewards, categories = [], []
    for batch in dataloader:
        rollout = generate(model, tokenizer, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                           max_new_tokens=max_new_tokens, stop=ROLLOUT_STOP)
        batch_rewards, batch_categories = score_responses(rollout.texts, batch["gold"], batch["tools"], table)
        rewards.append(batch_rewards)
        categories += batch_categories
    if not categories:
        raise ValueError("evaluate_rewards got an empty dataloader")
    return {"prompts": len(categories), "mean_reward": torch.cat(rewards).mean().item(),
            "shares": category_shares(categories)}


def single_turn_scored(rollout: Rollout, gold: Sequence[Any], tools: Sequence[Any], table: RewardTable,
                       clip_score: float) -> ScoredRollout:
    """A rollout of one answer per prompt as a ``ScoredRollout``: its IRM score (clipped) on the
    last response token, every response token in the policy loss."""
    scores, categories = score_responses(rollout.texts, gold, tools, table)
    scores = scores.to(rollout.sequences.device)
    mask = rollout.response_mask
    return ScoredRollout(rollout, mask, terminal_rewards(scores, mask, clip_score), scores, categories,
                         torch.zeros(mask.shape[0], dtype=torch.bool, device=mask.device))


# ---------------------------------------------------------------------------------------------
# the module


class IRMPPOModule(CausalLMModule):
    """RL with the IRM reward on ``ToolUseDataModule(stage="rl")`` prompts: PPO with a critic or a
    group-relative estimator (module docstring; DESIGN §2).

    Args:
        model_name: the PKT model: ``"smollm2-135m-instruct"``, ``"tiny-llama"``, an HF id or a
            folder (e.g. one written by ``export.py``).
        init_checkpoint: a ``PKTModule`` checkpoint (``.ckpt``) to start from instead; its model
            (LoRA merged) is written once to an HF folder beside it and loaded from there.
        dtype, gradient_checkpointing, quantization, seed: as in ``modeling.load_model``; ``seed``
            also seeds the sampling (with the prompt, the step and the index in the group).
        lora: LoRA for the actor; None trains the actor fully (and holds a frozen reference copy).
        advantage_estimator: ``"gae"`` (PPO with a critic, the paper's), ``"grpo"``, ``"dr_grpo"``,
            ``"rloo"`` or ``"reinforce_pp_baseline"`` (no critic).
        num_generations: completions per prompt (a group); > 1 needs ``do_sample``, and the
            group-relative estimators need >= 2.
        loss_aggregation: ``"token_mean"``, ``"sequence_mean"`` or ``"sum_over_budget"`` instead of
            the estimator's own (``ESTIMATORS``).
        critic_layout (``gae``): ``"shared_lora"`` (a second adapter over the actor's frozen base;
            needs ``lora``) or ``"copy"`` (a separate model).
        critic_lora (``gae``): the critic's adapter; for ``shared_lora`` None means ``lora``'s
            settings, for ``copy`` None means a fully trained copy.
        actor_lr, critic_lr, weight_decay, betas, gradient_clip_val: AdamW for each and the
            gradient norm clip of every update.
        kl_coef: the KL coefficient (0: no reference pass); with ``kl_target`` it is the start of
            adaptive control (``kl_horizon``), else fixed.
        kl_mode: ``"reward"`` (a per-token reward penalty) or ``"loss"`` (the k3 term in the loss).
        clip_score, gamma, lam, policy_clip, value_clip, whiten_advantages (``gae`` only): PPO
            (DESIGN §2).
        ppo_epochs, minibatch_size: passes over each rollout batch and rows per optimizer step
            (None = the whole batch; rows are completions: a batch has ``batch_size * num_generations``).
        microbatch_size: rows per forward / backward within a minibatch (gradient accumulation, the
            same gradients; None = the minibatch): bounds activation memory without more optimizer
            steps, so one epoch over one minibatch still needs no old-log-prob pass.
        max_new_tokens, do_sample, temperature, top_p: generation (greedy by default);
            ``max_new_tokens`` is also Dr. GRPO's loss constant.
        reward_table: category -> reward overrides of ``RewardTable`` (DESIGN §2 values).
        environment: a multi-turn tool environment (``environments.Environment``, e.g.
            ``SyntheticWorldEnv``): episodes instead of single answers, on ``stage="env"`` batches.
        episodes: ``episodes.EpisodeOptions`` (turns, token budget, reward mode, outcome weight,
            turn discount, MAE in RL) for ``environment``.
    """

    def __init__(
        self,
        model_name: str = SMOLLM2,
        init_checkpoint: str | None = None,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
        lora: LoraOptions | None = None,
        quantization: str | None = None,
        advantage_estimator: str = "gae",
        num_generations: int = 1,
        loss_aggregation: str | None = None,
        critic_layout: str = "shared_lora",
        critic_lora: LoraOptions | None = None,
        seed: int = 0,
        actor_lr: float = 2e-7,
        critic_lr: float = 1e-7,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.95),
        gradient_clip_val: float = 1.0,
        kl_coef: float = 0.3,
        kl_target: float | None = None,
        kl_horizon: int = 10000,
        kl_mode: str = "reward",
        clip_score: float = 5.0,
        gamma: float = 1.0,
        lam: float = 0.95,
        policy_clip: float = 0.2,
        value_clip: float = 0.2,
        whiten_advantages: bool = False,
        ppo_epochs: int = 3,
        minibatch_size: int | None = None,
        microbatch_size: int | None = None,
        max_new_tokens: int = 512,
        do_sample: bool = False,
        temperature: float = 0.7,
        top_p: float = 1.0,
        reward_table: dict[str, float] | None = None,
        environment: Environment | None = None,
        episodes: EpisodeOptions | None = None,
    ) -> None:
        super().__init__()
        lora, critic_lora = lora_options(lora), lora_options(critic_lora)
        if advantage_estimator not in ESTIMATORS:
            raise ValueError(f"advantage_estimator must be one of {tuple(ESTIMATORS)}, got {advantage_estimator!r}")
        if loss_aggregation is not None and loss_aggregation not in LOSS_AGGREGATIONS:
            raise ValueError(f"loss_aggregation must be one of {LOSS_AGGREGATIONS} or None, got {loss_aggregation!r}")
        if kl_mode not in KL_MODES:
            raise ValueError(f"kl_mode must be one of {KL_MODES}, got {kl_mode!r}")
        if num_generations < 1:
            raise ValueError(f"num_generations must be >= 1, got {num_generations}")
        if num_generations > 1 and not do_sample:
            raise ValueError(f"num_generations={num_generations} needs do_sample=True: greedy completions of one "
                             "prompt are all the same")
        has_critic = advantage_estimator == "gae"
        if not has_critic and num_generations < 2:
            raise ValueError(f"advantage_estimator={advantage_estimator!r} compares the completions of a prompt: "
                             "it needs num_generations >= 2")
        if not has_critic and whiten_advantages:
            raise ValueError("whiten_advantages is a gae option (reinforce_pp_baseline whitens by definition)")
        if has_critic and critic_layout not in CRITIC_LAYOUTS:
            raise ValueError(f"critic_layout must be one of {CRITIC_LAYOUTS}, got {critic_layout!r}")
        if has_critic and critic_layout == "shared_lora" and lora is None:
            raise ValueError("critic_layout='shared_lora' puts the critic's adapter over the actor's frozen base: "
                             "it needs lora options (or use critic_layout='copy' for a fully trained actor)")
        if quantization is not None and lora is None:
            raise ValueError(f"quantization={quantization!r} freezes the weights: the actor needs lora options")
        if has_critic and quantization is not None and critic_layout == "copy" and critic_lora is None:
            raise ValueError("a quantized critic copy cannot be trained fully: give critic_lora")
        if ppo_epochs < 1 or max_new_tokens < 1 or any(n is not None and n < 1 for n in (minibatch_size, microbatch_size)):
            raise ValueError("ppo_epochs, max_new_tokens, minibatch_size and microbatch_size must be >= 1")
        if environment is not None and not isinstance(environment, Environment):
            raise ValueError(f"environment must have tasks, reset() and step() (environments.Environment), "
                             f"got {type(environment).__name__}")
        self.table = RewardTable(**(reward_table or {}))
        self.environment = environment
        self.episode_options = (EpisodeOptions(**episodes) if isinstance(episodes, dict)
                                else episodes or EpisodeOptions())
        # The environment is not in the hyper-parameters (an object; the CLI's config.yaml records it).
        self.save_options(ignore=["environment"], episodes=self.episode_options, lora=lora, critic_lora=critic_lora)
        self.has_critic = has_critic
        self.loss_aggregation = loss_aggregation or ESTIMATORS[advantage_estimator]
        self.lora = lora
        self.critic_lora = critic_lora if critic_lora is not None or critic_layout == "copy" else lora
        self.kl_controller = (AdaptiveKLController(kl_coef, kl_target, kl_horizon) if kl_target is not None
                              else FixedKLController(kl_coef))
        self.automatic_optimization = False
        self.actor: nn.Module | None = None
        self.reference: nn.Module | None = None  # only for a fully trained actor
        self.critic: nn.Module | None = None  # only for gae with critic_layout="copy"
        self.value_head: ValueHead | None = None  # only for gae
        self.phase_seconds: dict[str, float] = {}  # the last training step's, by phase (PHASES)
        self._rng_to_restore: dict[str, Any] | None = None

    # ---- models

    @property
    def model(self) -> nn.Module | None:
        """The policy being trained (the actor), under the name ``export.HFExport`` reads."""
        return self.actor

    def model_source(self) -> str:
        """The PKT model: ``model_name``, or the HF folder exported once from ``init_checkpoint``
        (which records the checkpoint's prompt format)."""
        if self.hparams.init_checkpoint is None:
            return self.hparams.model_name
        return str(export_pkt_checkpoint(self.hparams.init_checkpoint))

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
        """Load the actor, the critic (``gae``) and, for a full actor, the reference once; shard
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
        """AdamW for the actor, and for the critic with ``gae`` (the critic-free estimators have
        no critic optimizer, so none in their checkpoints either)."""
        hp = self.hparams
        actor_opt = torch.optim.AdamW(self.actor_parameters(), lr=hp.actor_lr, betas=tuple(hp.betas),
                                      weight_decay=hp.weight_decay)
        if not self.has_critic:
            return actor_opt
        critic_opt = torch.optim.AdamW(self.critic_parameters(), lr=hp.critic_lr, betas=tuple(hp.betas),
                                       weight_decay=hp.weight_decay)
        return [actor_opt, critic_opt]

    # ---- forward passes

    def _forward_inputs(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        return {"input_ids": rollout.sequences, "attention_mask": rollout.attention_mask,
                "position_ids": rollout.position_ids}

    @property
    def rollout_temperature(self) -> float:
        """The temperature the rollouts are drawn at: ``temperature`` when sampling, 1 when greedy."""
        return self.hparams.temperature if self.hparams.do_sample else 1.0

    def policy_logits(self, model: nn.Module, rollout: Rollout) -> torch.Tensor:
        """(B, R, V) logits that predict the response tokens (only those positions are projected),
        divided by ``rollout_temperature``: every log-prob taken from them (old, new, reference,
        hence the KL) and the entropy are those of the distribution the tokens were drawn from."""
        R = rollout.response_mask.shape[1]
        out = model(**self._forward_inputs(rollout), logits_to_keep=R + 1, use_cache=False)
        return tempered_logits(out.logits[:, :-1], self.rollout_temperature)

    def logprobs(self, model: nn.Module, rollout: Rollout) -> torch.Tensor:
        """(B, R) log-probs of the response tokens under ``model`` (``policy_logits``)."""
        return gather_logprobs(self.policy_logits(model, rollout), rollout.response_ids)

    def reference_logprobs(self, rollout: Rollout) -> torch.Tensor:
        """(B, R) log-probs of the response tokens under the reference policy (the prompt of each
        group run once: ``group_logprobs``)."""
        with self._reference_context():
            return self.group_logprobs(self.actor if self.reference is None else self.reference, rollout)

    @torch.no_grad()
    def group_logprobs(self, model: nn.Module, rollout: Rollout) -> torch.Tensor:
        """(B, R) log-probs of the response tokens, like ``logprobs`` without grad, but the G rows of
        a group share their prompt: it runs once per group, its KV cache is repeated G times and
        only the responses run on top. A forward over P + R tokens per row becomes P / G + R, so
        long tool-list prompts stop dominating (the values agree with ``logprobs`` to float
        rounding, which is why the ratio's old log-probs do not come from here)."""
        G, P = self.hparams.num_generations, rollout.prompt_length
        if G == 1:
            return self.logprobs(model, rollout)
        firsts = torch.arange(0, rollout.sequences.shape[0], G, device=rollout.sequences.device)
        was_training = model.training
        model.eval()  # the KV cache; dropout is off anyway, and gradient checkpointing would drop the cache
        try:
            prompt = model(input_ids=rollout.sequences[firsts, :P], attention_mask=rollout.attention_mask[firsts, :P],
                           position_ids=rollout.position_ids[firsts, :P], use_cache=True, logits_to_keep=1)
            logits = [prompt.logits.repeat_interleave(G, 0)]  # predicts response token 0
            R = rollout.response_mask.shape[1]
            if R > 1:
                cache = prompt.past_key_values
                cache.batch_repeat_interleave(G)
                logits.append(model(input_ids=rollout.sequences[:, P:-1], attention_mask=rollout.attention_mask[:, :-1],
                                    position_ids=rollout.position_ids[:, P:-1], past_key_values=cache,
                                    use_cache=True).logits)
        finally:
            model.train(was_training)
        return gather_logprobs(tempered_logits(torch.cat(logits, 1), self.rollout_temperature), rollout.response_ids)

    def values(self, rollout: Rollout) -> torch.Tensor:
        """(B, R) critic values of the states before each response token."""
        with self._critic_adapter():
            hidden = last_hidden_state(self.actor if self.critic is None else self.critic,
                                       **self._forward_inputs(rollout))
        P = rollout.prompt_length
        return self.value_head(hidden[:, P - 1:-1])

    def _synced_generation(self) -> bool:
        return self.device_mesh is not None and self.trainer.world_size > 1

    @property
    def loss_budget(self) -> int:
        """The most tokens a row generates: Dr. GRPO's loss constant."""
        if self.environment is None:
            return self.hparams.max_new_tokens
        return self.episode_options.generated_budget(self.hparams.max_new_tokens)

    @torch.no_grad()
    def make_rollout(self, batch: dict[str, Any], sample: bool | None = None) -> Rollout:
        """Responses of the actor to a batch of prompts, sampled per ``do_sample`` unless ``sample``
        says otherwise. A sampled row's seed comes from its prompt tokens, the run seed, the global
        step and its index in its group (the rows of a group are consecutive): the draws do not
        depend on the batch layout or the number of processes."""
        hp = self.hparams
        sample = hp.do_sample if sample is None else sample
        seeds = None
        if sample:
            seeds = [sampling_seed(ids[keep.bool()].tolist(), hp.seed, self.global_step, row % hp.num_generations)
                     for row, (ids, keep) in enumerate(zip(batch["input_ids"], batch["attention_mask"]))]
        return generate(self.actor, self.tokenizer, batch["input_ids"], batch["attention_mask"],
                        max_new_tokens=hp.max_new_tokens, do_sample=sample, temperature=hp.temperature,
                        top_p=hp.top_p, stop=ROLLOUT_STOP, seeds=seeds, synced=self._synced_generation())

    @torch.no_grad()
    def make_episodes(self, batch: dict[str, Any], sample: bool | None = None) -> ScoredRollout:
        """Episodes of the actor in the environment, one per row of a ``stage="env"`` batch (its
        ``tasks`` indices and ``prompt_format``), sampled per ``do_sample`` unless ``sample`` says
        otherwise, as a ``ScoredRollout`` on this device. A sampled episode's seed comes from its
        task index, the run seed, the global step and its index in its group (then the turn)."""
        hp = self.hparams
        if self._synced_generation():
            raise NotImplementedError("multi-turn episodes under FSDP2 need every rank to run the same turns; "
                                      "use DDP (strategy: ddp_find_unused_parameters_true)")
        sample = hp.do_sample if sample is None else sample
        seeds = [sampling_seed(int(task), hp.seed, self.global_step, row % hp.num_generations)
                 for row, task in enumerate(batch["tasks"])] if sample else None
        episodes = run_episodes(self.actor, self.tokenizer, self.environment,
                                [self.environment.tasks[int(t)] for t in batch["tasks"]],
                                prompt_format=batch["prompt_format"], options=self.episode_options,
                                max_new_tokens=hp.max_new_tokens, do_sample=sample, temperature=hp.temperature,
                                top_p=hp.top_p, seeds=seeds, table=self.table)
        return episode_batch(episodes, pad_id_of(self.tokenizer), self.episode_options, self.table,
                             hp.clip_score).to(self.device)

    def scored_rollout(self, batch: dict[str, Any], clock: PhaseClock) -> ScoredRollout:
        """The step's rollouts and rewards: an answer per row scored by the IRM reward, or with an
        environment an episode per row (its tool calls executed between the turns)."""
        if self.environment is not None:
            scored = self.make_episodes(batch)
            clock.lap("generation")
        else:
            rollout = self.make_rollout(batch)
            clock.lap("generation")
            scored = single_turn_scored(rollout, batch["gold"], batch["tools"], self.table, self.hparams.clip_score)
        clock.lap("scoring")
        return scored

    # ---- training

    def on_fit_start(self) -> None:
        """Warn when ``max_new_tokens`` cuts off more than 1% of the gold answers: those prompts
        could then never earn the exact-call reward, however good the policy."""
        datamodule = self.trainer.datamodule
        prompts = [*getattr(datamodule, "train_items", ()), *getattr(datamodule, "val_items", ())]
        lengths = [p.answer_length for p in prompts if hasattr(p, "answer_length")]
        message = truncated_answers_warning(lengths, self.hparams.max_new_tokens)
        if message is not None:
            rank_zero_warn(message)

    def _minibatches(self, batch_size: int) -> list[torch.Tensor]:
        size = self.hparams.minibatch_size or batch_size
        order = torch.arange(batch_size, device=self.device)
        return [order[i:i + size] for i in range(0, batch_size, size)]

    def _sum_over_processes(self, value: torch.Tensor | float) -> torch.Tensor:
        """``value`` summed over the data-parallel processes (as it is in one process)."""
        value = torch.as_tensor(value, dtype=torch.float32, device=self.device)
        if self.trainer.world_size == 1:
            return value
        return self.trainer.strategy.reduce(value.clone(), reduce_op="sum")

    def _divisor(self, mask: torch.Tensor, how: str) -> torch.Tensor:
        """What the loss sums of a minibatch with response ``mask`` are divided by
        (``aggregate_token_losses``): its count (tokens for a token mean, else sequences) over all
        processes / their number, so the gradients the processes average are the global mean's.
        At least 1 over all processes: a minibatch without loss tokens (MAE, void episodes) has a
        zero loss, not 0 / 0."""
        local = mask.sum() if how == "token_mean" else mask.shape[0]
        return self._sum_over_processes(local).clamp(min=1) / self.trainer.world_size

    def sequence_advantages(self, rewards: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The group-relative advantage (B,) of each completion from its sequence reward (B,);
        ``lengths`` (B,), its response tokens, weigh REINFORCE++'s whitening (over all processes)."""
        hp = self.hparams
        estimator, G = hp.advantage_estimator, hp.num_generations
        if estimator == "grpo":
            return grpo_advantages(rewards, G)
        if estimator == "dr_grpo":
            return dr_grpo_advantages(rewards, G)
        if estimator == "rloo":
            return rloo_advantages(rewards, G)
        return reinforce_pp_baseline_advantages(rewards, G, lengths, reduce=self._sum_over_processes)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        hp = self.hparams
        clock = PhaseClock(self.device)
        batch = repeat_prompts(batch, hp.num_generations)
        scored = self.scored_rollout(batch, clock)
        # mask: the generated tokens (rewards, advantages, the critic); policy_mask: those the
        # policy loss covers (all of them for single answers; episodes: less MAE's and void ones)
        rollout, mask, policy_mask = scored.rollout, scored.rollout.response_mask, scored.policy_mask
        minibatches = self._minibatches(mask.shape[0])
        kl_coef = self.kl_controller.value
        kl_in_reward = kl_coef != 0 and hp.kl_mode == "reward"
        with torch.no_grad():
            ref_logp = self.reference_logprobs(rollout) if kl_coef != 0 else None
            # One pass over one minibatch: the update's own log-probs (detached) are the rollout
            # policy's, so no separate pass (unless the rewards need them first, for the KL).
            on_policy = hp.ppo_epochs == 1 and len(minibatches) == 1 and not kl_in_reward
            old_logp = None if on_policy else self.logprobs(self.actor, rollout)
            token_rewards = (scored.rewards + kl_penalty(old_logp, ref_logp, mask, kl_coef) if kl_in_reward
                             else scored.rewards)
            if self.has_critic:
                old_values = self.values(rollout)
                advantages, returns = masked_gae_advantages(token_rewards, old_values, mask, hp.gamma, hp.lam)
                if hp.whiten_advantages:
                    advantages = masked_whiten(advantages, mask)
            else:
                sequence_rewards = void_neutral_rewards(token_rewards.sum(1), scored.void, hp.num_generations)
                advantages = self.sequence_advantages(sequence_rewards, policy_mask.sum(1))[:, None] * mask
        clock.lap("passes")

        optimizers = self.optimizers()
        actor_opt, critic_opt = optimizers if self.has_critic else (optimizers, None)
        kl_in_loss = ref_logp is not None and hp.kl_mode == "loss"
        if on_policy:  # filled by the update's forwards
            old_logp = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        stats: dict[str, list[torch.Tensor]] = {"policy_loss": [], "clip_fraction": [], "entropy": []}
        if self.has_critic:
            stats["value_loss"] = []

        def policy_loss(rows: torch.Tensor, divisor: torch.Tensor) -> torch.Tensor:
            part, part_mask = rollout.rows(rows), policy_mask[rows]
            logits = self.policy_logits(self.actor, part)
            logp = gather_logprobs(logits, part.response_ids)
            if on_policy:
                old_logp[rows] = logp.detach()
            losses, clip_fraction = clipped_policy_losses(logp, old_logp[rows], advantages[rows], part_mask,
                                                          hp.policy_clip)
            if kl_in_loss:
                losses = losses + kl_coef * k3_kl(logp, ref_logp[rows])
            stats["clip_fraction"].append(clip_fraction)
            stats["entropy"].append(masked_mean(token_entropy(logits.detach()), part_mask))
            return aggregate_token_losses(losses, part_mask, self.loss_aggregation, self.loss_budget, divisor)

        def value_loss(rows: torch.Tensor, divisor: torch.Tensor) -> torch.Tensor:
            return ppo_value_loss(self.values(rollout.rows(rows)), old_values[rows], returns[rows], mask[rows],
                                  hp.value_clip, divisor)

        for _ in range(hp.ppo_epochs):
            for rows in minibatches:
                stats["policy_loss"].append(self._accumulated_step(
                    actor_opt, rows, policy_mask, self.loss_aggregation, policy_loss, "policy", batch_idx))
                if self.has_critic:
                    stats["value_loss"].append(self._accumulated_step(
                        critic_opt, rows, mask, "token_mean", value_loss, "value", batch_idx))
        clock.lap("updates")
        self.phase_seconds = clock.seconds
        self._log_step(stats, scored, advantages, old_logp, ref_logp, kl_coef)

    def _log_step(self, stats: dict[str, list[torch.Tensor]], scored: ScoredRollout, advantages: torch.Tensor,
                  sampled_logp: torch.Tensor, ref_logp: torch.Tensor | None, kl_coef: float) -> None:
        """Log the step's losses, rewards (by category; within groups), advantages, KL (and step the
        KL controller on the KL of all processes), response length, phase time shares and, for
        episodes, their statistics and how far the rollout's log-probs are from the update's."""
        scores, categories, mask = scored.scores, scored.categories, scored.rollout.response_mask
        B, G = mask.shape[0], self.hparams.num_generations
        rows = self._sum_over_processes(B)
        token_advantages = advantages[mask.bool()].float()
        logged = {f"ppo/{k}": torch.stack(v).mean().item() for k, v in stats.items()}
        logged.update({
            "ppo/advantage_mean": token_advantages.mean().item(),
            "ppo/advantage_std": token_advantages.std(unbiased=False).item(),
            "ppo/response_length": mask.sum(1).float().mean().item(),
        })
        if ref_logp is not None:
            kl = (self._sum_over_processes(approx_kl(sampled_logp, ref_logp, mask).sum()) / rows).item()
            self.kl_controller.update(kl, n_steps=int(rows.item()))
            logged.update({"ppo/kl": kl, "ppo/kl_coef": kl_coef})
        if G > 1:
            logged.update({f"reward/{k}": v for k, v in group_reward_stats(scores, G).items()})
        logged.update({f"reward/share_{c}": s for c, s in category_shares(categories).items()})
        logged.update({f"episodes/{k}": v for k, v in scored.stats.items()})
        if scored.rollout.logprobs is not None:
            gap = (sampled_logp - scored.rollout.logprobs).abs()[mask.bool() & ~scored.void[:, None]]
            logged["episodes/rollout_logprob_gap"] = gap.max().item() if gap.numel() else 0.0
        total = sum(self.phase_seconds.values())
        logged.update({f"time/{phase}_share": seconds / total for phase, seconds in self.phase_seconds.items()})
        self.log_dict(logged, on_step=True, on_epoch=False, sync_dist=True, batch_size=B)
        self.log("reward/mean", scores.mean().item(), prog_bar=True, on_step=True, on_epoch=False, sync_dist=True,
                 batch_size=B)

    def _accumulated_step(self, optimizer, rows: torch.Tensor, mask: torch.Tensor, how: str,
                          loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], name: str,
                          batch_idx: int) -> torch.Tensor:
        """One clipped optimizer step on the minibatch ``rows``: ``loss_of(micro_rows, divisor)``
        for each micro-batch, each backpropagated at once (gradient accumulation; the divisor is
        the whole minibatch's count, so the gradients are the minibatch's). Returns the loss."""
        divisor = self._divisor(mask[rows], how)
        optimizer.zero_grad()
        total = torch.zeros((), device=mask.device)
        for micro in rows.split(self.hparams.microbatch_size or len(rows)):
            loss = loss_of(micro, divisor)
            self._backward(loss, name, batch_idx)
            total = total + loss.detach()
        self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip_val,
                            gradient_clip_algorithm="norm")
        optimizer.step()
        return total

    def _backward(self, loss: torch.Tensor, name: str, batch_idx: int) -> None:
        """Backpropagate ``loss``; a non-finite loss stops the run before it touches the weights."""
        self.check_finite(loss, f"PPO {name} loss", batch_idx,
                          "Lower the learning rates, or check the rewards and the model's dtype.")
        self.manual_backward(loss)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Greedy rollouts on held-out prompts (or greedy episodes on held-out tasks: their success
        rate and calls too): mean reward and category shares per epoch."""
        if self.environment is not None:
            scored = self.make_episodes(batch, sample=False)
            B = scored.scores.shape[0]
            self.log("val/reward", scored.scores.mean().item(), on_epoch=True, sync_dist=True, batch_size=B,
                     prog_bar=True)
            for k in ("success", "calls", "turns"):
                self.log(f"val/{k}", scored.stats[k], on_epoch=True, sync_dist=True, batch_size=B)
            return
        rollout = self.make_rollout(batch, sample=False)
        scores, categories = score_responses(rollout.texts, batch["gold"], batch["tools"], self.table)
        B = len(categories)
        self.log("val/reward", scores.mean().item(), on_epoch=True, sync_dist=True, batch_size=B, prog_bar=True)
        for c, s in category_shares(categories).items():
            self.log(f"val/share_{c}", s, on_epoch=True, sync_dist=True, batch_size=B)

    # ---- resume

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # numpy's state as plain values: checkpoints are read with torch.load(weights_only=True)
        kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
        rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
               "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gaussian)}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["irm_ppo"] = {"kl_controller": self.kl_controller.state_dict(), "rng": rng}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("irm_ppo")
        if state is None:
            raise ValueError("this checkpoint has no IRM PPO state (was it written by another module?)")
        self.kl_controller.load_state_dict(state["kl_controller"])
        # Restored just before the next batch: Lightning draws random numbers while it sets up
        # the resumed loop, which an uninterrupted run did at its own start instead.
        self._rng_to_restore = state["rng"]

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._rng_to_restore is None:
            return
        rng, self._rng_to_restore = self._rng_to_restore, None
        torch.set_rng_state(rng["torch"])
        random.setstate(rng["python"])
        kind, keys, pos, has_gauss, cached_gaussian = rng["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
