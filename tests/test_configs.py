"""Every shipped YAML under configs/ parses with the CLI and instantiates (Trainer, model,
DataModule) without loading any weights: recipes alone, strategy files on top of the tiny
recipe. configs/eval/*.yaml belong to ``python -m tl_lightning.evaluate`` and are only parsed here."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tl_lightning.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL_YAML = sorted(CONFIGS.rglob("*.yaml"))
RECIPES = [p for p in ALL_YAML if "model" in (yaml.safe_load(p.read_text()) or {})]
STRATEGIES = sorted((CONFIGS / "strategy").glob("*.yaml"))
TINY = CONFIGS / "demo" / "pkt_tiny.yaml"


def rel(path: Path) -> str:
    return str(path.relative_to(CONFIGS))


def instantiate(tmp_path, *configs: Path, cpu: bool = False):
    args = [arg for c in configs for arg in ("--config", str(c))]
    args.append(f"--trainer.default_root_dir={tmp_path}")
    if cpu:  # GPU recipes: same classes, instantiated on this CPU-only machine
        args += ["--trainer.accelerator=cpu", "--trainer.devices=1"]
    return main(args, run=False)


def test_every_yaml_is_a_recipe_a_strategy_or_an_eval_config():
    others = [rel(p) for p in ALL_YAML if p not in RECIPES and p not in STRATEGIES and p.parent.name != "eval"]
    assert not others, f"configs that no test instantiates: {others}"
    assert {"pkt.yaml", "demo/pkt.yaml", "demo/pkt_tiny.yaml"} <= {rel(p) for p in RECIPES}


@pytest.mark.parametrize("path", RECIPES, ids=rel)
def test_recipe_instantiates_without_loading_weights(tmp_path, path):
    raw = yaml.safe_load(path.read_text())
    cli = instantiate(tmp_path, path, cpu=raw.get("trainer", {}).get("accelerator") == "gpu")
    init_args = raw["model"]["init_args"]
    assert type(cli.model).__module__ + "." + type(cli.model).__name__ == raw["model"]["class_path"]
    assert cli.model.hparams.model_name == init_args["model_name"]
    assert getattr(cli.model, "model", None) is None  # weights load later, in configure_model
    for key, value in raw.get("data", {}).items():
        assert getattr(cli.datamodule, key) == value, key
    assert cli.trainer.checkpoint_callback.save_last


def test_paper_recipe_has_the_authors_settings(tmp_path):
    cli = instantiate(tmp_path, CONFIGS / "pkt.yaml", cpu=True)
    hp = cli.model.hparams
    assert (hp.lr, hp.weight_decay, tuple(hp.betas), hp.warmup_ratio) == (1e-6, 0.01, (0.9, 0.95), 0.01)
    assert hp.gradient_checkpointing and hp.dtype == "bfloat16"
    assert cli.datamodule.w_max == 9.0 and cli.datamodule.batch_size == 1 and cli.datamodule.mae
    assert cli.trainer.max_epochs == 1
    assert type(cli.trainer.strategy).__name__ == "ModelParallelStrategy"


@pytest.mark.parametrize("path", STRATEGIES, ids=rel)
def test_strategy_overlays_the_tiny_recipe(tmp_path, path):
    cli = instantiate(tmp_path, TINY, path)
    expected = yaml.safe_load(path.read_text())["trainer"]["strategy"]["class_path"].rsplit(".", 1)[1]
    assert type(cli.trainer.strategy).__name__ == expected
    assert cli.trainer.num_devices == 2


@pytest.mark.parametrize("path", [p for p in ALL_YAML if p.parent.name == "eval"], ids=rel)
def test_eval_config_parses(path):
    assert isinstance(yaml.safe_load(path.read_text()), dict)


# Recipes whose data is the synthetic world or a benchmark file (the reproduce recipes get the real
# training mix from their driver): their generation budget is checked against the gold answers.
BUDGETED = [p for p in ALL_YAML if p.parent.name != "reproduce"
            and "max_new_tokens" in (yaml.safe_load(p.read_text()).get("model") or {}).get("init_args", {})]


@pytest.mark.parametrize("path", BUDGETED, ids=rel)
def test_generation_budget_holds_the_gold_answers(path, smollm2_tokenizer, request):
    """max_new_tokens fits 99% of the gold answers of the recipe's own prompts (SmolLM2 tokens,
    end marker included), in the recipe's prompt format, or in both when it defers to the model's."""
    from tl_lightning.data.datamodule import ToolUseDataModule, truncated_answers_warning

    raw = yaml.safe_load(path.read_text())
    if raw["data"].get("stage") == "env":  # multi-turn: each gold step must fit one turn's budget
        return check_turn_budget(raw, smollm2_tokenizer)
    data = dict(raw["data"], stage="eval" if raw["data"].get("stage", "sft") == "sft" else raw["data"]["stage"])
    if "shared/data/" in (data.get("data_path") or ""):  # ../shared/data/... relative to the repository
        data["data_path"] = str(request.getfixturevalue("shared_data") / data["data_path"].split("shared/data/")[1])
    asked = data.pop("prompt_format", None)
    for prompt_format in [asked] if asked else ["codellama", "chat_template"]:
        dm = ToolUseDataModule(**data, prompt_format=prompt_format)
        dm.connect(smollm2_tokenizer)
        dm.setup("fit")
        lengths = [p.answer_length for p in dm.train_items + dm.val_items]
        assert truncated_answers_warning(lengths, raw["model"]["init_args"]["max_new_tokens"]) is None


def check_turn_budget(raw: dict, tokenizer) -> None:
    """An ``env`` recipe's ``max_new_tokens`` (per turn) fits 99% of the gold steps of its
    environment's tasks, in its prompt format."""
    from lightning.pytorch.cli import instantiate_class

    from tl_lightning.data.datamodule import answer_length, truncated_answers_warning
    from tl_lightning.records import Message, Trajectory

    init = raw["model"]["init_args"]
    env = instantiate_class((), init["environment"])
    lengths = [answer_length(Trajectory(t.id, t.tools, t.messages + (Message("assistant", calls=step[0]),)),
                             len(t.messages), tokenizer, raw["data"]["prompt_format"])
               for t in env.tasks for step in t.steps]
    assert lengths and truncated_answers_warning(lengths, init["max_new_tokens"]) is None


def test_sbatch_requeues_resumes_and_its_arguments_parse(tmp_path):
    path = CONFIGS / "slurm" / "pkt.sbatch"
    text = path.read_text()
    assert "#SBATCH --signal=SIGUSR1@90" in text and "#SBATCH --requeue" in text
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    command = text[text.index("srun python train.py fit"):].replace("\\\n", " ")
    slurm = {"${SLURM_NNODES}": "2", "${SLURM_NTASKS_PER_NODE}": "8", "${SLURM_NTASKS}": "16"}
    for name, value in slurm.items():
        command = command.replace(f'"{name}"', value)
    args = shlex.split(command)
    assert args[:4] == ["srun", "python", "train.py", "fit"] and args[-2:] == ["--ckpt_path", "last"]
    args = [a.replace("configs/", f"{CONFIGS}/", 1) for a in args[4:-2]]
    cli = main([*args, f"--trainer.default_root_dir={tmp_path}", "--trainer.accelerator=cpu"], run=False)
    assert cli.trainer.num_nodes == 2 and cli.trainer.num_devices == 8
    assert cli.trainer.strategy._data_parallel_size == 16
