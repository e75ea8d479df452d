"""ToolUseDataModule: split, overlength, bucketing, packing, resume, and the batch contract."""

from __future__ import annotations

import random
import warnings

import pytest
import torch

from tl_lightning.data import synthetic, world
from tl_lightning.data.datamodule import (
    ToolUseDataModule,
    collate_sft,
    gold_turn_index,
    make_prompts,
    model_inputs,
    pack_rows,
    padding_waste,
    split_by_trajectory,
    tokenize_samples,
    truncated_answers_warning,
)
from tl_lightning.data.mae import apply_mae
from tl_lightning.data.render import render_prompt
from tl_lightning.data.sampling import ResumableDataLoader
from tl_lightning.data.tokenize import TokenizedSample
from tl_lightning.records import DataError


def _dm(tokenizer, **kw) -> ToolUseDataModule:
    dm = ToolUseDataModule(**{"synthetic_size": 48, "batch_size": 4, "max_length": 1024, **kw})
    dm.connect(tokenizer)
    dm.setup("fit")
    return dm


def _fake_sample(rng: random.Random, n: int, vocab: int = 100) -> TokenizedSample:
    ids = [rng.randrange(1, vocab) for _ in range(n)]
    target_from = n // 2
    labels = [-100] * target_from + ids[target_from:]
    return TokenizedSample(input_ids=ids, labels=labels,
                           loss_weights=[0.0] * target_from + [1.0] * (n - target_from),
                           key_mask=[i == target_from for i in range(n)], target_turns=1)


# ---------------------------------------------------------------- pure functions


def test_split_is_by_trajectory_seeded_and_complete():
    trajs = synthetic.generate_trajectories(50, seed=0)
    train, val = split_by_trajectory(trajs, 0.2, seed=3)
    assert len(val) == 10 and len(train) == 40
    assert {t.id for t in train}.isdisjoint({t.id for t in val})
    assert {t.id for t in train} | {t.id for t in val} == {t.id for t in trajs}
    assert split_by_trajectory(trajs, 0.2, seed=3) == (train, val)
    assert split_by_trajectory(trajs, 0.2, seed=4)[1] != val
    # per-turn samples of one conversation never straddle the split
    val_ids = {t.id for t in val}
    train_samples, _ = apply_mae(train, layout="per_turn")
    assert not any(s.trajectory.id in val_ids for s in train_samples)
    assert len(split_by_trajectory(trajs[:3], 0.01, seed=0)[1]) == 1  # never an empty val split by rounding
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_trajectory(trajs, 1.0, seed=0)


@pytest.mark.parametrize("bad", [{"stage": "ppo"}, {"on_overlength": "truncate"}, {"prompt_format": "llama"},
                                 {"mae_layout": "turns"}, {"packing": True, "stage": "rl"}, {"batch_size": 0}])
def test_bad_options_fail_at_construction(bad):
    with pytest.raises(ValueError):
        ToolUseDataModule(**bad)


def test_pack_rows_fits_every_sample_once():
    rng = random.Random(0)
    lengths = [rng.randint(5, 100) for _ in range(200)]
    rows = pack_rows(lengths, 128)
    assert sorted(i for r in rows for i in r) == list(range(200))
    assert all(sum(lengths[i] for i in r) <= 128 for r in rows)
    assert len(rows) <= 1.25 * sum(lengths) / 128 + 1  # first-fit decreasing packs tightly
    with pytest.raises(ValueError, match="max_length"):
        pack_rows([10, 200], 128)


