"""The format registry: one entry (``reading.Format``) per source format, each the ``FORMAT`` of
its own module in this package. ``data.sources`` reads, detects formats and names side files
through it, and ``datamodule.gold_turn_index`` asks it which turn a benchmark scores.

Built in (the public sources are described in ``../shared/data/FORMATS.md``): ``openai`` (also
the project's normalized JSONL), ``tl`` (the authors' raw format), ``sharegpt``, ``rotbench``
(= ``tooleyes``), ``toolalpaca``, ``bfcl``, ``apibank``, ``sgd``, ``taubench``, ``sealtools``.
``register_format`` adds a format of your own (README, "Your own format").

Detection asks the entries in registration order and takes the first that says yes, so the
specific ones come first: records with keys of their own, then RoTBench's ReAct prompts before
ShareGPT's general shape, the authors' role names before OpenAI's. A format registered later gets
what the built-in ones do not claim; ``format=`` names any format explicitly.

The built-in worlds' source strings (``synthetic:<split>``) are no entry: they name no file, no
record and no side file, so ``read_trajectories`` hands them to ``data.world.spec`` before it asks
the registry, as format ``SYNTHETIC``, a name no entry may take.

Every reader repairs known defects of the public files only where the intent is unambiguous and
records each repair in the trajectory's ``meta`` (the modules say which); where tools are parsed
out of a system prompt, the prompt moves to ``meta["system_prompt"]``, since the renderer writes
the tool list itself.
"""

from __future__ import annotations

from tl_lightning.data.formats import (
    apibank,
    bfcl,
    openai,
    rotbench,
    sealtools,
    sgd,
    sharegpt,
    taubench,
    tl,
    toolalpaca,
)
from tl_lightning.data.formats.reading import Format

AUTO = "auto"
SYNTHETIC = "synthetic"
"""The format of the built-in worlds' source strings (``synthetic:<split>``, see ``world.spec``)."""

FORMATS: dict[str, Format] = {}
"""Every registered name, aliases included -> its entry."""


def register_format(fmt: Format) -> Format:
    """Add ``fmt`` under its name and aliases, after every entry registered before it (detection
    asks it last); ``ValueError`` for a name that is taken or reserved (``AUTO``, ``SYNTHETIC``)."""
    names = (fmt.name, *fmt.aliases)
    for name in names:
        if name in (AUTO, SYNTHETIC):
            raise ValueError(f"the format name {name!r} is reserved")
        if name in FORMATS:
            raise ValueError(f"a format named {name!r} is registered already")
    for name in names:
        FORMATS[name] = fmt
    return fmt


def registered() -> list[Format]:
    """Each entry once, in registration order: the order detection asks them in."""
    return [fmt for name, fmt in FORMATS.items() if name == fmt.name]


def scored_turn(name: str | None) -> str:
    """The assistant turn a benchmark of format ``name`` scores, ``"first"`` or ``"last"``
    (``"last"`` for a name that is no entry, such as the built-in worlds' ``SYNTHETIC``)."""
    fmt = FORMATS.get(name)
    return fmt.scored_turn if fmt is not None else "last"


for _module in (bfcl, toolalpaca, taubench, sgd, sealtools, rotbench, apibank, sharegpt, tl, openai):
    register_format(_module.FORMAT)
