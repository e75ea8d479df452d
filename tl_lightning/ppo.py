"""IRMPPOModule: PPO against the IRM rule reward (DESIGN §2), as the authors run it with
DeepSpeed-Chat, in Lightning.

One training step = one PPO iteration on a batch of ``stage="rl"`` prompts:

1. rollouts: batched ``generate`` with the KV cache (greedy by default), each row stopping at
   eos or at an end-of-turn marker (``</s>``, ``<|im_end|>``, ...);
2. the responses are decoded and scored with ``irm_reward`` (its category is logged);
3. actor, reference and critic forward passes give old log-probs, reference log-probs (both from
   ``logits / temperature`` when sampling, like the update's new log-probs), values;
   per-token rewards (KL penalty + clipped score on the last token) and GAE advantages follow;
4. ``ppo_epochs`` passes over minibatches, each an actor update and a critic update, with
   gradient clipping (manual optimization: two optimizers).

Models. The actor starts from the PKT model: a model name / HF folder (e.g. written by
``export.py``), or a ``PKTModule`` checkpoint (``init_checkpoint``). With LoRA the reference is
the same network with the adapter disabled, so no second copy is held; a fully trained actor
needs a frozen copy. The critic is a scalar ``ValueHead`` on either its own LoRA adapter over the
actor's frozen base (``critic_layout="shared_lora"``, peft multi-adapter) or a separate copy of
the model (``"copy"``: full, or with ``critic_lora``).

Counting. ``trainer.global_step`` counts optimizer steps, as always with manual optimization:
``2 * ppo_epochs * minibatches`` per rollout batch. Bound a run with ``max_epochs`` /
``limit_train_batches`` (rollout batches), or ``max_steps`` in those units.

Processes. Under FSDP2 (``ModelParallelStrategy``; ``configure_model`` shards actor, reference,
critic and value head) generation is synchronised across ranks. Under DDP use
``strategy="ddp_find_unused_parameters_true"``: each step makes many backward passes, each
through a part of the parameters. Both give the same weights (tests/scripts/ppo_fsdp.py).

Resume. Checkpoints hold the actor, critic, both optimizers (Lightning), the KL controller and the
torch / python / numpy RNG states (here), and the data position (the DataModule's resumable
loader), so a killed run resumed from ``last`` repeats an uninterrupted run's later losses.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from tl_lightning.calls import END_MARKERS
from tl_lightning.losses import (
    approx_kl,
    gae_advantages,
    gather_logprobs,
    kl_penalized_rewards,
    masked_mean,
    masked_whiten,
    ppo_policy_loss,
    ppo_value_loss,
    tempered_logits,
    token_entropy,
)
from tl_lightning.modeling import SMOLLM2, LoraOptions, ValueHead, load_model, load_tokenizer
from tl_lightning.pkt import shard_model
from tl_lightning.reward import CATEGORIES, RewardTable, classify_call

CRITIC_LAYOUTS = ("shared_lora", "copy")
ACTOR_ADAPTER = "default"  # peft's name for the adapter get_peft_model creates
CRITIC_ADAPTER = "critic"


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


# ---------------------------------------------------------------------------------------------
# rollouts


class StopAtEndOfTurn:
    """A ``generate`` stopping criterion: a row is done at an eos id or once its response text
    holds an end-of-turn marker (``</s>`` is several tokens in most vocabularies). It records each
    row's response length (stop token included), so the response mask agrees with generation by
    construction even where pad == eos."""

    def __init__(self, tokenizer, prompt_length: int, batch_size: int, stop_ids: Sequence[int],
                 markers: Sequence[str] = END_MARKERS) -> None:
        self.tokenizer, self.prompt_length = tokenizer, prompt_length
        self.stop_ids, self.markers = set(stop_ids), tuple(markers)
        # a marker of n characters spans at most n tokens; one more for a token that straddles it
        self.window = max(len(m) for m in self.markers) + 1
        self.lengths: list[int | None] = [None] * batch_size

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_length
        for row in range(input_ids.shape[0]):
            if self.lengths[row] is not None:
                continue
            tail = input_ids[row, -min(generated, self.window):].tolist()
            if tail[-1] in self.stop_ids or any(m in self.tokenizer.decode(tail) for m in self.markers):
                self.lengths[row] = generated
        return torch.tensor([n is not None for n in self.lengths], device=input_ids.device)


def cut_at_end_marker(text: str, markers: Sequence[str] = END_MARKERS) -> str:
    """The response text before its first end-of-turn marker, stripped."""
    cut = min((i for i in (text.find(m) for m in markers) if i >= 0), default=len(text))
    return text[:cut].strip()


def stop_token_ids(tokenizer, model) -> list[int]:
    """The eos ids of the tokenizer and of the model's generation config."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    return sorted(i for i in ids if i is not None)


