"""lm_module.py: what the modules share: a lazy tokenizer from ``model_source()``, the recorded
prompt format, dataclass options stored as plain dicts, tensors-only batch transfer, and the
non-finite-loss guard."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from tl_lightning.data.prompt_record import write_format_record
from tl_lightning.lm_module import CausalLMModule
from tl_lightning.records import ToolCall


@dataclass
class Options:
    size: int = 1


class Module(CausalLMModule):
    def __init__(self, model_name: str = "tiny-llama", options: Options | None = None, other: object = None,
                 rate: float = 0.5) -> None:
        super().__init__()
        self.save_options(ignore=["other"], options=options)


def test_construction_loads_nothing_and_options_become_plain_dicts():
    module = Module(options=Options(3), other=object())
    assert module._tokenizer is None
    assert dict(module.hparams) == {"model_name": "tiny-llama", "rate": 0.5, "options": {"size": 3}}
    assert Module().hparams.options is None


def test_the_tokenizer_and_the_recorded_format_come_from_the_model_source(tmp_path, smollm2_tokenizer):
    module = Module()
    assert module.tokenizer is module.tokenizer and module.tokenizer.pad_token is not None
    assert module.recorded_prompt_format is None  # a built-in name records nothing
    write_format_record(tmp_path, "chat_template", smollm2_tokenizer)
    assert Module(model_name=str(tmp_path)).recorded_prompt_format == "chat_template"


def test_only_the_tensors_move():
    gold = [((ToolCall("f", {}),),)]
    moved = Module().transfer_batch_to_device({"input_ids": torch.ones(1, 2), "gold": gold}, torch.device("cpu"), 0)
    assert moved["gold"] is gold and torch.equal(moved["input_ids"], torch.ones(1, 2))


def test_a_non_finite_loss_names_the_step_and_batch():
    module = Module()
    module.check_finite(torch.tensor(1.0), "PKT loss", 0, "advice")
    with pytest.raises(FloatingPointError, match=r"PKT loss is inf at global step 0, batch index 7 \(epoch 0\).*Do X"):
        module.check_finite(torch.tensor(float("inf")), "PKT loss", 7, "Do X.")
