"""prompt_record.py: the record of a model's prompt format, in an exported folder and in a checkpoint."""

from __future__ import annotations

import json

import torch

from tl_lightning.data.prompt_record import FORMAT_RECORD, checkpoint_prompt_format, saved_prompt_format, write_format_record


def test_a_folder_record_round_trips_with_its_call_syntax(tmp_path, smollm2_tokenizer):
    path = write_format_record(tmp_path, "codellama", smollm2_tokenizer)
    assert path == tmp_path / FORMAT_RECORD
    assert json.loads(path.read_text()) == {"prompt_format": "codellama", "call_syntax": "python"}
    assert saved_prompt_format(tmp_path) == "codellama"


def test_no_record_is_none(tmp_path):
    assert saved_prompt_format(tmp_path) is None  # a folder of a model not trained here
    assert saved_prompt_format(tmp_path / "missing") is None
    assert saved_prompt_format("tiny-llama") is None  # a built-in name or hub id is no folder


def test_a_checkpoint_records_the_datamodule_format(tmp_path):
    with_format, without = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    torch.save({"datamodule_hyper_parameters": {"prompt_format": "chat_template"}, "state_dict": {}}, with_format)
    torch.save({"state_dict": {}}, without)  # fit without a DataModule
    assert checkpoint_prompt_format(with_format) == "chat_template"
    assert checkpoint_prompt_format(without) is None
