"""``synthetic:<split>`` source strings: the grammar, and every entry point reading them."""

from __future__ import annotations

import pytest

from tl_lightning.data import synthetic as classic
from tl_lightning.data.sources import detect_format, read_trajectories, read_trajectories_with_report
from tl_lightning.data.world import generate_prompts, generate_trajectories
from tl_lightning.data.world.spec import SyntheticSpec, is_synthetic_spec, parse_spec, read_spec
from tl_lightning.records import DataError


def test_grammar_and_defaults():
    assert parse_spec("synthetic:heldout_domains") == SyntheticSpec("synthetic", "heldout_domains", n=200)
    assert parse_spec("synthetic-sft:train?n=40&seed=3&error_rate=0.5&world_seed=2") == SyntheticSpec(
        "synthetic-sft", "train", n=40, seed=3, error_rate=0.5, world_seed=2)
    assert parse_spec("synthetic-sft:classic?n=5").n == 5
    assert parse_spec("synthetic-sft:train").n == 512
    assert is_synthetic_spec("synthetic:oops") and not is_synthetic_spec("synthetic")
    assert not is_synthetic_spec("data/synthetic.jsonl")


@pytest.mark.parametrize("spec, field", [
    ("synthetic:test", "split"),
    ("synthetic:train?n=ten", "n"),
    ("synthetic:train?n=0", "n"),
    ("synthetic:train?error_rate=0.2", "error_rate"),  # prompts have no failed calls
    ("synthetic-sft:train?error_rate=2", "error_rate"),
    ("synthetic:classic?world_seed=1", "world_seed"),
    ("synthetic:train?size=3", "size"),
])
def test_bad_strings_are_data_errors_naming_the_string_and_option(spec, field):
    with pytest.raises(DataError) as caught:
        parse_spec(spec)
    assert caught.value.source == spec and caught.value.field == field


def test_strings_read_the_same_records_as_the_functions():
    assert read_spec("synthetic:heldout_templates?n=12&seed=4") == generate_prompts(12, 4, "heldout_templates")
    assert read_spec("synthetic-sft:train?n=9&error_rate=0.9") == generate_trajectories(9, error_rate=0.9)
    assert read_spec("synthetic:classic?n=6") == classic.generate_prompts(6, seed=0)
    assert read_spec("synthetic-sft:classic?n=6&seed=2") == classic.generate_trajectories(6, seed=2)


def test_read_trajectories_takes_source_strings():
    trajs, report = read_trajectories_with_report("synthetic:heldout_domains?n=7")
    assert trajs == generate_prompts(7, split="heldout_domains")
    assert (report.format, report.read, report.source) == ("synthetic", 7, "synthetic:heldout_domains?n=7")
    assert detect_format("synthetic-sft:train") == "synthetic"
    assert read_trajectories("synthetic:train?n=3", format="synthetic") == generate_prompts(3)
    with pytest.raises(DataError, match="'synthetic'"):
        read_trajectories("synthetic:train", format="openai")
    with pytest.raises(DataError, match="unknown split"):
        detect_format("synthetic:nope")
