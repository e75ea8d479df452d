"""modeling.py: built-in models, dtype, gradient checkpointing, LoRA, QLoRA and its CPU trap,
dropout switched off for RL."""

from __future__ import annotations

import warnings

import bitsandbytes as bnb
import pytest
import torch

from tl_lightning.losses import gather_logprobs
from tl_lightning.modeling import (
    SMOLLM2,
    TINY_LLAMA,
    LoraOptions,
    ValueHead,
    build_tiny_llama,
    disable_dropout,
    guard_cpu_4bit,
    load_model,
    load_tokenizer,
    lora_options,
    parse_dtype,
)

NO_DROPOUT = LoraOptions(dropout=0.0)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TINY_LLAMA)


@pytest.fixture(scope="module")
def input_ids() -> torch.Tensor:
    return torch.randint(0, 49152, (2, 10), generator=torch.Generator().manual_seed(0))


def perturb_lora_b(model, std: float = 0.1) -> None:
    """LoRA B starts at zero (so A gets no gradient and merging is a no-op); make it matter."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * std)


def lora_grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def checkpointed_layers(model) -> list:
    """The decoder layers that recompute their activations in backward."""
    return [m for m in model.modules()
            if type(m).__name__ == "LlamaDecoderLayer" and getattr(m, "gradient_checkpointing", False)]


def train_step_grads(model, input_ids) -> tuple[float, dict[str, torch.Tensor]]:
    """One training forward/backward; returns the loss and the trainable parameters' grads."""
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward()
    return loss.item(), lora_grads(model)


def test_tiny_llama_is_a_small_llama_with_smollm2_tokenizer(tokenizer, smollm2_tokenizer):
    model = load_model(TINY_LLAMA)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 1e6 < model.num_parameters() < 1e7
    assert model.config.vocab_size == len(tokenizer) == 49152
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tokenizer.get_vocab() == smollm2_tokenizer.get_vocab()
    assert tokenizer.chat_template == smollm2_tokenizer.chat_template
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert model.dtype == torch.float32


def test_tiny_llama_weights_depend_only_on_seed(tokenizer):
    cached = load_model(TINY_LLAMA, seed=0).state_dict()
    before = torch.random.get_rng_state()
    redrawn = build_tiny_llama(tokenizer, seed=0).state_dict()
    assert torch.equal(torch.random.get_rng_state(), before), "building must not touch the global RNG"
    assert cached.keys() == redrawn.keys()
    assert all(torch.equal(cached[k], redrawn[k]) for k in cached)
    other = load_model(TINY_LLAMA, seed=1).state_dict()
    assert not torch.equal(cached["model.embed_tokens.weight"], other["model.embed_tokens.weight"])


def test_dtype_strings():
    assert parse_dtype("bfloat16") is torch.bfloat16
    assert parse_dtype("auto") == "auto"
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        parse_dtype("fp8")
    assert load_model(TINY_LLAMA, dtype="bfloat16").dtype == torch.bfloat16
    assert load_model(TINY_LLAMA, dtype="auto").dtype == torch.float32  # what was saved


def test_unknown_quantization_is_refused():
    with pytest.raises(ValueError, match="unknown quantization '2bit'"):
        load_model(TINY_LLAMA, quantization="2bit")


def test_lora_options_are_validated_and_parse_from_config():
    with pytest.raises(ValueError, match="rank"):
        LoraOptions(r=0)
    with pytest.raises(ValueError, match="dropout"):
        LoraOptions(dropout=1.0)
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--lora", type=LoraOptions | None, default=None)
    cfg = parser.parse_args(["--lora", '{"r": 4, "target_modules": ["q_proj", "v_proj"]}'])
    lora = parser.instantiate_classes(cfg).lora
    assert lora == LoraOptions(r=4, target_modules=("q_proj", "v_proj"))


def test_lora_trains_only_adapters_and_is_seeded(input_ids):
    options = LoraOptions(r=4, target_modules=("q_proj", "v_proj"))
    model = load_model(TINY_LLAMA, lora=options)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    hidden, kv = 64, 2 * 16  # tiny-llama: q_proj 64→64, v_proj 64→32 (2 kv heads of dim 16)
    per_layer = options.r * (hidden + hidden) + options.r * (hidden + kv)
    assert sum(p.numel() for p in trainable.values()) == 2 * per_layer
    again = load_model(TINY_LLAMA, lora=options)
    assert all(torch.equal(p, again.get_parameter(n)) for n, p in trainable.items())


def test_gradient_checkpointing_gives_the_same_gradients(input_ids):
    plain = load_model(TINY_LLAMA, lora=NO_DROPOUT)
    checkpointed = load_model(TINY_LLAMA, lora=NO_DROPOUT, gradient_checkpointing=True)
    layers = checkpointed_layers(checkpointed)
    assert len(layers) == 2 and not checkpointed_layers(plain)
    assert all(layer._gradient_checkpointing_func.keywords == {"use_reentrant": False} for layer in layers)
    assert not checkpointed.config.use_cache
    perturb_lora_b(plain)
    perturb_lora_b(checkpointed)
    loss, grads = train_step_grads(plain, input_ids)
    loss_ckpt, grads_ckpt = train_step_grads(checkpointed, input_ids)
    assert loss == pytest.approx(loss_ckpt, abs=1e-6)
    for name, grad in grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-7)


