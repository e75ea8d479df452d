"""The prompt format travels with the model: which format (``render.PROMPT_FORMATS``) a model was
trained with, recorded beside it.

- An exported folder (``export.export_pretrained``) holds ``FORMAT_RECORD`` (``tl_lightning.json``):
  ``prompt_format`` and ``call_syntax``, how the model was trained to be prompted and to write calls.
- A Lightning checkpoint holds the DataModule's hyper-parameters, ``prompt_format`` among them.

The DataModule (through ``connect``), ``evaluate run`` and ``ToolCallEvaluator`` default to the
recorded format and warn when told to use another (``render.choose_prompt_format``). This module is
in the data layer so that reading a record never imports model or training code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tl_lightning.data.render import call_syntax

FORMAT_RECORD = "tl_lightning.json"


def write_format_record(out_dir: str | Path, prompt_format: str, tokenizer) -> Path:
    """Write ``FORMAT_RECORD`` into ``out_dir``: the prompt format and call syntax the model was
    trained with."""
    record = {"prompt_format": prompt_format, "call_syntax": call_syntax(prompt_format, tokenizer)}
    path = Path(out_dir) / FORMAT_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def saved_prompt_format(model_dir: str | Path) -> str | None:
    """The prompt format recorded in an exported folder, or None (not a folder, e.g. a hub id or
    a built-in name, or a folder without a record: a model not trained here)."""
    path = Path(model_dir) / FORMAT_RECORD
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("prompt_format")


def checkpoint_prompt_format(ckpt_path: str | Path) -> str | None:
    """The prompt format a Lightning checkpoint's data was rendered in (``ToolUseDataModule``
    records it in its hyper-parameters), or None. Memory-mapped: the weights are not read."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    return (checkpoint.get("datamodule_hyper_parameters") or {}).get("prompt_format")
