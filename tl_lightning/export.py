"""Write a trained model as a plain Hugging Face folder (``save_pretrained`` + tokenizer).

- ``merge_lora=True`` (default): LoRA adapters are merged into a copy of the base weights, so
  the folder loads with plain ``AutoModelForCausalLM.from_pretrained``; the training model is
  left untouched.
- ``merge_lora=False``: only the adapter is written (``adapter_config.json`` +
  ``adapter_model.safetensors``), to load with peft on top of the base model it names.
- QLoRA: merging into 4/8-bit weights would re-quantize and round the merged result, so the
  quantized base weights are first dequantized into a plain model of the same architecture
  (in the dtype of the model's non-quantized parameters, float32 after peft's
  ``prepare_model_for_kbit_training``) and the adapters are merged there. The folder then holds
  exactly the function the QLoRA model computed, without any bitsandbytes dependency.

The prompt format travels with the model: the folder gets ``tl_lightning.json``
(``data.prompt_record.FORMAT_RECORD``: how the model was trained to be prompted and to write calls).

Usage: the ``HFExport`` callback at the end of ``fit``, ``export_pretrained`` from Python, or
``python -m tl_lightning.export --ckpt_path last.ckpt --output model_dir [--no-merge_lora]``.
"""

from __future__ import annotations

import argparse
import copy
import shutil
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

from tl_lightning.data.prompt_record import checkpoint_prompt_format, write_format_record
from tl_lightning.modeling import write_folder_atomically
from tl_lightning.pkt import PKTModule

def is_peft_model(model: nn.Module) -> bool:
    """Whether ``model`` is wrapped by peft (has adapters)."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def is_quantized(model: nn.Module) -> bool:
    """Whether ``model`` holds bitsandbytes 4-bit or 8-bit layers."""
    import bitsandbytes as bnb

    return any(isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)) for m in model.modules())


def dequantize_linear(module: nn.Module) -> torch.Tensor:
    """The (out, in) floating-point weight of a bitsandbytes ``Linear4bit``/``Linear8bitLt``."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as F

    if isinstance(module, bnb.nn.Linear4bit):
        return F.dequantize_4bit(module.weight.data, module.weight.quant_state)
    scale = getattr(module.weight, "SCB", None)
    if scale is None:
        scale = module.state.SCB
    return F.int8_vectorwise_dequant(module.weight.data, scale)