def test_collate_sft_pads_right_and_restarts_positions_when_packed():
    rng = random.Random(1)
    a, b, c = _fake_sample(rng, 6), _fake_sample(rng, 4), _fake_sample(rng, 5)
    batch = collate_sft([(a, b), (c,)], pad_id=0, packed=True)
    assert batch["input_ids"].shape == (2, 10)
    assert batch["input_ids"][0].tolist() == a.input_ids + b.input_ids
    assert batch["position_ids"][0].tolist() == list(range(6)) + list(range(4))
    assert batch["position_ids"][1].tolist() == list(range(5)) + list(range(5))  # the padding run restarts too
    assert batch["attention_mask"][1].tolist() == [1] * 5 + [0] * 5
    assert batch["labels"][1, 5:].eq(-100).all() and batch["loss_weights"][1, 5:].eq(0).all()
    assert batch["labels"][0, 6] == -100  # the first token of b is never predicted from a
    assert batch["key_mask"].dtype == torch.bool and batch["loss_weights"].dtype == torch.float
    assert "position_ids" not in collate_sft([(a,), (c,)], pad_id=0, packed=False)
    assert set(model_inputs(batch)) == {"input_ids", "position_ids", "use_cache"}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_batch_gives_the_same_per_sample_loss_as_unpacked(attn):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         attn_implementation=attn)
    model = LlamaForCausalLM(config).eval()
    rng = random.Random(2)
    samples = [_fake_sample(rng, n) for n in (9, 5, 12, 7)]

    def per_sample_losses(batch, spans):
        with torch.no_grad():
            logits = model(**model_inputs(batch)).logits
        ce = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), batch["labels"][:, 1:],
                                               ignore_index=-100, reduction="none")
        return [ce[b, s:e - 1].sum().item() for b, s, e in spans]

    unpacked = collate_sft([(s,) for s in samples], pad_id=0, packed=False)
    ref = per_sample_losses(unpacked, [(b, 0, len(s.input_ids)) for b, s in enumerate(samples)])
    packed = collate_sft([(samples[0], samples[1]), (samples[2], samples[3])], pad_id=0, packed=True)
    got = per_sample_losses(packed, [(0, 0, 9), (0, 9, 14), (1, 0, 12), (1, 12, 19)])
    assert got == pytest.approx(ref, rel=1e-5, abs=1e-5)
    # without the restarted positions the second sample would see the first: a real difference
    leaky = {k: v for k, v in packed.items() if k != "position_ids"}
    assert per_sample_losses(leaky, [(0, 9, 14)])[0] != pytest.approx(ref[1], rel=1e-4)


# ---------------------------------------------------------------- the DataModule on the synthetic world


def test_sft_batches_follow_the_contract(smollm2_tokenizer):
    dm = _dm(smollm2_tokenizer)
    rep = dm.report
    assert rep["trajectories"] == 48 and rep["train_trajectories"] + rep["val_trajectories"] == 48
    assert rep["mae"]["train"]["dropped_turns"] > 0  # the synthetic world has failed calls
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "labels", "loss_weights", "key_mask"}
    B, T = batch["input_ids"].shape
    assert B == 4 and T <= 1024
    for k in ("input_ids", "attention_mask", "labels"):
        assert batch[k].dtype == torch.long and batch[k].shape == (B, T)
    pad = batch["attention_mask"] == 0
    assert batch["labels"][pad].eq(-100).all()
    assert (batch["loss_weights"] == 0).eq(batch["labels"] == -100).all()
    assert not batch["key_mask"][batch["labels"] == -100].any()
    assert batch["key_mask"].any() and batch["loss_weights"].max() > 1  # PKT up-weights key tokens
    assert len(dm.val_dataloader()) >= 1


