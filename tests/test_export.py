"""export.py: HF folders that reload with plain transformers / peft and give the same logits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tl_lightning.data.prompt_record import FORMAT_RECORD, checkpoint_prompt_format, saved_prompt_format
from tl_lightning.export import HFExport, export_checkpoint, export_pretrained, main
from tl_lightning.modeling import TINY_LLAMA, LoraOptions, load_model, load_tokenizer

LORA = LoraOptions(r=4, dropout=0.0, target_modules=("q_proj", "v_proj", "down_proj"))
REPO = Path(__file__).resolve().parents[1]

# Two gloo ranks (Lightning re-runs this script for rank 1): PKT with LoRA under FSDP2, HFExport
# at fit end, then rank 0 saves the logits of the still-sharded model (a collective forward).
FSDP2_EXPORT_SCRIPT = """
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.utils.data import DataLoader

from tl_lightning.export import HFExport
from tl_lightning.modeling import TINY_LLAMA, LoraOptions
from tl_lightning.pkt import PKTModule

out = Path(sys.argv[1])
torch.set_num_threads(1)
ids = torch.randint(0, 49152, (2, 9), generator=torch.Generator().manual_seed(0))
batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids,
         "loss_weights": torch.ones(ids.shape), "key_mask": torch.zeros(ids.shape, dtype=torch.bool)}
lora = LoraOptions(r=4, dropout=0.0, target_modules=("q_proj", "v_proj", "down_proj"))
module = PKTModule(model_name=TINY_LLAMA, lora=lora, lr=1e-2, warmup_ratio=0.0)
trainer = pl.Trainer(accelerator="cpu", devices=2, max_steps=2, logger=False,
                     strategy=ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1),
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     callbacks=[HFExport(str(out / "hf"))], default_root_dir=out)
trainer.fit(module, train_dataloaders=DataLoader([batch] * 4, batch_size=None))
from torch.distributed.tensor import DTensor
assert isinstance(next(module.model.parameters()), DTensor), "the model should be sharded"
module.model.eval()
with torch.no_grad():
    logits = module.model(input_ids=ids).logits
if trainer.is_global_zero:
    torch.save(logits, out / "logits.pt")
"""


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TINY_LLAMA)


@pytest.fixture(scope="module")
def input_ids() -> torch.Tensor:
    return torch.randint(0, 49152, (2, 9), generator=torch.Generator().manual_seed(0))


def perturb_lora_b(model, std: float = 0.2) -> None:
    """LoRA B starts at zero, which would make merging a no-op: give it real values."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * std)


@torch.no_grad()
def logits(model, input_ids) -> torch.Tensor:
    model.eval()
    return model(input_ids=input_ids).logits


def reload_plain(folder):
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def assert_same_tokenizer(reloaded, tokenizer) -> None:
    assert reloaded.chat_template == tokenizer.chat_template
    messages = [{"role": "user", "content": "weather in Paris?"}]
    assert reloaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert reloaded.pad_token_id == tokenizer.pad_token_id


def test_plain_model_reloads_bit_identical(tmp_path, tokenizer, input_ids):
    model = load_model(TINY_LLAMA)
    out = export_pretrained(model, tokenizer, tmp_path / "plain")
    reloaded, reloaded_tokenizer = reload_plain(out)
    assert torch.equal(logits(reloaded, input_ids), logits(model, input_ids))
    assert_same_tokenizer(reloaded_tokenizer, tokenizer)


