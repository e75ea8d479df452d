"""Source strings for the built-in worlds, the one parser for them.

Grammar (wherever a data path is accepted: ``read_trajectories``, ``python -m tl_lightning.data
inspect|convert``, the DataModule's ``data_path``)::

    synthetic:<split>[?<key>=<value>[&...]]        prompts: each ends at a gold call turn (eval)
    synthetic-sft:<split>[?<key>=<value>[&...]]    trajectories with failed calls (SFT, and RL:
                                                   each correct call turn becomes a prompt)

    <split>  train | heldout_templates | heldout_domains    the procedural world
             classic                                        the original five-domain world
    <key>    n           how many records (default 200 prompts, 512 trajectories)
             seed        which samples (default 0)
             error_rate  synthetic-sft only: chance a call step first fails (default 0.3)
             world_seed  which world: domains, styles, held-out domains and templates (default 0;
                         not for classic)

Examples: ``synthetic:heldout_domains``, ``synthetic-sft:train?n=400&error_rate=0.2``,
``synthetic:classic?n=50&seed=3``. A malformed string raises ``DataError`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from tl_lightning.data import synthetic as classic
from tl_lightning.data.world.generate import generate_prompts, generate_trajectories
from tl_lightning.data.world.tasks import SPLITS
from tl_lightning.records import DataError, Trajectory

PROMPTS, TRAJECTORIES = "synthetic", "synthetic-sft"
CLASSIC = "classic"
SPEC_SPLITS = (*SPLITS, CLASSIC)
DEFAULT_N = {PROMPTS: 200, TRAJECTORIES: 512}


@dataclass(frozen=True)
class SyntheticSpec:
    """A parsed source string: ``kind`` is ``"synthetic"`` (prompts) or ``"synthetic-sft"``
    (trajectories)."""

    kind: str
    split: str
    n: int
    seed: int = 0
    error_rate: float = 0.3
    world_seed: int = 0


def is_synthetic_spec(source: object) -> bool:
    """Whether ``source`` is meant as a built-in world string (``synthetic:...`` or
    ``synthetic-sft:...``), well-formed or not."""
    return isinstance(source, str) and source.split(":", 1)[0] in (PROMPTS, TRAJECTORIES) and ":" in source


def _number(spec: str, key: str, text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise DataError(f"{key}={text!r} is not {'an integer' if kind is int else 'a number'}",
                        source=spec, field=key) from None


def parse_spec(spec: str) -> SyntheticSpec:
    """Parse ``spec`` (see the module docstring); ``DataError`` says what is wrong with it."""
    if not is_synthetic_spec(spec):
        raise DataError(f"not a synthetic source; expected {PROMPTS}:<split> or {TRAJECTORIES}:<split>", source=spec)
    kind, rest = spec.split(":", 1)
    split, _, query = rest.partition("?")
    if split not in SPEC_SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPEC_SPLITS)}",
                        source=spec, field="split")
    allowed = {"n", "seed", "world_seed"} | ({"error_rate"} if kind == TRAJECTORIES else set())
    if split == CLASSIC:
        allowed.discard("world_seed")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise DataError(f"cannot read the options {query!r}; write key=value&key=value", source=spec) from None
    values: dict[str, int | float] = {}
    for key, text in pairs:
        if key not in allowed:
            raise DataError(f"unknown option {key!r} for {kind}:{split}; allowed: {', '.join(sorted(allowed))}",
                            source=spec, field=key)
        values[key] = _number(spec, key, text, float if key == "error_rate" else int)
    parsed = SyntheticSpec(kind=kind, split=split, **{"n": DEFAULT_N[kind], **values})
    if parsed.n < 1:
        raise DataError(f"n must be at least 1, got {parsed.n}", source=spec, field="n")
    if not 0.0 <= parsed.error_rate <= 1.0:
        raise DataError(f"error_rate must be in [0, 1], got {parsed.error_rate}", source=spec, field="error_rate")
    return parsed


def read_spec(spec: str) -> list[Trajectory]:
    """The records ``spec`` names."""
    s = parse_spec(spec)
    if s.split == CLASSIC:
        if s.kind == PROMPTS:
            return classic.generate_prompts(s.n, seed=s.seed)
        return classic.generate_trajectories(s.n, seed=s.seed, error_rate=s.error_rate)
    if s.kind == PROMPTS:
        return generate_prompts(s.n, seed=s.seed, split=s.split, world_seed=s.world_seed)
    return generate_trajectories(s.n, seed=s.seed, split=s.split, error_rate=s.error_rate, world_seed=s.world_seed)