def test_overlength_samples_are_dropped_and_counted_or_raise(smollm2_tokenizer):
    full = _dm(smollm2_tokenizer)
    lengths = sorted(len(row[0].input_ids) for row in full.train_items + full.val_items)
    cut = lengths[len(lengths) // 2]
    dm = _dm(smollm2_tokenizer, max_length=cut)
    kept = len(dm.train_items) + len(dm.val_items)
    assert dm.report["overlength_dropped"] == sum(n > cut for n in lengths) > 0
    assert kept == sum(n <= cut for n in lengths)
    assert all(len(row[0].input_ids) <= cut for row in dm.train_items)
    with pytest.raises(DataError, match="max_length"):
        _dm(smollm2_tokenizer, max_length=cut, on_overlength="raise")


def test_bucketing_and_packing_reduce_padding(smollm2_tokenizer):
    plain = padding_waste(_dm(smollm2_tokenizer, synthetic_size=96, bucket_batches=1).train_dataloader())
    bucketed = padding_waste(_dm(smollm2_tokenizer, synthetic_size=96).train_dataloader())
    packed = padding_waste(_dm(smollm2_tokenizer, synthetic_size=96, packing=True).train_dataloader())
    assert bucketed < plain / 2 and bucketed < 0.1
    assert packed < 0.1
    print(f"padding waste: no bucketing {plain:.3f}, bucketed {bucketed:.3f}, packed {packed:.3f}")


def test_packed_datamodule_keeps_every_supervised_token(smollm2_tokenizer):
    plain, packed = _dm(smollm2_tokenizer), _dm(smollm2_tokenizer, packing=True)
    assert max(sum(len(s.input_ids) for s in row) for row in packed.train_items) <= 1024
    count = lambda dm: sum(int((b["labels"] != -100).sum()) for b in dm.train_dataloader())  # noqa: E731
    assert count(plain) == count(packed) > 0
    batch = next(iter(packed.train_dataloader()))
    assert batch["position_ids"].shape == batch["input_ids"].shape


@pytest.mark.parametrize("stage", ["rl", "eval"])
def test_prompt_stages_are_left_padded_with_gold(smollm2_tokenizer, stage):
    dm = _dm(smollm2_tokenizer, stage=stage, synthetic_size=16)
    loader = dm.val_dataloader() if stage == "eval" else dm.train_dataloader()
    batch = next(iter(loader))
    extra = {"bfcl_ground_truth"} if stage == "eval" else set()
    assert set(batch) == {"input_ids", "attention_mask", "ids", "gold", "tools"} | extra
    mask = batch["attention_mask"]
    assert mask[:, -1].eq(1).all()  # left padding: every prompt ends at the last column
    assert (mask[:, 1:] >= mask[:, :-1]).all()
    if stage == "eval":  # data_path=None: the world's held-out-domain prompts, scored at their last turn
        records = {t.id: t for t in world.generate_prompts(16, seed=0, split="heldout_domains")}
    else:  # its training trajectories, a prompt at every correct call turn
        records = {t.id: t for t in world.generate_trajectories(16, seed=0)}
    for pid, gold, tools, ids, m in zip(batch["ids"], batch["gold"], batch["tools"], batch["input_ids"], mask):
        traj_id, _, turn = pid.partition("/turn")
        traj = records[traj_id]
        index = traj.assistant_turns()[int(turn) - 1] if turn else len(traj.messages) - 1
        assert gold == traj.messages[index].acceptable() and tools == traj.tools
        text = render_prompt(traj, index, "codellama", smollm2_tokenizer)
        assert ids[m.bool()].tolist() == smollm2_tokenizer(text, add_special_tokens=False)["input_ids"]
    if stage == "eval":
        assert batch["bfcl_ground_truth"] == [None] * len(batch["ids"])  # not a BFCL item
        assert dm.report["train_trajectories"] == 0 and dm.report["val_trajectories"] == 16
        with pytest.raises(DataError, match="eval"):
            dm.train_dataloader()


def test_eval_is_one_prompt_per_item_at_the_last_turn_whatever_mae(smollm2_tokenizer, shared_data):
    """RoTBench Third_Turn: 70 multi-turn items, one prompt each at the last assistant turn, even
    with MAE on (which would make one prompt per kept call turn)."""
    from tl_lightning.data.sources import read_trajectories
    from tl_lightning.data.tokenize import encode_prompt

    path = shared_data / "RoTBench/Third_Turn/clean.json"
    dm = _dm(smollm2_tokenizer, data_path=str(path), format="rotbench", stage="eval", mae=True, max_length=8192)
    trajs = read_trajectories(path, format="rotbench")
    assert len(trajs) == 70 and all(len(t.assistant_turns()) > 1 for t in trajs)
    assert [p.id for p in dm.val_items] == [t.id for t in trajs]
    for prompt, traj in zip(dm.val_items, trajs):
        last = traj.assistant_turns()[-1]
        assert prompt.gold == traj.messages[last].acceptable()
        text = render_prompt(traj, last, "codellama", smollm2_tokenizer)
        assert prompt.input_ids == encode_prompt(text, smollm2_tokenizer)


def test_toolalpaca_items_are_scored_at_the_first_assistant_turn(smollm2_tokenizer, tmp_path):
    from dataclasses import replace

    from tl_lightning.data.sources import write_jsonl

    multi_turn = [t for t in synthetic.generate_trajectories(12, seed=0) if len(t.assistant_turns()) > 1][:3]
    assert [gold_turn_index(t) for t in multi_turn] == [t.assistant_turns()[-1] for t in multi_turn]
    as_toolalpaca = [replace(t, meta={**t.meta, "format": "toolalpaca"}) for t in multi_turn]
    assert [gold_turn_index(t) for t in as_toolalpaca] == [t.assistant_turns()[0] for t in multi_turn]
    write_jsonl(as_toolalpaca, tmp_path / "toolalpaca.jsonl")  # the normalized file keeps meta["format"]
    dm = _dm(smollm2_tokenizer, data_path=str(tmp_path / "toolalpaca.jsonl"), stage="eval")
    assert [p.gold for p in dm.val_items] == [t.messages[t.assistant_turns()[0]].acceptable() for t in multi_turn]


def test_eval_batches_carry_bfcl_ground_truth(smollm2_tokenizer, shared_data):
    from tl_lightning.data.sources import read_trajectories

    path = shared_data / "BFCL_v3/BFCL_v3_parallel.json"
    dm = _dm(smollm2_tokenizer, data_path=str(path), format="bfcl", stage="eval", batch_size=8)
    truth = {t.id: t.meta["bfcl_ground_truth"] for t in read_trajectories(path, format="bfcl")}
    assert len(dm.val_items) == len(truth) == 200
    batch = next(iter(dm.test_dataloader()))
    assert batch["bfcl_ground_truth"] == [truth[i] for i in batch["ids"]]


def test_eval_never_drops_an_overlong_prompt(smollm2_tokenizer):
    with pytest.raises(DataError, match="world-prompt-heldout_domains-0-00000-step1.*max_length=8"):
        _dm(smollm2_tokenizer, stage="eval", synthetic_size=4, max_length=8, on_overlength="drop")
    rl = _dm(smollm2_tokenizer, stage="rl", synthetic_size=4, max_length=8, on_overlength="drop", val_fraction=0.0)
    assert rl.report["overlength_dropped"] == 4  # training stages may drop (and count)


def test_prompt_is_the_prefix_of_the_sft_tokens(smollm2_tokenizer):
    """What the policy sees at generation time is exactly what SFT trained on before the call."""
    samples, _ = apply_mae(synthetic.generate_prompts(12, seed=0))
    common = dict(prompt_format="codellama", max_length=4096, on_overlength="raise")
    tokenized, _ = tokenize_samples(samples, smollm2_tokenizer, w_max=9.0, **common)
    prompts, _ = make_prompts(samples, smollm2_tokenizer, **common)
    assert len(tokenized) == len(prompts) == 12
    for sample, prompt in zip(tokenized, prompts):
        first_target = next(i for i, label in enumerate(sample.labels) if label != -100)
        assert sample.input_ids[:first_target] == prompt.input_ids


def test_prompt_format_defaults_to_the_models_record(smollm2_tokenizer):
    """prompt_format=None: the format the model was trained with (connect), else codellama; a
    config naming another format than the model's record is obeyed, with a warning."""
    def used(asked, recorded):
        dm = ToolUseDataModule(stage="rl", synthetic_size=4, prompt_format=asked, val_fraction=0.0)
        dm.connect(smollm2_tokenizer, recorded)
        dm.setup("fit")
        return dm.hparams.prompt_format, smollm2_tokenizer.decode(dm.train_items[0].input_ids)

    assert used(None, None)[0] == "codellama"
    fmt, text = used(None, "chat_template")
    assert fmt == "chat_template" and text.endswith("<|im_start|>assistant\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert used("chat_template", "chat_template")[0] == "chat_template"
    with pytest.warns(UserWarning, match="prompt_format='codellama' was asked for, but the model was trained "
                                         "with 'chat_template'"):
        fmt, text = used("codellama", "chat_template")
    assert fmt == "codellama" and text.endswith("\nAssistant:")


def test_gold_answer_lengths_and_the_truncation_warning(smollm2_tokenizer):
    dm = _dm(smollm2_tokenizer, stage="rl", data_path="synthetic:classic?n=16", prompt_format="chat_template",
             val_fraction=0.0)
    samples, _ = apply_mae(synthetic.generate_prompts(16, seed=0))
    tokenized, _ = tokenize_samples(samples, smollm2_tokenizer, prompt_format="chat_template", w_max=9.0,
                                    max_length=4096, on_overlength="raise")
    # the gold answer as SFT supervises it: the call and the end marker
    assert [p.answer_length for p in dm.train_items] == [sum(x != -100 for x in t.labels) for t in tokenized]
    lengths = [p.answer_length for p in dm.train_items]
    assert truncated_answers_warning(lengths, max(lengths)) is None
    message = truncated_answers_warning(lengths, min(lengths))
    assert message.startswith(f"{sum(n > min(lengths) for n in lengths)} of 16 gold answers")
    assert f"max_new_tokens={min(lengths)} (99th percentile: {max(lengths)} tokens)" in message
    assert truncated_answers_warning([10] * 99 + [50], 10) is None  # 1% may be cut off
    assert truncated_answers_warning([10] * 98 + [50] * 2, 10).startswith("2 of 100")


# ---------------------------------------------------------------- mid-epoch resume


def _fingerprint(batch) -> list[int]:
    return [hash(tuple(row.tolist())) for row in batch["input_ids"]]


def test_loader_state_resumes_mid_epoch_exactly(smollm2_tokenizer):
    dm = _dm(smollm2_tokenizer, batch_size=2)
    loader = dm.train_dataloader()
    assert isinstance(loader, ResumableDataLoader)
    loader.batch_sampler.sampler.set_epoch(1)
    full = [_fingerprint(b) for b in loader]
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    assert state == {"epoch": 1, "batches_yielded": 3}

    fresh = _dm(smollm2_tokenizer, batch_size=2).train_dataloader()
    fresh.load_state_dict(state)
    fresh.batch_sampler.sampler.set_epoch(1)
    rest = [_fingerprint(b) for b in fresh]
    assert rest == full[3:]
    assert fresh.state_dict() == {"epoch": 1, "batches_yielded": len(full)}
    # the next epoch starts from its beginning, in a new order
    fresh.batch_sampler.sampler.set_epoch(2)
    epoch2 = [_fingerprint(b) for b in fresh]
    assert len(epoch2) == len(full) and epoch2 != full
    # a state from another epoch does not skip anything
    other = _dm(smollm2_tokenizer, batch_size=2).train_dataloader()
    other.load_state_dict({"epoch": 0, "batches_yielded": 3})
    other.batch_sampler.sampler.set_epoch(1)
    assert [_fingerprint(b) for b in other] == full


def test_resume_with_worker_processes(smollm2_tokenizer):
    loader = _dm(smollm2_tokenizer, num_workers=2).train_dataloader()
    full = [_fingerprint(b) for b in _dm(smollm2_tokenizer).train_dataloader()]
    it = iter(loader)
    assert [_fingerprint(next(it)) for _ in range(4)] == full[:4]
    state = loader.state_dict()  # workers prefetch ahead; the count is what was handed out
    assert state["batches_yielded"] == 4
    fresh = _dm(smollm2_tokenizer, num_workers=2).train_dataloader()
    fresh.load_state_dict(state)
    assert [_fingerprint(b) for b in fresh] == full[4:]


def test_lightning_fit_resumed_from_a_mid_epoch_checkpoint_sees_the_same_batches(smollm2_tokenizer, tmp_path):
    import lightning as L

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.seen: list = []

        def training_step(self, batch, batch_idx):
            self.seen.append((self.current_epoch, _fingerprint(batch)))
            return (self.w * batch["loss_weights"].sum()) ** 2

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    def fit(max_steps, ckpt_path=None, callbacks=()):
        module = Recorder()
        trainer = L.Trainer(max_steps=max_steps, limit_val_batches=0, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=list(callbacks), default_root_dir=tmp_path,
                            enable_checkpointing=bool(callbacks))
        trainer.fit(module, datamodule=_dm(smollm2_tokenizer, batch_size=8), ckpt_path=ckpt_path)
        return module.seen

    per_epoch = -(-len(_dm(smollm2_tokenizer, batch_size=8).train_items) // 8)
    total = per_epoch + 2  # into the second epoch
    reference = fit(total)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=per_epoch - 2,
                                               save_top_k=-1, filename="{step}")
    fit(per_epoch - 2, callbacks=[ckpt])
    resumed = fit(total, ckpt_path=str(tmp_path / f"step={per_epoch - 2}.ckpt"))
    assert resumed == reference[per_epoch - 2:]
    assert reference[0][1] != reference[per_epoch][1]  # epoch 2 is reshuffled


def test_lightning_injects_its_distributed_sampler_into_the_bucketing(smollm2_tokenizer):
    """Under DDP Lightning rebuilds the train loader with a DistributedSampler (through the
    ``sampler`` argument of the batch sampler); each rank then buckets its own share."""
    from lightning.fabric.utilities.data import _replace_dunder_methods
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

    dm = _dm(smollm2_tokenizer)
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = dm.train_dataloader()  # as Lightning calls the hook
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        ranked = _update_dataloader(loader, sampler)
        assert isinstance(ranked, ResumableDataLoader) and ranked.batch_sampler.sampler is sampler
        assert len(ranked) == -(-len(loader.dataset) // 2 // 4)
        seen += [i for batch in ranked.batch_sampler for i in batch]
    assert sorted(set(seen)) == list(range(len(loader.dataset)))


def test_reads_several_files_and_reports_skipped_records(smollm2_tokenizer, tmp_path):
    from tl_lightning.data.sources import write_jsonl

    write_jsonl(synthetic.generate_trajectories(10, seed=1), tmp_path / "a.jsonl")
    write_jsonl(synthetic.generate_trajectories(6, seed=2), tmp_path / "b.jsonl")
    with open(tmp_path / "b.jsonl", "a") as f:
        f.write('{"messages": [\n')  # a truncated record
    with pytest.raises(DataError, match="b.jsonl"):
        _dm(smollm2_tokenizer, data_path=[str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")])
    dm = _dm(smollm2_tokenizer, data_path=[str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], on_error="skip")
    assert dm.report["trajectories"] == 16 and dm.report["read_skipped"] == 1


def test_env_stage_hands_out_the_environments_tasks(smollm2_tokenizer):
    from tl_lightning.environments import SyntheticWorldEnv

    env = SyntheticWorldEnv(n=10)
    dm = ToolUseDataModule(stage="env", batch_size=3, val_fraction=0.2, prompt_format="chat_template")
    dm.connect(smollm2_tokenizer, environment=env)
    dm.setup("fit")
    assert dm.report == {"tasks": 10, "train_items": 8, "val_items": 2}
    batches = list(dm.train_dataloader())
    tasks = [i for b in batches for i in b["tasks"]]
    assert sorted(tasks + [i for b in dm.val_dataloader() for i in b["tasks"]]) == list(range(10))
    assert sorted(len(b["tasks"]) for b in batches) == [2, 3, 3]  # batch order shuffled
    for b in batches:
        assert b.keys() == {"tasks", "ids", "prompt_format"} and b["prompt_format"] == "chat_template"
        assert b["ids"] == [env.tasks[i].id for i in b["tasks"]]


def test_env_stage_without_an_environment_is_a_clear_error(smollm2_tokenizer):
    dm = ToolUseDataModule(stage="env")
    dm.connect(smollm2_tokenizer)
    with pytest.raises(DataError, match="environment"):
        dm.setup("fit")