def dequantized_state_dict(model: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The base weights of a (possibly peft-wrapped) quantized causal LM as plain tensors.

    Keys are those of the plain architecture: peft's ``base_layer`` level is dropped and the
    adapter parameters are left out.
    """
    import bitsandbytes as bnb

    base = model.get_base_model() if is_peft_model(model) else model
    state: dict[str, torch.Tensor] = {}
    quantized = {name for name, m in base.named_modules()
                 if isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt))}
    for name in quantized:
        module = base.get_submodule(name)
        plain = name.replace(".base_layer", "")
        state[f"{plain}.weight"] = dequantize_linear(module).to(dtype)
        if module.bias is not None:
            state[f"{plain}.bias"] = module.bias.detach().to(dtype)
    # state_dict: persistent entries only, tied weights (lm_head = embed_tokens) under both names.
    for name, tensor in base.state_dict().items():
        parts = name.split(".")
        owners = {".".join(parts[:i]) for i in range(1, len(parts))}
        if "lora_" in name or owners & quantized:
            continue  # adapters, or a quantized layer's packed weight and its quantization stats
        state[name.replace(".base_layer", "")] = tensor.detach().to(dtype)
    return state


def plain_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's ordinary weights (its input embeddings)."""
    return model.get_input_embeddings().weight.dtype


def dequantized_copy(model: nn.Module) -> nn.Module:
    """A plain (unquantized, adapter-free) copy of a quantized causal LM's base model."""
    from transformers import AutoModelForCausalLM

    dtype = plain_dtype(model)
    base = model.get_base_model() if is_peft_model(model) else model
    config = copy.deepcopy(base.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    plain.load_state_dict(dequantized_state_dict(model, dtype), strict=True)
    plain.generation_config = copy.deepcopy(base.generation_config)
    return plain


def merged_copy(model: nn.Module) -> nn.Module:
    """A plain model equal to ``model`` with its LoRA adapters merged; ``model`` is not changed."""
    if not is_peft_model(model):
        return dequantized_copy(model) if is_quantized(model) else model
    if not is_quantized(model):
        return copy.deepcopy(model).merge_and_unload()
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    name = model.active_adapter
    with torch.random.fork_rng(devices=[]):  # the adapters' random init is overwritten below
        rebuilt = get_peft_model(dequantized_copy(model), copy.deepcopy(model.peft_config[name]))
    set_peft_model_state_dict(rebuilt, get_peft_model_state_dict(model, adapter_name=name))
    return rebuilt.merge_and_unload()


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model``'s parameters are FSDP2 shards (DTensors)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def gathered_copy(model: nn.Module, keep: bool) -> nn.Module | None:
    """Collective (every rank calls it): an unsharded CPU copy of an FSDP2-sharded causal LM.

    Only the rank with ``keep`` (rank 0) receives the full weights and builds the copy (the same
    architecture from its config, the same LoRA adapters); the others return ``None``.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from transformers import AutoModelForCausalLM

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)
    if not keep:
        return None
    base = model.get_base_model() if is_peft_model(model) else model
    plain = AutoModelForCausalLM.from_config(copy.deepcopy(base.config), dtype=plain_dtype(model))
    plain.generation_config = copy.deepcopy(base.generation_config)
    if is_peft_model(model):
        from peft import get_peft_model

        with torch.random.fork_rng(devices=[]):  # the adapters' random init is overwritten below
            plain = get_peft_model(plain, copy.deepcopy(model.peft_config[model.active_adapter]))
    plain.load_state_dict(state, strict=True)
    return plain


def check_output_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """``out_dir`` as a Path; a clear error if it already holds files and ``overwrite`` is off.

    Stale files matter: a left-over ``adapter_config.json`` beside a merged model makes
    transformers try to load an adapter.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"export target {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"export target {out} is not empty; choose another folder or pass "
                              "overwrite=True to replace it")
    return out


def export_pretrained(model: nn.Module, tokenizer, out_dir: str | Path, merge_lora: bool = True,
                      overwrite: bool = False, prompt_format: str | None = None) -> Path:
    """Write ``model`` and ``tokenizer`` (with its chat template) as an HF folder.

    Args:
        model: a transformers causal LM, optionally peft-wrapped and/or bitsandbytes-quantized.
        tokenizer: its tokenizer; saved beside the weights so the folder is self-contained.
        out_dir: the folder to write (created; must be empty unless ``overwrite``).
        merge_lora: merge adapters into the weights (default) or write the adapter only.
        overwrite: replace an existing non-empty ``out_dir``.
        prompt_format: the prompt format the model was trained with, written to ``FORMAT_RECORD``
            (None: no record, as for a model whose format is not known).
    Returns the folder.
    """
    out = check_output_dir(out_dir, overwrite)
    if not merge_lora and not is_peft_model(model):
        raise ValueError("merge_lora=False writes an adapter only, but this model has no LoRA adapter")
    if out.is_dir() and overwrite:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    if merge_lora:
        plain = merged_copy(model)
        use_cache = plain.config.use_cache
        plain.config.use_cache = True  # training turns the KV cache off; inference wants it
        try:
            plain.save_pretrained(out, safe_serialization=True)
        finally:
            plain.config.use_cache = use_cache
    else:
        model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if prompt_format is not None:
        write_format_record(out, prompt_format, tokenizer)
    return out


class HFExport(Callback):
    """Export ``pl_module.model`` and ``pl_module.tokenizer`` as an HF folder when fit ends, with
    the prompt format the trainer's DataModule rendered the data in (``FORMAT_RECORD``).

    The target folder is checked when fit starts, so a taken folder fails the run before
    training, not after it. Rank 0 writes; the other ranks wait for it. FSDP2-sharded models
    are first gathered in full onto rank 0's CPU.
    """

    def __init__(self, dirpath: str, merge_lora: bool = True, overwrite: bool = False):
        super().__init__()
        self.dirpath = dirpath
        self.merge_lora = merge_lora
        self.overwrite = overwrite

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":  # on every rank, so that all of them stop, not only rank 0
            check_output_dir(self.dirpath, self.overwrite)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for attribute in ("model", "tokenizer"):
            if getattr(pl_module, attribute, None) is None:
                raise AttributeError(f"HFExport needs {type(pl_module).__name__}.{attribute}")
        model = pl_module.model
        # the format ToolUseDataModule.setup rendered in (none without a DataModule)
        prompt_format = getattr(trainer.datamodule, "hparams", {}).get("prompt_format")
        if is_sharded(model):  # FSDP2: gather the full weights on rank 0 first (all ranks take part)
            model = gathered_copy(model, keep=trainer.is_global_zero)
        try:
            if trainer.is_global_zero:
                export_pretrained(model, pl_module.tokenizer, self.dirpath, merge_lora=self.merge_lora,
                                  overwrite=self.overwrite, prompt_format=prompt_format)
        finally:  # a failing export on rank 0 must not leave the other ranks waiting forever
            trainer.strategy.barrier("hf_export")


def export_checkpoint(ckpt_path: str | Path, out_dir: str | Path, merge_lora: bool = True,
                      overwrite: bool = False) -> Path:
    """Export a ``PKTModule`` Lightning checkpoint (a ``.ckpt`` file) as an HF folder, with the
    prompt format of its data (``checkpoint_prompt_format``)."""
    if Path(ckpt_path).is_dir():
        raise IsADirectoryError(
            f"{ckpt_path} is a sharded (distributed) checkpoint folder; export needs a single-file "
            ".ckpt: export at fit end with the HFExport callback (it gathers FSDP2 shards), or "
            "consolidate the folder into one file first (python -m "
            "lightning.fabric.utilities.consolidate_checkpoint)")
    module = PKTModule.load_from_checkpoint(ckpt_path, map_location="cpu")
    return export_pretrained(module.model, module.tokenizer, out_dir, merge_lora=merge_lora,
                             overwrite=overwrite, prompt_format=checkpoint_prompt_format(ckpt_path))


def export_pkt_checkpoint(checkpoint: str | Path) -> Path:
    """An HF folder with the model of a ``PKTModule`` checkpoint (LoRA merged) and its tokenizer,
    written once beside the checkpoint (``<name>.hf/``) and reused; concurrent processes (ranks)
    never see it half-written. ``IRMPPOModule(init_checkpoint=...)`` starts from it."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"init_checkpoint {checkpoint} does not exist")
    return write_folder_atomically(checkpoint.with_name(checkpoint.name + ".hf"),
                                    lambda folder: export_checkpoint(checkpoint, folder))


def main(argv: list[str] | None = None) -> None:
    """``python -m tl_lightning.export --ckpt_path X.ckpt --output DIR [--no-merge_lora]``."""
    parser = argparse.ArgumentParser(prog="python -m tl_lightning.export", description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt_path", required=True, help="a PKTModule checkpoint (.ckpt)")
    parser.add_argument("--output", required=True, help="the HF folder to write")
    parser.add_argument("--merge_lora", action=argparse.BooleanOptionalAction, default=True,
                        help="merge LoRA adapters into the weights (default) or write the adapter only")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    args = parser.parse_args(argv)
    out = export_checkpoint(args.ckpt_path, args.output, merge_lora=args.merge_lora,
                            overwrite=args.overwrite)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