def test_merged_lora_reloads_with_plain_transformers(tmp_path, tokenizer, input_ids):
    model = load_model(TINY_LLAMA, lora=LORA, gradient_checkpointing=True)
    perturb_lora_b(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    expected = logits(model, input_ids)
    with model.disable_adapter():
        base = logits(model, input_ids)
    assert (expected - base).abs().max() > 1e-2, "the adapter must change the logits for this test to mean anything"

    out = export_pretrained(model, tokenizer, tmp_path / "merged")
    assert not (out / "adapter_config.json").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["use_cache"] is True and "quantization_config" not in config
    reloaded, reloaded_tokenizer = reload_plain(out)
    assert not any("lora" in name for name, _ in reloaded.named_parameters())
    torch.testing.assert_close(logits(reloaded, input_ids), expected, rtol=0, atol=1e-5)
    assert_same_tokenizer(reloaded_tokenizer, tokenizer)
    # The training model is untouched: still adapters, same tensors.
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    torch.testing.assert_close(logits(model, input_ids), expected, rtol=0, atol=0)


def test_adapter_only_export_loads_with_peft(tmp_path, tokenizer, input_ids):
    from peft import AutoPeftModelForCausalLM

    model = load_model(TINY_LLAMA, lora=LORA)
    perturb_lora_b(model)
    out = export_pretrained(model, tokenizer, tmp_path / "adapter", merge_lora=False)
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()
    reloaded = AutoPeftModelForCausalLM.from_pretrained(out)
    torch.testing.assert_close(logits(reloaded, input_ids), logits(model, input_ids), rtol=0, atol=0)
    assert_same_tokenizer(AutoTokenizer.from_pretrained(out), tokenizer)


# 4-bit layers compute with the dequantized weight (float32 here): the plain model matches up to
# the merge's rounding. 8-bit layers quantize their inputs too, so only approximately.
@pytest.mark.parametrize(("quantization", "atol"), [("4bit", 1e-4), ("8bit", 1e-2)])
def test_qlora_merge_dequantizes_first(tmp_path, tokenizer, input_ids, quantization, atol):
    model = load_model(TINY_LLAMA, lora=LORA, quantization=quantization)
    perturb_lora_b(model)
    out = export_pretrained(model, tokenizer, tmp_path / "qlora")
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    reloaded, _ = reload_plain(out)
    torch.testing.assert_close(logits(reloaded, input_ids), logits(model, input_ids), rtol=0, atol=atol)
    # Dequantized weights differ from the original full-precision ones (what QLoRA trained on).
    original = load_model(TINY_LLAMA).state_dict()["model.layers.0.mlp.up_proj.weight"]
    exported = reloaded.state_dict()["model.layers.0.mlp.up_proj.weight"]
    assert not torch.equal(exported, original)
    torch.testing.assert_close(exported, original, rtol=0, atol=0.02)


def test_refuses_taken_folder_and_adapter_export_without_adapter(tmp_path, tokenizer):
    model = load_model(TINY_LLAMA)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "adapter_config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="not empty"):
        export_pretrained(model, tokenizer, tmp_path / "taken")
    out = export_pretrained(model, tokenizer, tmp_path / "taken", overwrite=True)
    assert not (out / "adapter_config.json").exists() and (out / "config.json").is_file()
    with pytest.raises(ValueError, match="no LoRA adapter"):
        export_pretrained(model, tokenizer, tmp_path / "adapter", merge_lora=False)


def test_the_folder_records_the_prompt_format(tmp_path, tokenizer):
    model = load_model(TINY_LLAMA)
    out = export_pretrained(model, tokenizer, tmp_path / "chat", prompt_format="chat_template")
    # SmolLM2's template has no tool_calls: calls are <tool_call> blocks we write ourselves
    assert json.loads((out / FORMAT_RECORD).read_text()) == {"prompt_format": "chat_template",
                                                             "call_syntax": "tool_call"}
    assert saved_prompt_format(out) == "chat_template"
    paper = export_pretrained(model, tokenizer, tmp_path / "paper", prompt_format="codellama")
    assert json.loads((paper / FORMAT_RECORD).read_text())["call_syntax"] == "python"
    unknown = export_pretrained(model, tokenizer, tmp_path / "unknown")
    assert not (unknown / FORMAT_RECORD).exists() and saved_prompt_format(unknown) is None
    assert saved_prompt_format(TINY_LLAMA) is None and saved_prompt_format("HuggingFaceTB/SmolLM2-135M") is None


@pytest.mark.slow
def test_the_prompt_format_travels_with_the_model(tmp_path, shared_data):
    """Trained in chat_template: the exported folder, the checkpoint and its export say so, and
    evaluation, PPO and predict default to it; asking for codellama warns."""
    import lightning.pytorch as pl

    from tl_lightning import evaluate
    from tl_lightning.cli import main as cli_main
    from tl_lightning.data.datamodule import ToolUseDataModule
    from tl_lightning.pkt import PKTModule
    from tl_lightning.ppo import IRMPPOModule

    module = PKTModule(model_name=TINY_LLAMA, lr=1e-3, warmup_ratio=0.0)
    data = ToolUseDataModule(synthetic_size=8, prompt_format="chat_template", batch_size=2, val_fraction=0.0)
    data.connect(module.tokenizer, module.recorded_prompt_format)
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[HFExport(str(tmp_path / "hf"))], default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    folder = tmp_path / "hf"
    assert saved_prompt_format(folder) == "chat_template"
    assert checkpoint_prompt_format(tmp_path / "last.ckpt") == "chat_template"
    assert saved_prompt_format(export_checkpoint(tmp_path / "last.ckpt", tmp_path / "from_ckpt")) == "chat_template"
    for reader in (PKTModule(model_name=str(folder)), IRMPPOModule(model_name=str(folder), lora=LORA),
                   evaluate.ToolCallEvaluator("rotbench", model_name=str(folder)),
                   evaluate.ToolCallEvaluator("rotbench", pkt_checkpoint=str(tmp_path / "last.ckpt"))):
        assert reader.recorded_prompt_format == "chat_template"
    assert evaluate.load_for_generation(str(folder))[2] == "chat_template"

    # train.py test --config configs/eval/...: the CLI hands the record to the DataModule
    cli = cli_main(["--config", str(REPO / "configs" / "eval" / "rotbench.yaml"), "--data.data_path=null",
                    "--data.synthetic_size=4", f"--model.init_args.model_name={folder}",
                    f"--trainer.default_root_dir={tmp_path}"], run=False)
    cli.before_test()
    cli.datamodule.setup("test")
    assert cli.datamodule.hparams.prompt_format == "chat_template"

    # python -m tl_lightning.evaluate run --model DIR
    run = ["run", "--benchmark", "toolalpaca", "--data", str(shared_data / "ToolAlpaca/data/eval_real.json"),
           "--model", str(folder), "--limit", "1", "--max_new_tokens", "2"]
    evaluate.main([*run, "--output_dir", str(tmp_path / "eval")])
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["settings"]["prompt_format"] == "chat_template"
    with pytest.warns(UserWarning, match="trained with 'chat_template'"):
        evaluate.main([*run, "--prompt_format", "codellama", "--output_dir", str(tmp_path / "asked")])
    assert json.loads((tmp_path / "asked" / "report.json").read_text())["settings"]["prompt_format"] == "codellama"


@pytest.mark.slow
def test_callback_and_checkpoint_export_of_a_pkt_run(tmp_path, tokenizer, input_ids):
    """HFExport at fit end, then the same model again from the .ckpt through the CLI."""
    pkt = pytest.importorskip("tl_lightning.pkt")
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    batch = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": input_ids,
        "loss_weights": torch.ones(input_ids.shape),
        "key_mask": torch.zeros(input_ids.shape, dtype=torch.bool),
    }
    module = pkt.PKTModule(model_name=TINY_LLAMA, lora=LORA, lr=1e-2, warmup_ratio=0.0)
    trainer = pl.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[HFExport(str(tmp_path / "hf"))], default_root_dir=tmp_path)
    trainer.fit(module, train_dataloaders=DataLoader([batch] * 3, batch_size=None))
    expected = logits(module.model, input_ids)
    with module.model.disable_adapter():
        assert (expected - logits(module.model, input_ids)).abs().max() > 1e-3, "training must move the adapter"

    reloaded, _ = reload_plain(tmp_path / "hf")
    torch.testing.assert_close(logits(reloaded, input_ids), expected, rtol=0, atol=1e-5)

    trainer.save_checkpoint(tmp_path / "last.ckpt")
    main(["--ckpt_path", str(tmp_path / "last.ckpt"), "--output", str(tmp_path / "cli")])
    torch.testing.assert_close(logits(reload_plain(tmp_path / "cli")[0], input_ids), expected, rtol=0, atol=1e-5)
    export_checkpoint(tmp_path / "last.ckpt", tmp_path / "cli_adapter", merge_lora=False)
    assert (tmp_path / "cli_adapter" / "adapter_config.json").is_file()

    taken = pl.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                       callbacks=[HFExport(str(tmp_path / "hf"))], default_root_dir=tmp_path)
    with pytest.raises(FileExistsError, match="not empty"):
        taken.fit(pkt.PKTModule(model_name=TINY_LLAMA, lora=LORA), train_dataloaders=DataLoader([batch], batch_size=None))


@pytest.mark.slow
@pytest.mark.multiprocess
def test_callback_gathers_an_fsdp2_sharded_model(tmp_path, input_ids):
    pytest.importorskip("tl_lightning.pkt")
    script = tmp_path / "fsdp2_export.py"
    script.write_text(FSDP2_EXPORT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    expected = torch.load(tmp_path / "logits.pt")
    reloaded, _ = reload_plain(tmp_path / "hf")
    torch.testing.assert_close(logits(reloaded, input_ids), expected, rtol=0, atol=1e-5)