def test_qlora_4bit_is_nf4_double_quant_and_guarded(input_ids):
    model = load_model(TINY_LLAMA, lora=NO_DROPOUT, quantization="4bit", dtype="bfloat16",
                       gradient_checkpointing=True)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 2 * 7  # every Linear of the 2 decoder layers; lm_head stays tied
    assert all(not layer.support_avx512bf16_for_cpu for layer in layers)
    quant_state = layers[0].weight.quant_state
    assert quant_state.quant_type == "nf4" and quant_state.nested  # nested = double quantization
    assert layers[0].compute_dtype == torch.bfloat16
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    assert len(checkpointed_layers(model)) == 2
    perturb_lora_b(model)
    _, grads = train_step_grads(model, input_ids)
    assert all(g.abs().sum() > 0 for g in grads.values())


def test_qlora_4bit_trains_the_same_after_generate(input_ids):
    """docs/design.md, "Platform notes": a no-grad forward (generate) must not change later LoRA gradients."""
    reference = load_model(TINY_LLAMA, lora=NO_DROPOUT, quantization="4bit")
    perturb_lora_b(reference)
    loss_ref, grads_ref = train_step_grads(reference, input_ids)

    model = load_model(TINY_LLAMA, lora=NO_DROPOUT, quantization="4bit")
    perturb_lora_b(model)
    model.eval()
    model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                   max_new_tokens=3, do_sample=False)
    loss, grads = train_step_grads(model, input_ids)
    assert loss == loss_ref
    for name, grad in grads.items():
        assert grad.abs().sum() > 0, name
        assert torch.equal(grad, grads_ref[name]), name


def test_unguarded_4bit_on_an_avx512bf16_cpu_breaks_training_after_generate(input_ids):
    """What the guard prevents: let bitsandbytes take its AVX512-BF16 CPU inference path (as
    it does by default on such CPUs) and training after generate() changes silently."""
    reference = load_model(TINY_LLAMA, lora=NO_DROPOUT, quantization="4bit")
    perturb_lora_b(reference)
    loss_ref, grads_ref = train_step_grads(reference, input_ids)

    model = load_model(TINY_LLAMA, lora=NO_DROPOUT, quantization="4bit")
    perturb_lora_b(model)
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = True
    model.eval()
    with torch.no_grad():
        model(input_ids=input_ids)
    with warnings.catch_warnings():  # here: "gemv_4bit: an autograd kernel was not registered"
        warnings.simplefilter("ignore")
        loss, grads = train_step_grads(model, input_ids)
    assert loss != pytest.approx(loss_ref, abs=1e-4) or any(
        not torch.allclose(grads[n], grads_ref[n]) for n in grads)
    assert guard_cpu_4bit(model) == 14


def test_qlora_8bit_trains(input_ids):
    model = load_model(TINY_LLAMA, lora=LoraOptions(), quantization="8bit", gradient_checkpointing=True)
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in model.modules())
    perturb_lora_b(model)
    _, grads = train_step_grads(model, input_ids)
    assert all(g.abs().sum() > 0 for g in grads.values())


def test_value_head_maps_hidden_states_to_float32_values():
    head = ValueHead(hidden_size=64)
    hidden = torch.randn(3, 5, 64, dtype=torch.bfloat16, requires_grad=True)
    values = head(hidden)
    assert values.shape == (3, 5) and values.dtype == torch.float32
    values.sum().backward()
    assert hidden.grad is not None and head.proj.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_bundled_smollm2_loads_as_a_real_llama(smollm2_tokenizer):
    model = load_model(SMOLLM2, dtype="bfloat16")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < model.num_parameters() < 140e6
    assert model.dtype == torch.bfloat16
    ids = smollm2_tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert smollm2_tokenizer.decode(logits[0, -1].argmax()).strip() == "Paris"


def test_disable_dropout_reaches_the_attention_modules(smollm2_tokenizer):
    """HF attention modules copy ``config.attention_dropout`` when built: after ``disable_dropout``
    a tiny Llama built with attention dropout 0.1 (and LoRA dropout 0.1) gives the same log-probs
    in train mode (the update) as in eval mode (the rollout)."""
    from peft import get_peft_model
    from transformers import LlamaForCausalLM

    from tl_lightning.modeling import tiny_llama_config

    config = tiny_llama_config(smollm2_tokenizer)
    config.attention_dropout = 0.1
    torch.manual_seed(0)
    model = get_peft_model(LlamaForCausalLM(config), LoraOptions(r=4, alpha=8, dropout=0.1).peft_config())
    ids = torch.randint(0, len(smollm2_tokenizer), (2, 12))
    disable_dropout(model)
    with torch.no_grad():
        rollout = gather_logprobs(model.eval()(input_ids=ids).logits[:, :-1], ids[:, 1:])
        update = gather_logprobs(model.train()(input_ids=ids).logits[:, :-1], ids[:, 1:])
    torch.testing.assert_close(update, rollout, rtol=0, atol=1e-6)


def test_lora_options_from_a_checkpoint_dict():
    assert lora_options({"r": 4, "target_modules": ["q_proj"]}) == LoraOptions(r=4, target_modules=("q_proj",))
    assert lora_options(NO_DROPOUT) is NO_DROPOUT and lora_options(None) is None
