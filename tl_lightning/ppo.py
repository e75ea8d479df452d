"""IRMPPOModule: reinforcement learning against the IRM rule reward (docs/design.md, "IRM:
reinforcement learning"): PPO with a critic, as the authors run it with DeepSpeed-Chat, and the
critic-free group-relative estimators (GRPO, Dr. GRPO, RLOO, REINFORCE++-baseline), in one module.

One training step = one RL iteration on a batch of ``stage="rl"`` prompts (``stage="env"`` tasks):

1. rollouts (``make_rollout``, ``generation.generate``): each prompt ``num_generations`` times in
   consecutive rows (a group, ``rollouts.repeat_prompts``), greedy or sampled with per-row seeds,
   each row stopping at eos or end-of-turn text only, never after the first complete call: a
   hedging second call must reach the reward, which scores it as redundant;
2. rewards: ``rollouts.single_turn_scored`` (``reward.classify_call`` against the gold call sets),
   or with an ``environment`` an episode per row (``episodes.py``), scored per call turn and by
   outcome; the categories are logged;
3. the no-grad passes the estimator needs: reference log-probs (only with a non-zero KL
   coefficient; each group's prompt runs once), old log-probs (unless the update is one pass over
   one minibatch: then they are the update's own, detached), critic values (``gae`` only); then the
   advantages over the whole rollout batch, before any minibatch (``advantages.py``);
4. ``ppo_epochs`` passes over minibatches: a clipped-ratio policy update each (and a critic update
   for ``gae``), in micro-batches (gradient accumulation), with gradient clipping (manual
   optimization).

The KL to the reference (``kl_mode``) is a per-token reward penalty (the paper's; the group
estimators see the summed per-token rewards) or a k3 term in each token's loss (GRPO's); its
coefficient is fixed or adaptive (``kl_control.py``). Sampled rollouts take every log-prob from
``logits / temperature``.

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
critic and value head) generation is synchronised across ranks; multi-turn episodes are not
supported there yet (every rank would have to run the same number of turns). Under DDP use
``strategy="ddp_find_unused_parameters_true"``: each step makes many backward passes, each through
a part of the parameters. Each rank generates the groups of its own prompts, losses are divided by
global counts, REINFORCE++ whitens over all ranks and sampling seeds depend on the prompt, not the
rank: N processes end with the weights of one process holding the global batch.

Resume. Checkpoints hold the actor, the critic (``gae``), the optimizers (Lightning), the KL
controller and the torch / python / numpy RNG states (here), and the data position (the
DataModule's resumable loader), so a killed run resumed from ``last`` repeats an uninterrupted
run's later losses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn

from tl_lightning.actor_critic import CRITIC_LAYOUTS, ActorCriticModule
from tl_lightning.advantages import checked_estimator, rollout_advantages
from tl_lightning.data.datamodule import truncated_answers_warning
from tl_lightning.environments import Environment
from tl_lightning.episodes import EpisodeOptions, episode_batch, pad_id_of, run_episodes
from tl_lightning.export import export_pkt_checkpoint
from tl_lightning.faults import restore_rng_state, rng_state
from tl_lightning.generation import Rollout, generate, sampling_seed
from tl_lightning.kl_control import kl_controller
from tl_lightning.losses import (
    LOSS_AGGREGATIONS,
    aggregate_token_losses,
    approx_kl,
    clipped_policy_losses,
    gather_logprobs,
    k3_kl,
    kl_penalty,
    masked_mean,
    ppo_value_loss,
    token_entropy,
)
from tl_lightning.modeling import SMOLLM2, LoraOptions, lora_options
from tl_lightning.reward import RewardTable
from tl_lightning.rollouts import (
    ROLLOUT_STOP,
    ScoredRollout,
    category_shares,
    repeat_prompts,
    rollout_metrics,
    single_turn_scored,
)

KL_MODES = ("reward", "loss")
PHASES = ("generation", "scoring", "passes", "updates")


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
# the module


class IRMPPOModule(ActorCriticModule):
    """RL with the IRM reward on ``ToolUseDataModule(stage="rl")`` prompts: PPO with a critic or a
    group-relative estimator (module docstring; docs/design.md, "IRM: reinforcement learning").

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
            (docs/design.md, "IRM: reinforcement learning").
        ppo_epochs, minibatch_size: passes over each rollout batch and rows per optimizer step
            (None = the whole batch; rows are completions: a batch has ``batch_size * num_generations``).
        microbatch_size: rows per forward / backward within a minibatch (gradient accumulation, the
            same gradients; None = the minibatch): bounds activation memory without more optimizer
            steps, so one epoch over one minibatch still needs no old-log-prob pass.
        max_new_tokens, do_sample, temperature, top_p: generation (greedy by default);
            ``max_new_tokens`` is also Dr. GRPO's loss constant.
        reward_table: category -> reward overrides of ``RewardTable`` (docs/design.md, "The IRM reward").
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
        estimator = checked_estimator(advantage_estimator, num_generations, do_sample, whiten_advantages)
        has_critic = estimator.critic
        if loss_aggregation is not None and loss_aggregation not in LOSS_AGGREGATIONS:
            raise ValueError(f"loss_aggregation must be one of {LOSS_AGGREGATIONS} or None, got {loss_aggregation!r}")
        if kl_mode not in KL_MODES:
            raise ValueError(f"kl_mode must be one of {KL_MODES}, got {kl_mode!r}")
        if has_critic and critic_layout not in CRITIC_LAYOUTS:
            raise ValueError(f"critic_layout must be one of {CRITIC_LAYOUTS}, got {critic_layout!r}")
        if has_critic and critic_layout == "shared_lora" and lora is None:
            raise ValueError("critic_layout='shared_lora' puts the critic's adapter over the actor's frozen base: "
                             "it needs lora options (or use critic_layout='copy' for a fully trained actor)")
        if quantization is not None and lora is None:
            raise ValueError(f"quantization={quantization!r} freezes the weights: the actor needs lora options")
        if has_critic and quantization is not None and critic_layout == "copy" and critic_lora is None:
            raise ValueError("a quantized critic copy cannot be trained fully: give critic_lora")
        if ppo_epochs < 1 or max_new_tokens < 1 or any(n is not None and n < 1
                                                         for n in (minibatch_size, microbatch_size)):
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
        self.estimator = estimator
        self.has_critic = has_critic
        self.loss_aggregation = loss_aggregation or self.estimator.loss_aggregation
        self.lora = lora
        self.critic_lora = critic_lora if critic_lora is not None or critic_layout == "copy" else lora
        self.kl_controller = kl_controller(kl_coef, kl_target, kl_horizon)
        self.automatic_optimization = False
        self.phase_seconds: dict[str, float] = {}  # the last training step's, by phase (PHASES)
        self._rng_to_restore: dict[str, Any] | None = None

    def model_source(self) -> str:
        """The PKT model: ``model_name``, or the HF folder exported once from ``init_checkpoint``
        (which records the checkpoint's prompt format)."""
        if self.hparams.init_checkpoint is None:
            return self.hparams.model_name
        return str(export_pkt_checkpoint(self.hparams.init_checkpoint))

    # ---- rollouts

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

    def scored_rollout(self, batch: dict[str, Any], sample: bool | None = None,
                       clock: PhaseClock | None = None) -> ScoredRollout:
        """The rollouts and rewards of a batch: an answer per row scored by the IRM reward, or with
        an environment an episode per row (its tool calls executed between the turns); sampled per
        ``do_sample`` unless ``sample`` says otherwise. ``clock`` times generation and scoring."""
        clock = clock or PhaseClock(self.device)
        if self.environment is not None:
            scored = self.make_episodes(batch, sample)
            clock.lap("generation")
        else:
            rollout = self.make_rollout(batch, sample)
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

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        hp = self.hparams
        clock = PhaseClock(self.device)
        batch = repeat_prompts(batch, hp.num_generations)
        scored = self.scored_rollout(batch, clock=clock)
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
            old_values = self.values(rollout) if self.has_critic else None
            advantages, returns = rollout_advantages(
                self.estimator, token_rewards, mask, values=old_values, gamma=hp.gamma, lam=hp.lam,
                whiten=hp.whiten_advantages, void=scored.void, group_size=hp.num_generations,
                policy_lengths=policy_mask.sum(1), reduce=self._sum_over_processes)
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
        mask = scored.rollout.response_mask
        B = mask.shape[0]
        logged = {f"ppo/{k}": torch.stack(v).mean().item() for k, v in stats.items()}
        if ref_logp is not None:
            rows = self._sum_over_processes(B)
            kl = (self._sum_over_processes(approx_kl(sampled_logp, ref_logp, mask).sum()) / rows).item()
            self.kl_controller.update(kl, n_steps=int(rows.item()))
            logged.update({"ppo/kl": kl, "ppo/kl_coef": kl_coef})
        logged.update(rollout_metrics(scored, advantages, sampled_logp, self.hparams.num_generations))
        total = sum(self.phase_seconds.values())
        logged.update({f"time/{phase}_share": seconds / total for phase, seconds in self.phase_seconds.items()})
        self.log_dict(logged, on_step=True, on_epoch=False, sync_dist=True, batch_size=B)
        self.log("reward/mean", scored.scores.mean().item(), prog_bar=True, on_step=True, on_epoch=False,
                 sync_dist=True, batch_size=B)

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
        scored = self.scored_rollout(batch, sample=False)
        B = scored.scores.shape[0]
        self.log("val/reward", scored.scores.mean().item(), on_epoch=True, sync_dist=True, batch_size=B, prog_bar=True)
        if self.environment is not None:
            for k in ("success", "calls", "turns"):
                self.log(f"val/{k}", scored.stats[k], on_epoch=True, sync_dist=True, batch_size=B)
        else:
            for c, share in category_shares(scored.categories).items():
                self.log(f"val/share_{c}", share, on_epoch=True, sync_dist=True, batch_size=B)

    # ---- resume

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["irm_ppo"] = {"kl_controller": self.kl_controller.state_dict(), "rng": rng_state()}

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
        restore_rng_state(self._rng_to_restore)
        self._rng_to_restore = None
