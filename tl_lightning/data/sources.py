"""Reading tool-use data: ``read_trajectories(path, format="auto")`` -> ``list[Trajectory]``, and
writing the normalized JSONL.

The reader of each format is an entry of the format registry (``data.formats``); this module is
the entry point over it: ``detect_format`` asks the registry what a path or its first record is,
``read_trajectories_with_report`` runs the reader and keeps the ``ReadReport``. A built-in world
string (``synthetic:heldout_domains``, ``synthetic-sft:train?n=400``; grammar in
``tl_lightning.data.world.spec``) is read before the registry is asked: it names no file.

Errors (``data.formats.reading`` says how a record's error is located). ``on_error="raise"``
raises the first one; ``on_error="skip"`` drops the record and counts it in the ``ReadReport``
(``read_trajectories_with_report``), so nothing disappears silently. A file that cannot be read at
all always raises: there is no record to skip; so does a read that finds no record at all (an
empty list or file). A repeated id gets a ``#k`` suffix (``meta["original_id"]`` keeps the id).

``write_jsonl`` writes the normalized format (``openai`` records plus ``id``, ``meta`` and, on
assistant messages, ``alternatives``), which reads back to equal records.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tl_lightning.data.formats import AUTO, FORMATS, SYNTHETIC, registered
from tl_lightning.data.formats.reading import EmptyFile, ReadOptions, first_record
from tl_lightning.data.world.spec import is_synthetic_spec, parse_spec, read_spec
from tl_lightning.records import DataError, Message, Trajectory

ON_ERROR = ("raise", "skip")
DATA_ROOT_ENV = "TL_LIGHTNING_DATA"
DEFAULT_DATA_ROOT = "../shared/data"


def data_root() -> Path:
    """The folder of the public data sets (laid out as its ``FORMATS.md`` says): ``$TL_LIGHTNING_DATA``,
    else ``../shared/data`` from the current folder (this project's checkout sits beside
    ``shared/``). The one default of ``make reproduce``, the benchmarks and the tests' data."""
    return Path(os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT).resolve()


@dataclass
class ReadReport:
    """The outcome of one read: how many trajectories were read, every record that was skipped
    (with its error) and every file that held no record."""

    source: str
    format: str
    read: int = 0
    errors: list[DataError] = field(default_factory=list)
    empty_files: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "format": self.format, "read": self.read, "skipped": self.skipped,
                "errors": [str(e) for e in self.errors], "empty_files": list(self.empty_files)}


def detect_format(path: str | Path) -> str:
    """The ``FORMATS`` name for ``path`` (``"synthetic"`` for a built-in world string,
    ``synthetic:<split>``): the first registered format whose ``matches_file`` takes the path, or
    whose ``matches_record`` takes its first record; ``DataError`` when the path is a side file
    of a format (a schema or answer file) or nothing matches."""
    if is_synthetic_spec(path):
        parse_spec(path)
        return SYNTHETIC
    path = Path(path)
    formats = registered()
    if path.is_dir():
        folders = [fmt for fmt in formats if fmt.folder]
        for fmt in folders:
            if fmt.matches_file(path):
                return fmt.name
        raise DataError(f"cannot tell the format of this directory (expected "
                        f"{' or '.join(fmt.folder for fmt in folders)}); pass format=", source=str(path))
    if not path.is_file():
        raise DataError("no such file or directory", source=str(path))
    for fmt in formats:
        if (what := fmt.side_file(path)) is not None:
            raise DataError(f"this is {what}", source=str(path))
    for fmt in formats:
        if fmt.matches_file(path):
            return fmt.name
    if path.suffix not in (".json", ".jsonl"):
        raise DataError(f"not a JSON or JSONL file ({path.suffix or 'no suffix'})", source=str(path))
    record = first_record(path)
    for fmt in formats:
        if fmt.matches_record(record):
            return fmt.name
    raise DataError(f"cannot tell the format from the first record; pass one of {sorted(FORMATS)}",
                    source=str(path))


def _unique_ids(trajs: list[Trajectory]) -> list[Trajectory]:
    """Give a repeated id a ``#k`` suffix (ToolEyes repeats two queries): later steps key by id."""
    seen: dict[str, int] = {}
    out = []
    for t in trajs:
        n = seen.get(t.id, 0)
        seen[t.id] = n + 1
        out.append(t if n == 0 else
                   dataclasses.replace(t, id=f"{t.id}#{n + 1}", meta={**t.meta, "original_id": t.id}))
    return out