@dataclass
class Rollout:
    """Prompts with their generated responses.

    ``sequences`` (B, P + R): the LEFT-padded prompt, then the response, right-padded after its
    stop; ``attention_mask`` / ``position_ids`` (B, P + R) for forward passes that match the
    generation; ``response_mask`` (B, R): 1 on the response up to and including its stop token;
    ``texts``: the decoded responses cut at the end-of-turn marker.
    """

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_mask: torch.Tensor
    texts: list[str]
    prompt_length: int

    @property
    def response_ids(self) -> torch.Tensor:
        """(B, R) generated token ids."""
        return self.sequences[:, self.prompt_length:]

    def rows(self, index: torch.Tensor) -> "Rollout":
        """The rollouts of the rows in ``index`` (1-D LongTensor)."""
        return Rollout(self.sequences[index], self.attention_mask[index], self.position_ids[index],
                       self.response_mask[index], [self.texts[i] for i in index.tolist()], self.prompt_length)


@torch.no_grad()
def generate_rollout(model, tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                     max_new_tokens: int, do_sample: bool = False, temperature: float = 0.7, top_p: float = 1.0,
                     synced_gpus: bool = False) -> Rollout:
    """Batched generation from LEFT-padded prompts input_ids / attention_mask (B, P).

    ``synced_gpus`` keeps every process stepping until all are done: FSDP needs all ranks in each
    forward (their parameter all-gathers), however early one rank's rows stop.
    """
    from transformers import GenerationConfig, StoppingCriteriaList

    prompt_length = input_ids.shape[1]
    stop_ids = stop_token_ids(tokenizer, model)
    stopper = StopAtEndOfTurn(tokenizer, prompt_length, input_ids.shape[0], stop_ids)
    sampling = dict(temperature=temperature, top_p=top_p) if do_sample else {}
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=do_sample, use_cache=True,
                              eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id, **sampling)
    sequences = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                               stopping_criteria=StoppingCriteriaList([stopper]), synced_gpus=synced_gpus)
    response = sequences[:, prompt_length:]
    R = response.shape[1]
    lengths = torch.tensor([R if n is None else n for n in stopper.lengths], device=sequences.device)
    response_mask = (torch.arange(R, device=sequences.device)[None, :] < lengths[:, None]).long()
    full_mask = torch.cat([attention_mask.long(), response_mask], dim=1)
    # the positions generate used: count of attended tokens before each one (left padding skipped)
    position_ids = (full_mask.cumsum(1) - 1).clamp(min=0)
    texts = [cut_at_end_marker(tokenizer.decode(response[b, :n].tolist())) for b, n in enumerate(lengths.tolist())]
    return Rollout(sequences, full_mask, position_ids, response_mask, texts, prompt_length)


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
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rewards, categories = [], []
    try:
        for batch in dataloader:
            rollout = generate_rollout(model, tokenizer, batch["input_ids"].to(device),
                                       batch["attention_mask"].to(device), max_new_tokens=max_new_tokens)
            batch_rewards, batch_categories = score_responses(rollout.texts, batch["gold"], batch["tools"], table)
            rewards.append(batch_rewards)
            categories += batch_categories
    finally:
        model.train(was_training)
    if not categories:
        raise ValueError("evaluate_rewards got an empty dataloader")
    return {"prompts": len(categories), "mean_reward": torch.cat(rewards).mean().item(),
            "shares": category_shares(categories)}


# ---------------------------------------------------------------------------------------------
# model plumbing


