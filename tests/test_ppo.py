"""IRMPPOModule (tl_lightning/ppo.py, with actor_critic.py): options, the custom reward table,
rollouts on tiny-llama, a PPO step for each model layout, a step per group-relative estimator with its forward passes counted,
the QLoRA generate-then-train trap, starting from a PKTModule checkpoint, multi-turn episodes in
an environment with every estimator (MAE in RL on and off), the tiny recipes through the CLI, and
(as subprocess scripts) resume after SIGKILL, single-turn and multi-turn, and FSDP2 on 2 gloo
processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from tl_lightning import ppo
from tl_lightning.kl_control import FixedKLController
from tl_lightning.losses import gather_logprobs
from tl_lightning.modeling import TINY_LLAMA, LoraOptions, load_model
from tl_lightning.ppo import IRMPPOModule
from tl_lightning.reward import CATEGORIES
from tl_lightning.rollouts import evaluate_rewards, repeat_prompts

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "tests" / "scripts"
sys.path.insert(0, str(SCRIPTS))
from scripted_policy import add, failed_call_then_fix, scripted  # noqa: E402
from varied_rewards import varied_episode_rewards, varied_rewards  # noqa: E402
LORA = LoraOptions(r=4, alpha=8, dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rl_batches():
    """Two real ``stage="rl"`` batches of 2 synthetic prompts, tokenized for tiny-llama."""
    from tl_lightning.data.datamodule import ToolUseDataModule
    from tl_lightning.modeling import load_tokenizer

    data = ToolUseDataModule(tokenizer=TINY_LLAMA, stage="rl", batch_size=2, synthetic_size=12, max_length=2048)
    data.connect(load_tokenizer(TINY_LLAMA))
    data.setup("fit")
    return list(data.train_dataloader())[:2]


def loader(batches: list[dict]) -> DataLoader:
    return DataLoader(batches, batch_size=None, collate_fn=lambda b: b)


def tiny_module(**kwargs) -> IRMPPOModule:
    defaults = dict(model_name=TINY_LLAMA, lora=LORA, max_new_tokens=5, ppo_epochs=1, actor_lr=1e-2, critic_lr=1e-2)
    return IRMPPOModule(**{**defaults, **kwargs})


def run_script(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- small parts


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="needs lora"):
        IRMPPOModule(model_name=TINY_LLAMA, critic_layout="shared_lora")
    with pytest.raises(ValueError, match="critic_layout"):
        IRMPPOModule(model_name=TINY_LLAMA, lora=LORA, critic_layout="twin")
    with pytest.raises(ValueError, match="lora options"):
        IRMPPOModule(model_name=TINY_LLAMA, quantization="4bit", critic_layout="copy")
    with pytest.raises(ValueError, match="critic_lora"):
        IRMPPOModule(model_name=TINY_LLAMA, lora=LORA, quantization="4bit", critic_layout="copy")
    with pytest.raises(TypeError):
        IRMPPOModule(model_name=TINY_LLAMA, lora=LORA, reward_table={"perfect": 3.0})


def test_group_estimator_options_are_clear_errors():
    with pytest.raises(ValueError, match="advantage_estimator"):
        IRMPPOModule(model_name=TINY_LLAMA, lora=LORA, advantage_estimator="ppo2")
    with pytest.raises(ValueError, match="needs do_sample=True"):
        IRMPPOModule(model_name=TINY_LLAMA, lora=LORA, num_generations=4)
    with pytest.raises(ValueError, match="num_generations >= 2"):
        IRMPPOModule(model_name=TINY_LLAMA, lora=LORA, advantage_estimator="grpo", do_sample=True)
    group = dict(model_name=TINY_LLAMA, lora=LORA, advantage_estimator="grpo", num_generations=2, do_sample=True)
    with pytest.raises(ValueError, match="whiten_advantages"):
        IRMPPOModule(**group, whiten_advantages=True)
    with pytest.raises(ValueError, match="kl_mode"):
        IRMPPOModule(**group, kl_mode="both")
    with pytest.raises(ValueError, match="loss_aggregation"):
        IRMPPOModule(**group, loss_aggregation="median")
    with pytest.raises(ValueError, match="microbatch_size"):
        IRMPPOModule(**group, microbatch_size=0)
    # no critic, so no critic options to satisfy: a fully trained actor with the default layout
    dr = IRMPPOModule(model_name=TINY_LLAMA, advantage_estimator="dr_grpo", num_generations=2, do_sample=True)
    assert not dr.has_critic and dr.loss_aggregation == "sum_over_budget"
    assert IRMPPOModule(**group, loss_aggregation="token_mean").loss_aggregation == "token_mean"


def test_construction_is_cheap_and_hparams_are_plain():
    module = IRMPPOModule(model_name="codellama/CodeLlama-7b-hf", lora=LORA)
    assert module.actor is None and module._tokenizer is None
    assert module.hparams.lora["r"] == 4 and module.hparams.critic_lora is None
    assert module.critic_lora == LORA  # shared_lora: the critic's adapter defaults to the actor's settings


@pytest.mark.parametrize("max_new_tokens", [4, 512])
def test_fit_start_warns_when_gold_answers_do_not_fit(max_new_tokens):
    """A budget shorter than most gold answers caps the reward even a perfect policy gets."""
    from tl_lightning.data.datamodule import ToolUseDataModule

    data = ToolUseDataModule(tokenizer=TINY_LLAMA, stage="rl", data_path="synthetic:classic?n=8", val_fraction=0.0)
    trainer = pl.Trainer(accelerator="cpu", max_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(tiny_module(max_new_tokens=max_new_tokens), datamodule=data)
    truncated = [str(w.message) for w in caught if "gold answers" in str(w.message)]
    if max_new_tokens == 4:
        assert len(truncated) == 1 and truncated[0].startswith("8 of 8 gold answers")
        assert "max_new_tokens=4 (99th percentile:" in truncated[0]
    else:
        assert truncated == []


def test_a_non_finite_loss_stops_before_the_optimizer_step():
    module = IRMPPOModule(model_name=TINY_LLAMA, lora=LORA)
    with pytest.raises(FloatingPointError, match="PPO value loss is nan at global step 0, batch index 3"):
        module._backward(torch.tensor(float("nan")), "value", 3)  # before any backward or step


def test_paper_recipe_has_the_authors_ppo_settings():
    import yaml

    raw = yaml.safe_load((REPO / "configs" / "irm.yaml").read_text())
    module = IRMPPOModule(**raw["model"]["init_args"])
    hp = module.hparams
    assert (hp.kl_coef, hp.actor_lr, hp.critic_lr, hp.ppo_epochs, hp.max_new_tokens) == (0.3, 2e-7, 1e-7, 3, 512)
    assert (hp.clip_score, hp.gamma, hp.lam, hp.policy_clip, hp.value_clip) == (5.0, 1.0, 0.95, 0.2, 0.2)
    assert not hp.do_sample and isinstance(module.kl_controller, FixedKLController)
    assert raw["data"]["max_length"] == 8192 and raw["data"]["stage"] == "rl"
    assert raw["trainer"]["precision"] == "bf16-mixed" and "ModelParallelStrategy" in str(raw["trainer"]["strategy"])


# ----------------------------------------------------------------------------- tiny-llama


@pytest.mark.slow
def test_rollout_agrees_with_the_forward_pass_and_values(rl_batches):
    """Greedy tokens are the argmax of the logits our forward pass computes for them: the
    response mask, positions under left padding and the logits window line up."""
    module = tiny_module()
    module.configure_model()
    batch = rl_batches[0]
    assert (batch["attention_mask"][:, 0] == 0).any()  # prompts of different lengths: left padding
    rollout = module.make_rollout(batch)
    B, R = rollout.response_mask.shape
    assert B == 2 and 1 <= R <= 5 and rollout.sequences.shape[1] == batch["input_ids"].shape[1] + R
    with torch.no_grad():
        logits = module.policy_logits(module.actor, rollout)
        values = module.values(rollout)
    mask = rollout.response_mask.bool()
    assert torch.equal(logits.argmax(-1)[mask], rollout.response_ids[mask])
    assert values.shape == (B, R) and values.dtype == torch.float32
    assert len(rollout.texts) == B

    result = evaluate_rewards(module.actor, module.tokenizer, loader(rl_batches), max_new_tokens=3)
    assert result["prompts"] == 4
    assert sum(result["shares"].values()) == pytest.approx(1.0)
    assert result["mean_reward"] == pytest.approx(sum(s * module.table.value(c) for c, s in result["shares"].items()))


@pytest.mark.slow
def test_sampled_rollouts_take_log_probs_at_the_sampling_temperature(rl_batches):
    """Old, new and reference log-probs of rollouts sampled at T = 0.7 are those of
    softmax(logits / 0.7), by hand from the raw logits; greedy rollouts keep T = 1."""
    module = tiny_module(do_sample=True, temperature=0.7)
    module.configure_model()
    torch.manual_seed(0)
    rollout = module.make_rollout(rl_batches[0])
    mask, tokens, P = rollout.response_mask.bool(), rollout.response_ids, rollout.prompt_length
    inputs = dict(input_ids=rollout.sequences, attention_mask=rollout.attention_mask,
                  position_ids=rollout.position_ids, use_cache=False)

    def by_hand(model) -> torch.Tensor:
        z = model(**inputs).logits[:, P - 1:-1].double() / 0.7
        return (z.gather(-1, tokens[..., None])[..., 0] - z.logsumexp(-1)).float()

    with torch.no_grad():
        logp = gather_logprobs(module.policy_logits(module.actor, rollout), tokens)
        torch.testing.assert_close(logp[mask], by_hand(module.actor)[mask])
        with module._reference_context():
            ref_logp = gather_logprobs(module.policy_logits(module.actor, rollout), tokens)
            torch.testing.assert_close(ref_logp[mask], by_hand(module.actor)[mask])
        greedy = tiny_module(temperature=0.7)
        greedy.configure_model()
        torch.testing.assert_close(greedy.policy_logits(greedy.actor, rollout),
                                   greedy.actor(**inputs).logits[:, P - 1:-1])


def _snapshot(named) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in named}


def _changed(before: dict[str, torch.Tensor], named) -> set[str]:
    return {n for n, p in named if n in before and not torch.equal(before[n], p.detach())}


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["shared_lora", "copy_lora_actor", "full_actor"])
def test_one_ppo_step_trains_actor_and_critic_and_keeps_the_reference(layout, rl_batches, tmp_path):
    kwargs = {"shared_lora": dict(critic_layout="shared_lora"),
              "copy_lora_actor": dict(critic_layout="copy"),
              "full_actor": dict(lora=None, critic_layout="copy", actor_lr=1e-3, critic_lr=1e-3)}[layout]
    module = tiny_module(minibatch_size=1, **kwargs)
    module.configure_model()
    actor_before = _snapshot(module.actor.named_parameters())
    critic_owner = module.actor if module.critic is None else module.critic
    critic_before = _snapshot(critic_owner.named_parameters())
    head_before = module.value_head.proj.weight.detach().clone()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, loader(rl_batches[:1]))

    actor_params = {n for n, p in module.actor.named_parameters() if p.requires_grad}
    if layout == "shared_lora":
        actor_trained = {n for n in actor_params if ".default." in n}
        critic_trained = {n for n in actor_params if ".critic." in n}
        changed = _changed(actor_before, module.actor.named_parameters())
        # both adapters moved, and nothing else (the base stays frozen)
        assert changed & actor_trained and changed & critic_trained
        assert changed <= actor_trained | critic_trained
    else:
        assert _changed(actor_before, module.actor.named_parameters()) == actor_params
        assert _changed(critic_before, module.critic.named_parameters())
    assert not torch.equal(head_before, module.value_head.proj.weight)

    # the reference is the untouched starting model: the frozen copy, or the adapters switched off
    fresh = load_model(TINY_LLAMA)
    ids = rl_batches[0]["input_ids"][:1, -8:]
    with torch.no_grad():
        if module.reference is not None:
            reference_logits = module.reference(input_ids=ids).logits
        else:
            with module.actor.disable_adapter():
                reference_logits = module.actor(input_ids=ids).logits
        torch.testing.assert_close(reference_logits, fresh(input_ids=ids).logits)

    metrics = trainer.callback_metrics
    for name in ("reward/mean", "ppo/kl", "ppo/entropy", "ppo/clip_fraction", "ppo/value_loss", "ppo/policy_loss",
                 "time/generation_share", *(f"reward/share_{c}" for c in CATEGORIES)):
        assert torch.isfinite(metrics[name]), name
    assert 0.0 < float(metrics["time/generation_share"]) < 1.0
    # 2 optimizers x ppo_epochs x 2 minibatches: Lightning counts optimizer steps
    assert trainer.global_step == 4


@contextmanager
def counted_passes(module: IRMPPOModule):
    """Record each forward of the actor's decoder outside generation (the shared-LoRA critic's
    too): True with grad (an update), False without (a pass before the updates)."""
    passes: list[bool] = []
    generating = [False]
    real_generate = ppo.generate

    def generate(*args, **kwargs):
        generating[0] = True
        try:
            return real_generate(*args, **kwargs)
        finally:
            generating[0] = False

    def record(*_) -> None:
        if not generating[0]:
            passes.append(torch.is_grad_enabled())

    handle = module.actor.get_base_model().get_decoder().register_forward_hook(record)
    try:
        with mock.patch.object(ppo, "generate", generate):
            yield passes
    finally:
        handle.remove()


def quiet_trainer(tmp_path) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)


# estimator, options, (passes without grad, forwards with grad) on one batch of 2 prompts x 2 completions
PASS_CASES = {
    "gae": ("gae", dict(kl_coef=0.0), (1, 2)),  # critic values; policy and value updates
    "grpo": ("grpo", dict(kl_coef=0.0), (0, 1)),  # the update alone: its log-probs are the old ones
    # + the reference: two forwards, each group's prompt once, then the responses on its cache
    "grpo_kl_loss": ("grpo", dict(kl_coef=0.1, kl_mode="loss"), (2, 1)),
    "rloo_kl_reward": ("rloo", dict(kl_coef=0.1), (3, 1)),  # + reference and old: the KL reward needs both
    "dr_grpo_2_epochs": ("dr_grpo", dict(kl_coef=0.0, ppo_epochs=2), (1, 2)),  # + old; two updates
    "reinforce_pp_microbatches": ("reinforce_pp_baseline", dict(kl_coef=0.0, microbatch_size=2), (0, 2)),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", PASS_CASES)
def test_each_estimator_trains_with_only_the_passes_it_needs(case, rl_batches, tmp_path):
    """No critic, no value pass, no critic optimizer for the group estimators; no old-log-prob
    pass for one epoch over one minibatch (micro-batches included); a reference pass only with a
    non-zero KL coefficient. Rewards vary within groups (``varied_rewards``), so the actor moves."""
    estimator, options, expected = PASS_CASES[case]
    module = tiny_module(advantage_estimator=estimator, num_generations=2, do_sample=True, temperature=1.0,
                         **options)
    module.configure_model()
    before = _snapshot(module.actor.named_parameters())
    trainer = quiet_trainer(tmp_path)
    with counted_passes(module) as passes, varied_rewards():
        trainer.fit(module, loader(rl_batches[:1]))
    assert (passes.count(False), passes.count(True)) == expected
    has_critic = estimator == "gae"
    assert (module.value_head is not None, len(trainer.optimizers)) == (has_critic, 2 if has_critic else 1)
    changed = _changed(before, module.actor.named_parameters())
    assert any(".default." in n for n in changed) and all("lora_" in n for n in changed)
    assert trainer.global_step == module.hparams.ppo_epochs * (2 if has_critic else 1)
    metrics = trainer.callback_metrics
    for name in ("reward/mean", "reward/group_std", "reward/zero_variance_groups", "ppo/advantage_mean",
                 "ppo/advantage_std", "ppo/clip_fraction", "ppo/policy_loss", "ppo/entropy", "ppo/response_length"):
        assert torch.isfinite(metrics[name]), name
    assert ("ppo/kl" in metrics) == (options["kl_coef"] != 0)
    assert sum(float(metrics[f"time/{p}_share"]) for p in ppo.PHASES) == pytest.approx(1.0)


@pytest.mark.slow
def test_group_log_probs_run_each_prompt_once_and_agree_with_the_full_pass(rl_batches):
    """The reference pass of a group runs its (left-padded) prompt once and the responses on the
    repeated KV cache: the same log-probs as the full forward of every row, to float rounding."""
    module = tiny_module(advantage_estimator="grpo", num_generations=3, do_sample=True, temperature=0.7,
                         max_new_tokens=6)
    module.configure_model()
    with torch.no_grad():
        for param in module.actor.parameters():
            if param.requires_grad:  # a trained adapter, so policy and reference differ
                param.add_(0.05 * torch.randn_like(param))
    rollout = module.make_rollout(repeat_prompts(rl_batches[0], 3))
    mask = rollout.response_mask.bool()
    with torch.no_grad():
        with module._reference_context():
            full_reference = module.logprobs(module.actor, rollout)
        torch.testing.assert_close(module.reference_logprobs(rollout)[mask], full_reference[mask], rtol=0, atol=1e-5)
        full_policy = module.logprobs(module.actor, rollout)
        torch.testing.assert_close(module.group_logprobs(module.actor, rollout)[mask], full_policy[mask], rtol=0,
                                   atol=1e-5)
    assert (full_policy - full_reference)[mask].abs().max() > 1e-2
    assert module.actor.training  # given back in train mode


@pytest.mark.slow
def test_microbatches_accumulate_the_minibatch_gradient(rl_batches, tmp_path):
    """Micro-batches of 1 row give the weights of the whole minibatch at once (token-mean RLOO:
    each micro-batch's loss is divided by the minibatch's token count)."""
    weights = []
    for microbatch_size in (None, 1):
        module = tiny_module(advantage_estimator="rloo", num_generations=2, do_sample=True, temperature=1.0,
                             kl_coef=0.1, kl_mode="loss", microbatch_size=microbatch_size)
        with varied_rewards():
            quiet_trainer(tmp_path).fit(module, loader(rl_batches[:1]))
        weights.append({n: p.detach().clone() for n, p in module.actor.named_parameters() if "lora_" in n})
    assert any(value.abs().sum() > 0 for name, value in weights[0].items() if "lora_B" in name)  # it trained
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_qlora_adapters_get_gradients_after_generate(rl_batches):
    """docs/design.md, "Platform notes": a no-grad forward of a 4-bit layer on CPU must not leave later backward passes
    with zero LoRA gradients; PPO always trains right after generating."""
    module = tiny_module(quantization="4bit")
    module.configure_model()
    rollout = module.make_rollout(rl_batches[0])
    module.policy_logits(module.actor, rollout).float().logsumexp(-1).mean().backward()
    module.values(rollout).pow(2).mean().backward()
    # LoRA B starts at 0, so B is what gets a gradient first (A's is B^T times something)
    for adapter in ("default", "critic"):
        grads = [p.grad for n, p in module.actor.named_parameters() if f"lora_B.{adapter}." in n]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), adapter


# ----------------------------------------------------------------------------- multi-turn environments


def test_environment_options_are_clear_errors_and_hparams_stay_plain():
    from tl_lightning.environments import FunctionEnv
    from tl_lightning.episodes import EpisodeOptions

    with pytest.raises(ValueError, match="reset"):
        tiny_module(environment=object())
    with pytest.raises(ValueError, match="reward_mode"):
        tiny_module(episodes={"reward_mode": "sparse"})
    module = tiny_module(environment=FunctionEnv([add], ["Add 1 and 2."]), episodes={"max_turns": 2})
    assert module.episode_options == EpisodeOptions(max_turns=2)
    assert "environment" not in module.hparams and module.hparams.episodes["max_turns"] == 2
    assert module.loss_budget == 2 * module.hparams.max_new_tokens


def env_module(**kwargs) -> IRMPPOModule:
    from tl_lightning.environments import FunctionEnv
    from tl_lightning.episodes import EpisodeOptions

    env = FunctionEnv([add], [f"Add {i} and 2." for i in range(4)])
    options = kwargs.pop("episodes", EpisodeOptions(max_turns=3, max_episode_tokens=128))
    return tiny_module(environment=env, episodes=options, max_new_tokens=16, do_sample=True, temperature=1.0,
                       **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("estimator,mae", [("gae", False), ("gae", True), ("grpo", True), ("dr_grpo", False),
                                           ("rloo", False), ("reinforce_pp_baseline", True)])
def test_every_estimator_trains_on_multi_turn_episodes(estimator, mae, tmp_path):
    """Episodes (a scripted failing call, its fix, then the model's own text) on ``stage="env"``
    batches, the DataModule connected to the module by the Trainer: every estimator updates the
    actor; MAE in RL leaves the failed turn out of the policy loss; rollout and update log-probs
    agree."""
    from tl_lightning.data.datamodule import ToolUseDataModule
    from tl_lightning.episodes import EpisodeOptions

    group = estimator != "gae"
    module = env_module(advantage_estimator=estimator, num_generations=2 if group else 1, kl_coef=0.1,
                        episodes=EpisodeOptions(max_turns=3, max_episode_tokens=128, mae=mae, reward_mode="per_turn"))
    module.configure_model()
    before = _snapshot(module.actor.named_parameters())
    data = ToolUseDataModule(stage="env", batch_size=2, val_fraction=0.0, prompt_format="codellama")
    trainer = quiet_trainer(tmp_path)
    with scripted(module.tokenizer, failed_call_then_fix), varied_episode_rewards() if group else nullcontext():
        trainer.fit(module, datamodule=data)
    assert data.environment is module.environment and data.report["train_items"] == 4
    changed = _changed(before, module.actor.named_parameters())
    assert any(".default." in n for n in changed)
    metrics = trainer.callback_metrics
    assert metrics["episodes/turns"] == 3 and metrics["episodes/calls"] == 2
    assert metrics["episodes/failed_call_share"] == 0.5
    assert (metrics["episodes/policy_token_share"] < 1) == mae
    assert metrics["episodes/rollout_logprob_gap"] < 1e-4
    for name in ("reward/mean", "ppo/policy_loss", "ppo/kl", "ppo/advantage_std", "reward/share_exact"):
        assert torch.isfinite(metrics[name]), name


@pytest.mark.slow
def test_validation_runs_greedy_episodes(tmp_path):
    from tl_lightning.data.datamodule import ToolUseDataModule

    module = env_module(advantage_estimator="grpo", num_generations=2, kl_coef=0.0)
    data = ToolUseDataModule(stage="env", batch_size=2, val_fraction=0.5, prompt_format="codellama")
    with scripted(module.tokenizer, failed_call_then_fix), varied_episode_rewards():
        quiet_trainer(tmp_path).validate(module, datamodule=data)
    assert data.report == {"tasks": 4, "train_items": 2, "val_items": 2}


@pytest.mark.slow
def test_init_from_a_pkt_checkpoint(tmp_path):
    """``init_checkpoint``: the PKT model (LoRA merged) is what the actor and reference start from."""
    from tl_lightning.pkt import PKTModule

    pkt = PKTModule(model_name=TINY_LLAMA, lora=LORA)
    pkt.configure_model()
    with torch.no_grad():
        for name, param in pkt.model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.01)  # a trained adapter: merged, it changes the weights
    ckpt = tmp_path / "pkt.ckpt"
    torch.save({"state_dict": pkt.state_dict(), "hyper_parameters": dict(pkt.hparams),
                "pytorch-lightning_version": pl.__version__}, ckpt)

    module = tiny_module(init_checkpoint=str(ckpt), model_name="unused")
    module.configure_model()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        expected = pkt.model(input_ids=ids).logits
        with module.actor.disable_adapter():
            torch.testing.assert_close(module.actor(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-4)
    assert (tmp_path / "pkt.ckpt.hf" / "config.json").is_file()


@pytest.mark.slow
def test_cli_fits_the_tiny_recipe_and_checkpoints_the_ppo_state(tmp_path):
    from tl_lightning.cli import main

    cli = main(["fit", "--config", str(REPO / "configs" / "demo" / "irm_tiny.yaml"),
                f"--trainer.default_root_dir={tmp_path}", "--trainer.limit_train_batches=1",
                "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false", "--model.max_new_tokens=3",
                "--model.ppo_epochs=1", "--data.synthetic_size=16", "--data.batch_size=2"])
    assert cli.datamodule.tokenizer is cli.model.tokenizer
    assert cli.trainer.global_step == 2
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["irm_ppo"]["kl_controller"] == {"value": 0.3}
    assert len(ckpt["optimizer_states"]) == 2
    assert "val/reward" in cli.trainer.callback_metrics


@pytest.mark.slow
def test_cli_fits_the_tiny_grpo_recipe_without_a_critic(tmp_path):
    from tl_lightning.cli import main

    cli = main(["fit", "--config", str(REPO / "configs" / "demo" / "irm_grpo_tiny.yaml"),
                f"--trainer.default_root_dir={tmp_path}", "--trainer.limit_train_batches=1",
                "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false", "--model.max_new_tokens=3",
                "--data.synthetic_size=16", "--data.batch_size=2"])
    module = cli.model
    assert module.hparams.advantage_estimator == "grpo" and module.value_head is None
    assert cli.trainer.global_step == module.hparams.ppo_epochs  # one minibatch, one optimizer
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(ckpt["optimizer_states"]) == 1
    assert not [k for k in ckpt["state_dict"] if "critic" in k or "value_head" in k]
    assert "val/reward" in cli.trainer.callback_metrics and "reward/group_std" in cli.trainer.callback_metrics


@pytest.mark.slow
def test_cli_fits_the_tiny_environment_recipe(tmp_path):
    from tl_lightning.cli import main
    from tl_lightning.environments import SyntheticWorldEnv

    cli = main(["fit", "--config", str(REPO / "configs" / "demo" / "irm_env_tiny.yaml"),
                f"--trainer.default_root_dir={tmp_path}", "--trainer.limit_train_batches=1",
                "--trainer.enable_progress_bar=false", "--model.max_new_tokens=4", "--model.environment.n=8",
                "--model.episodes.max_turns=2"])
    module = cli.model
    assert isinstance(module.environment, SyntheticWorldEnv) and len(module.environment.tasks) == 8
    assert cli.datamodule.environment is module.environment and module.episode_options.max_turns == 2
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["episodes"]["max_turns"] == 2
    for name in ("val/reward", "val/success", "episodes/turns", "episodes/end_cut"):
        assert name in cli.trainer.callback_metrics, name


# ----------------------------------------------------------------------------- subprocess scripts


@pytest.mark.slow
@pytest.mark.parametrize("estimator,episodes", [("gae", False), ("grpo", False), ("gae", True), ("grpo", True)],
                         ids=["gae", "grpo", "gae-episodes", "grpo-episodes"])
def test_killed_run_resumes_with_the_same_later_losses(estimator, episodes, tmp_path):
    """Sampled rollouts, adaptive KL (GRPO: groups of 2, the KL in the loss, minibatches of one
    group): after SIGKILL before batch 2 and a resume from last.ckpt, batch 2 sees the same
    prompts (tasks) and gives the same losses as in an uninterrupted run; also for multi-turn
    episodes (tool outputs between sampled turns, MAE in RL)."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    script = str(SCRIPTS / "ppo_resume.py")
    chosen = ["--estimator", estimator] + (["--environment"] if episodes else [])
    runs = [subprocess.Popen([sys.executable, script, str(straight), "--batches", "3", *chosen], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
            subprocess.Popen([sys.executable, script, str(killed), "--batches", "3", "--kill_before", "2", *chosen],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert runs[0].returncode == 0, outputs[0][-3000:]
    assert runs[1].returncode == -9, outputs[1][-3000:]
    assert len((killed / "steps.jsonl").read_text().splitlines()) == 2
    resumed = run_script(script, str(killed), "--batches", "3", "--resume", *chosen)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    expected = [json.loads(line) for line in (straight / "steps.jsonl").read_text().splitlines()]
    got = [json.loads(line) for line in (killed / "steps.jsonl").read_text().splitlines()]
    assert [row["batch"] for row in got] == [0, 1, 2]
    assert expected[2]["ppo/kl"] != 0.0 and expected[2]["ppo/kl_coef"] != expected[0]["ppo/kl_coef"]
    for want, have in zip(expected[2:], got[2:]):
        assert have["ids"] == want["ids"]
        for key, value in want.items():
            if key not in ("batch", "ids"):
                assert have[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.slow
@pytest.mark.multiprocess
def test_fsdp2_generates_and_trains_on_two_processes_like_ddp(tmp_path):
    """Ranks stop generating at different lengths (3 and 8 new tokens): synced generation keeps
    both in every sharded forward. The shared-LoRA critic trains under FSDP2 too, and the
    sharded run ends with the same weights as a DDP run of the same two batches."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    script = str(SCRIPTS / "ppo_fsdp.py")
    runs = {name: subprocess.Popen([sys.executable, script, str(tmp_path / name), "--strategy", name], cwd=REPO,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for name in ("fsdp", "ddp")}
    for name, run in runs.items():
        output = run.communicate(timeout=600)[0]
        assert run.returncode == 0, f"{name}: {output[-3000:]}"
    fsdp, ddp = ([json.loads((tmp_path / name / f"rank{r}.json").read_text()) for r in (0, 1)]
                 for name in ("fsdp", "ddp"))
    for rank in fsdp:
        assert rank["world_size"] == 2 and rank["sharded"]
        assert all(torch.isfinite(torch.tensor(v)) for v in rank["metrics"].values())
        for part in ("actor", "critic", "value_head"):
            assert rank["after"][part] != rank["before"][part], part
    # response lengths are averaged over the ranks: (3 + 8) / 2
    assert fsdp[0]["metrics"]["ppo/response_length"] == pytest.approx(5.5)
    assert fsdp[0]["after"] == fsdp[1]["after"]
    assert not ddp[0]["sharded"]
    for part in ("actor", "critic", "value_head"):
        torch.testing.assert_close(torch.tensor(fsdp[0]["after"][part]), torch.tensor(ddp[0]["after"][part]),
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_group_estimator_on_two_fsdp2_processes_matches_one_process(tmp_path):
    """REINFORCE++-baseline (it whitens over the whole batch, and averages over tokens), groups of
    2 sampled completions, the KL as a loss term with adaptive control, 2 steps: FSDP2 on 2 gloo
    processes ends with the LoRA weights and KL coefficient of one process training on both
    ranks' prompts at once."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    script = str(SCRIPTS / "ppo_fsdp.py")
    runs = {name: subprocess.Popen([sys.executable, script, str(tmp_path / name), "--strategy", name,
                                    "--estimator", "reinforce_pp_baseline"], cwd=REPO, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for name in ("fsdp", "single")}
    for name, run in runs.items():
        output = run.communicate(timeout=600)[0]
        assert run.returncode == 0, f"{name}: {output[-3000:]}"
    fsdp = [json.loads((tmp_path / "fsdp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    single = json.loads((tmp_path / "single" / "rank0.json").read_text())
    assert all(rank["world_size"] == 2 and rank["sharded"] for rank in fsdp) and single["world_size"] == 1
    assert fsdp[0]["after"]["actor"] != fsdp[0]["before"]["actor"]
    assert fsdp[0]["after"] == fsdp[1]["after"]
    torch.testing.assert_close(torch.tensor(fsdp[0]["after"]["actor"]), torch.tensor(single["after"]["actor"]),
                               rtol=1e-4, atol=1e-6)
    # 2 steps of adaptive control over the global batch of 8 completions, as in one process
    assert fsdp[0]["kl_coef"] == fsdp[1]["kl_coef"] == pytest.approx(single["kl_coef"], rel=1e-6)
    assert fsdp[0]["metrics"]["reward/mean"] == pytest.approx(single["metrics"]["reward/mean"])