def read_trajectories_with_report(
    path: str | Path,
    format: str = "auto",
    on_error: str = "raise",
    tools_path: str | Path | None = None,
    answers_path: str | Path | None = None,
) -> tuple[list[Trajectory], ReadReport]:
    """Read ``path`` (file or directory) as ``format`` (``"auto"``: ``detect_format``).

    ``on_error="raise"``: the first malformed record raises its ``DataError``. ``"skip"``: malformed
    records are left out and listed in the report. ``tools_path`` / ``answers_path`` point at side
    files that are not where the format keeps them: the tool schemas (API-Bank ``all_apis.csv``,
    SGD ``schema.json``, tau-bench ``<domain>_tools.json``, Seal-Tools ``tool.jsonl``; for ToolEyes'
    raw file the folder holding ``ToolEyes/``) and BFCL's answer file.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if is_synthetic_spec(path):
        if format not in (AUTO, SYNTHETIC):
            raise DataError(f"a built-in world string is read as format 'synthetic', not {format!r}", source=path)
        trajs = read_spec(path)
        return trajs, ReadReport(source=path, format=SYNTHETIC, read=len(trajs))
    path = Path(path)
    fmt = detect_format(path) if format == AUTO else format
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {sorted(FORMATS)} or 'auto'")
    options = ReadOptions(tools_path=Path(tools_path) if tools_path else None,
                          answers_path=Path(answers_path) if answers_path else None)
    report = ReadReport(source=str(path), format=fmt)
    trajs = []
    for item in FORMATS[fmt].read(path, options):
        if isinstance(item, EmptyFile):
            report.empty_files.append(item.path)
        elif isinstance(item, DataError):
            if on_error == "raise":
                raise item
            report.errors.append(item)
        else:
            trajs.append(item)
    if not trajs and not report.errors:
        raise DataError("no records", source=str(path))  # e.g. an empty list: nothing to train or score on
    trajs = _unique_ids(trajs)
    report.read = len(trajs)
    return trajs, report


def read_trajectories(
    path: str | Path,
    format: str = "auto",
    on_error: str = "raise",
    tools_path: str | Path | None = None,
    answers_path: str | Path | None = None,
) -> list[Trajectory]:
    """``read_trajectories_with_report`` without the report (with ``on_error="skip"`` prefer that
    one: it says what was skipped)."""
    return read_trajectories_with_report(path, format, on_error, tools_path, answers_path)[0]


# =============================================================================================
# writing the normalized format


def _openai_message(message: Message, call_ids: Iterator[str], pending: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.calls:
        out["tool_calls"] = []
        for call in message.calls:
            call_id = next(call_ids)
            pending.append(call_id)
            out["tool_calls"].append({"id": call_id, **call.to_openai()})
    if message.alternatives:
        out["alternatives"] = [[call.to_openai() for call in calls] for calls in message.alternatives]
    if message.role == "tool":
        call_id = pending.pop(0) if pending else None
        if message.name is not None:  # without a name, no id: the reader would name it after the call
            out["name"] = message.name
            if call_id is not None:
                out["tool_call_id"] = call_id
    return out


def trajectory_to_openai(traj: Trajectory) -> dict[str, Any]:
    """One trajectory as a normalized-format record (OpenAI messages + tools, ``id``, ``meta``).
    Tool messages answer the pending calls in order (``tool_call_id``)."""
    call_ids = (f"call_{i}" for i in range(1 << 30))
    pending: list[str] = []
    return {"id": traj.id, "tools": [t.to_openai() for t in traj.tools],
            "messages": [_openai_message(m, call_ids, pending) for m in traj.messages], "meta": traj.meta}


def write_jsonl(trajs: Iterable[Trajectory], path: str | Path) -> int:
    """Write the normalized JSONL that ``read_trajectories(path)`` reads back to equal records;
    returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for traj in trajs:
            try:
                line = json.dumps(trajectory_to_openai(traj), ensure_ascii=False)
            except (TypeError, ValueError) as e:
                raise DataError(f"not JSON-serialisable: {e}", record_id=traj.id, field="meta") from None
            f.write(line + "\n")
            count += 1
    return count