def last_hidden_state(model: nn.Module, **inputs: Any) -> torch.Tensor:
    """(B, T, H) final hidden states of a (peft-wrapped) causal LM, captured from its decoder.

    The call goes through the model itself (so FSDP's root hooks run), with logits for one
    position only: the vocabulary projection of the whole sequence is never computed.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, args: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    handle = base.get_decoder().register_forward_hook(keep)
    try:
        model(**inputs, logits_to_keep=1, use_cache=False)
    finally:
        handle.remove()
    return captured[-1]


def disable_dropout(model: nn.Module) -> None:
    """Dropout off everywhere (LoRA's included): PPO's ratio compares the same network's
    log-probs in rollout and update, which dropout noise would blur.

    Switched off on the modules themselves: ``nn.Dropout`` layers (LoRA's too), and every float
    attribute named ``*dropout*`` (HF attention modules copy ``config.attention_dropout`` into
    one when they are built, so editing the config afterwards changes nothing). Call it again
    after adding modules (an adapter)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        for name, value in list(vars(module).items()):
            if "dropout" in name and isinstance(value, float):
                setattr(module, name, 0.0)


def _lora_from(value: LoraOptions | dict | None) -> LoraOptions | None:
    return LoraOptions(**value) if isinstance(value, dict) else value


# ---------------------------------------------------------------------------------------------
# the module


class IRMPPOModule(pl.LightningModule):
    """PPO with the IRM reward on ``ToolUseDataModule(stage="rl")`` prompts (DESIGN §2).

    Args:
        model_name: the PKT model: ``"smollm2-135m-instruct"``, ``"tiny-llama"``, an HF id or a
            folder (e.g. one written by ``export.py``).
        init_checkpoint: a ``PKTModule`` checkpoint (``.ckpt``) to start from instead; its model
            (LoRA merged) is written once to an HF folder beside it and loaded from there.
        dtype, gradient_checkpointing, quantization, seed: as in ``modeling.load_model``.
        lora: LoRA for the actor; None trains the actor fully (and holds a frozen reference copy).
        critic_layout: ``"shared_lora"`` (a second adapter over the actor's frozen base; needs
            ``lora``) or ``"copy"`` (a separate model).
        critic_lora: the critic's adapter; for ``shared_lora`` None means ``lora``'s settings,
            for ``copy`` None means a fully trained copy.
        actor_lr, critic_lr, weight_decay, betas, gradient_clip_val: AdamW for each and the
            gradient norm clip of every update.
        kl_coef: the KL coefficient; with ``kl_target`` it is the start of adaptive control
            (``kl_horizon``), else fixed.
        clip_score, gamma, lam, policy_clip, value_clip, whiten_advantages: PPO (DESIGN §2).
        ppo_epochs, minibatch_size: passes over each rollout batch and rows per update (None =
            the whole batch).
        max_new_tokens, do_sample, temperature, top_p: generation (greedy by default).
        reward_table: category -> reward overrides of ``RewardTable`` (DESIGN §2 values).
    """

    def __init__(
        self,
        model_name: str = SMOLLM2,
        init_checkpoint: str | None = None,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
        lora: LoraOptions | None = None,
        quantization: str | None = None,
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
        clip_score: float = 5.0,
        gamma: float = 1.0,
        lam: float = 0.95,
        policy_clip: float = 0.2,
        value_clip: float = 0.2,
        whiten_advantages: bool = False,
        ppo_epochs: int = 3,
        minibatch_size: int | None = None,
        max_new_tokens: int = 512,
        do_sample: bool = False,
        temperature: float = 0.7,
        top_p: float = 1.0,
        reward_table: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        lora, critic_lora = _lora_from(lora), _lora_from(critic_lora)
        if critic_layout not in CRITIC_LAYOUTS:
            raise ValueError(f"critic_layout must be one of {CRITIC_LAYOUTS}, got {critic_layout!r}")
        if critic_layout == "shared_lora" and lora is None:
            raise ValueError("critic_layout='shared_lora' puts the critic's adapter over the actor's frozen base: "
                             "it needs lora options (or use critic_layout='copy' for a fully trained actor)")
        if quantization is not None and lora is None:
            raise ValueError(f"quantization={quantization!r} freezes the weights: the actor needs lora options")
        if quantization is not None and critic_layout == "copy" and critic_lora is None:
            raise ValueError("a quantized critic copy cannot be trained fully: give critic_lora")
        if ppo_epochs < 1 or max_new_tokens < 1 or (minibatch_size is not None and minibatch_size < 1):
            raise ValueError("ppo_epochs, max_new_tokens and minibatch_size must be >= 1")
        self.table = RewardTable(**(reward_table or {}))
        # Dicts, not dataclasses, in hparams: checkpoints are read with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["lora", "critic_lora"])
        self.hparams["lora"] = None if lora is None else asdict(lora)
        self.hparams["critic_lora"] = None if critic_lora is None else asdict(critic_lora)
        self.lora = lora
        self.critic_lora = critic_lora if critic_lora is not None or critic_layout == "copy" else lora
        self.kl_controller = (AdaptiveKLController(kl_coef, kl_target, kl_horizon) if kl_target is not None
                              else FixedKLController(kl_coef))
        self.automatic_optimization = False
        self.actor: nn.Module | None = None
        self.reference: nn.Module | None = None  # only for a fully trained actor
        self.critic: nn.Module | None = None  # only for critic_layout="copy"
        self.value_head: ValueHead | None = None
        self._tokenizer = None
        self._rng_to_restore: dict[str, Any] | None = None

    # ---- models

    @property
    def model(self) -> nn.Module | None:
        """The policy being trained (the actor), under the name ``export.HFExport`` reads."""
        return self.actor

    @property
    def tokenizer(self):
        """The model's tokenizer (loaded on first use; the DataModule's ``connect`` takes it)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self._model_source())
        return self._tokenizer

    def _model_source(self) -> str:
        if self.hparams.init_checkpoint is None:
            return self.hparams.model_name
        return str(export_pkt_checkpoint(self.hparams.init_checkpoint))

    def _load(self, lora: LoraOptions | None) -> nn.Module:
        hp = self.hparams
        model = load_model(self._model_source(), dtype=hp.dtype, gradient_checkpointing=hp.gradient_checkpointing,
                           lora=lora, quantization=hp.quantization, seed=hp.seed)
        disable_dropout(model)
        return model

    def configure_model(self) -> None:
        """Load actor, critic and (for a full actor) the reference once; shard them with FSDP2
        when the strategy provides a device mesh."""
        if self.actor is not None:
            return
        hp = self.hparams
        self.actor = self._load(self.lora)
        if self.lora is None:
            self.reference = self._load(None).requires_grad_(False).eval()
        if hp.critic_layout == "shared_lora":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(hp.seed + 1)
                self.actor.add_adapter(CRITIC_ADAPTER, self.critic_lora.peft_config())
            disable_dropout(self.actor)
            self._use_adapter(ACTOR_ADAPTER)
            body = self.actor
        else:
            self.critic = self._load(self.critic_lora)
            body = self.critic
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hp.seed + 2)
            self.value_head = ValueHead(body.config.hidden_size)
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
        if self.hparams.critic_layout != "shared_lora":
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
        if self.hparams.critic_layout == "shared_lora":
            return [p for n, p in self.actor.named_parameters() if f".{ACTOR_ADAPTER}." in n and p.requires_grad]
        return [p for p in self.actor.parameters() if p.requires_grad]

    def critic_parameters(self) -> list[nn.Parameter]:
        if self.hparams.critic_layout == "shared_lora":
            body = [p for n, p in self.actor.named_parameters() if f".{CRITIC_ADAPTER}." in n]
        else:
            body = [p for p in self.critic.parameters() if p.requires_grad]
        return body + list(self.value_head.parameters())

    def configure_optimizers(self):
        hp = self.hparams
        actor_opt = torch.optim.AdamW(self.actor_parameters(), lr=hp.actor_lr, betas=tuple(hp.betas),
                                      weight_decay=hp.weight_decay)
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
        divided by ``rollout_temperature``: every log-prob PPO takes from them (old, new, reference,
        hence the KL) and the entropy are those of the distribution the tokens were drawn from."""
        R = rollout.response_mask.shape[1]
        out = model(**self._forward_inputs(rollout), logits_to_keep=R + 1, use_cache=False)
        return tempered_logits(out.logits[:, :-1], self.rollout_temperature)

    def values(self, rollout: Rollout) -> torch.Tensor:
        """(B, R) critic values of the states before each response token."""
        with self._critic_adapter():
            hidden = last_hidden_state(self.actor if self.critic is None else self.critic,
                                       **self._forward_inputs(rollout))
        P = rollout.prompt_length
        return self.value_head(hidden[:, P - 1:-1])

    def _synced_generation(self) -> bool:
        return self.device_mesh is not None and self.trainer.world_size > 1

    @torch.no_grad()
    def make_rollout(self, batch: dict[str, Any]) -> Rollout:
        """Generate responses to a batch of prompts with the actor in eval mode (KV cache on,
        gradient checkpointing off)."""
        hp = self.hparams
        was_training = self.actor.training
        self.actor.eval()
        try:
            return generate_rollout(self.actor, self.tokenizer, batch["input_ids"], batch["attention_mask"],
                                    max_new_tokens=hp.max_new_tokens, do_sample=hp.do_sample,
                                    temperature=hp.temperature, top_p=hp.top_p,
                                    synced_gpus=self._synced_generation())
        finally:
            self.actor.train(was_training)

    # ---- training

    def transfer_batch_to_device(self, batch: dict[str, Any], device: torch.device, dataloader_idx: int) -> dict:
        """Move the tensors only: ``gold`` and ``tools`` hold frozen dataclasses, which Lightning's
        generic collection mover refuses."""
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _minibatches(self, batch_size: int) -> list[torch.Tensor]:
        size = self.hparams.minibatch_size or batch_size
        order = torch.arange(batch_size, device=self.device)
        return [order[i:i + size] for i in range(0, batch_size, size)]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        hp = self.hparams
        started = time.perf_counter()
        rollout = self.make_rollout(batch)
        generation_seconds = time.perf_counter() - started
        scores, categories = score_responses(rollout.texts, batch["gold"], batch["tools"], self.table)
        scores = scores.to(self.device)
        mask = rollout.response_mask

        with torch.no_grad():
            old_logp = gather_logprobs(self.policy_logits(self.actor, rollout), rollout.response_ids)
            with self._reference_context():
                reference = self.reference if self.reference is not None else self.actor
                ref_logp = gather_logprobs(self.policy_logits(reference, rollout), rollout.response_ids)
            old_values = self.values(rollout)
            kl_coef = self.kl_controller.value
            rewards = kl_penalized_rewards(old_logp, ref_logp, scores, mask, kl_coef, hp.clip_score)
            advantages, returns = gae_advantages(rewards, old_values, mask, hp.gamma, hp.lam)
            if hp.whiten_advantages:
                advantages = masked_whiten(advantages, mask)

        actor_opt, critic_opt = self.optimizers()
        stats: dict[str, list[torch.Tensor]] = {"policy_loss": [], "value_loss": [], "clip_fraction": [],
                                                 "entropy": []}
        for _ in range(hp.ppo_epochs):
            for rows in self._minibatches(mask.shape[0]):
                part, part_mask = rollout.rows(rows), mask[rows]
                logits = self.policy_logits(self.actor, part)
                logp = gather_logprobs(logits, part.response_ids)
                policy_loss, clip_fraction = ppo_policy_loss(logp, old_logp[rows], advantages[rows], part_mask,
                                                             hp.policy_clip)
                self._update(actor_opt, policy_loss, "policy", batch_idx)
                value_loss = ppo_value_loss(self.values(part), old_values[rows], returns[rows], part_mask,
                                            hp.value_clip)
                self._update(critic_opt, value_loss, "value", batch_idx)
                stats["policy_loss"].append(policy_loss.detach())
                stats["value_loss"].append(value_loss.detach())
                stats["clip_fraction"].append(clip_fraction)
                stats["entropy"].append(masked_mean(token_entropy(logits.detach()), part_mask))

        kl = approx_kl(old_logp, ref_logp, mask).mean()
        self.kl_controller.update(kl.item(), n_steps=mask.shape[0])
        B = mask.shape[0]
        logged = {f"ppo/{k}": torch.stack(v).mean().item() for k, v in stats.items()}
        logged.update({
            "ppo/kl": kl.item(),
            "ppo/kl_coef": kl_coef,
            "ppo/response_length": mask.sum(1).float().mean().item(),
            "time/generation_share": generation_seconds / (time.perf_counter() - started),
        })
        logged.update({f"reward/share_{c}": s for c, s in category_shares(categories).items()})
        self.log_dict(logged, on_step=True, on_epoch=False, sync_dist=True, batch_size=B)
        self.log("reward/mean", scores.mean().item(), prog_bar=True, on_step=True, on_epoch=False, sync_dist=True,
                 batch_size=B)

    def _update(self, optimizer, loss: torch.Tensor, name: str, batch_idx: int) -> None:
        """One clipped optimizer step on ``loss``; a non-finite loss stops the run before it
        touches the weights."""
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"PPO {name} loss is {loss.item()} at batch index {batch_idx} (epoch {self.current_epoch}, "
                f"global step {self.global_step}); stopping before the optimizer step. Lower the learning "
                "rates, or check the rewards and the model's dtype.")
        optimizer.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip_val,
                            gradient_clip_algorithm="norm")
        optimizer.step()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Greedy rollouts on held-out prompts: mean reward and category shares per epoch."""
        rollout = self.make_rollout(batch)
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


# ---------------------------------------------------------------------------------------------
# starting from a PKTModule checkpoint


def export_pkt_checkpoint(checkpoint: str | Path) -> Path:
    """An HF folder with the model of a ``PKTModule`` checkpoint (LoRA merged) and its tokenizer,
    written once beside the checkpoint (``<name>.hf/``) and reused; concurrent processes (ranks)
    never see it half-written."""
    from tl_lightning.export import export_checkpoint
    from tl_lightning.modeling import write_folder_atomically

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"init_checkpoint {checkpoint} does not exist")
    return write_folder_atomically(checkpoint.with_name(checkpoint.name + ".hf"),
                                    lambda folder: export_checkpoint(checkpoint, folder))
