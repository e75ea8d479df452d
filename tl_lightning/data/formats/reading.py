"""What every reader shares: the registry entry (``Format``), loading a file's records, and
turning each record into a validated ``Trajectory`` or a located ``DataError``.

A reader is ``read(path, options)``, a generator that yields, per source record, the trajectory or
the ``DataError`` that record raised, so ``read_trajectories`` can raise the first error or skip and
count it. Most readers are one ``read_records`` over their file with a function that converts one
record; ``Origin`` hands that function the record's place (file, index, format), its fallback id
and the ``meta`` block every trajectory starts with.

Errors. A malformed record becomes a ``DataError`` naming the file, the record (index and id) and
the field: a dotted path into the source record (``messages[3].tool_calls[0].function.arguments``)
for what the reader finds while converting, a path into the ``Trajectory`` (``messages[3].calls[0].name``)
for what ``validate_trajectory`` finds afterwards (e.g. a call to a tool that is not in the list).
A file that cannot be read at all (truncated JSON list, not UTF-8, missing side file) raises: there
is no record to skip. In JSON Lines files each line is a record, so a truncated line is a
skippable record error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from tl_lightning.records import DataError, Trajectory, validate_trajectory

SCORED_TURNS = ("first", "last")


@dataclass(frozen=True)
class ReadOptions:
    """What a reader may need besides the path: side files that are not where they usually are."""

    tools_path: Path | None = None
    answers_path: Path | None = None


@dataclass(frozen=True)
class EmptyFile:
    """A file that holds no record (API-Bank ships one 0-byte dialogue file): reported, not an error."""

    path: str


# A reader yields, per source record, the trajectory or the DataError that record raised (and an
# EmptyFile for a file without records, where a file is a record).
Reader = Callable[[Path, ReadOptions], Iterator[Trajectory | DataError | EmptyFile]]



def _never(_: Any) -> bool:
    return False


@dataclass(frozen=True)
class Format:
    """One entry of the format registry (``data.formats.register_format``): a source format, how
    to read it and how to recognise it.

    - ``name``: what ``format=`` says; ``aliases``: other names for the same entry.
    - ``read``: the reader (``Reader``).
    - ``matches_record``: whether a file's first record (any JSON value) is of this format.
    - ``matches_file``: whether a path is of this format before any record is read (SGD's
      ``dialogues_001.json``; a folder, for a format with ``folder``).
    - ``folder``: what a folder of this format holds, for a format that reads folders ("": files
      only); detection asks ``matches_file`` of a folder only for such formats, and names them
      when none says yes.
    - ``side_files``: ``{glob: what the file is}`` for the files that sit beside the data and hold
      no trajectories (tool schemas, answer files); detection refuses such a path, saying ``"this
      is <what>"``. A glob matches the whole path or its tail (``schema.json``,
      ``possible_answer/*``, ``*_tools.json``).
    - ``scored_turn``: the assistant turn a benchmark of this format scores: ``"last"``, or
      ``"first"`` (ToolAlpaca: its first gold step).
    """

    name: str
    read: Reader
    matches_record: Callable[[Any], bool] = _never
    matches_file: Callable[[Path], bool] = _never
    folder: str = ""
    side_files: Mapping[str, str] = field(default_factory=dict)
    scored_turn: str = "last"
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.scored_turn not in SCORED_TURNS:
            raise ValueError(f"scored_turn must be one of {SCORED_TURNS}, got {self.scored_turn!r}")

    def side_file(self, path: Path) -> str | None:
        """What ``path`` is when it is one of this format's side files, else None."""
        posix = path.as_posix()
        return next((what for glob, what in self.side_files.items()
                     if fnmatchcase(posix, glob) or fnmatchcase(posix, f"*/{glob}")), None)


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file; ``DataError`` naming the file when it cannot be read or is not
    UTF-8 (every reader, and the predictions file of ``evaluate``, read through here)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read: {e}", source=str(path)) from None
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); save it as UTF-8",
                        source=str(path)) from None


def _invalid_json(path: Path, e: json.JSONDecodeError) -> DataError:
    return DataError(f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno}); truncated or not JSON",
                     source=str(path))


def load_json(path: Path) -> Any:
    """The whole file as one JSON value; ``DataError`` naming the file (and position) if it is not."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise _invalid_json(path, e) from None


def jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """``(record index, value or DataError)`` per non-empty line of a JSON Lines file."""
    index = 0
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield index, json.loads(line)
        except json.JSONDecodeError as e:
            yield index, DataError(f"invalid JSON on line {line_no} ({e.msg} at column {e.colno})",
                                   source=str(path), index=index)
        index += 1


def file_records(path: Path) -> Iterator[tuple[int, Any]]:
    """``(record index, record or DataError)`` of a JSON list, a single JSON object, or JSON Lines
    (``.jsonl``, and ``.json`` files holding one object per line, as BFCL's do)."""
    if path.suffix == ".jsonl":
        yield from jsonl_records(path)
        return
    text = read_text(path)
    if not text.strip():
        return  # an empty file holds no records (the read says so), it is not broken JSON
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg != "Extra data":
            raise _invalid_json(path, e) from None
        yield from jsonl_records(path)
        return
    yield from enumerate(data if isinstance(data, list) else [data])


def first_record(path: Path) -> Any:
    """The first record of a file (detection reads it); its ``DataError`` when that record is
    broken, ``"no records"`` when there is none."""
    for _, rec in file_records(path):
        if isinstance(rec, DataError):
            raise rec
        return rec
    raise DataError("no records", source=str(path))


def _record_id(record: Any) -> str | None:
    if isinstance(record, dict):
        for key in ("id", "dialogue_id", "task_id"):
            if isinstance(record.get(key), (str, int)) and not isinstance(record.get(key), bool):
                return str(record[key])
    return None


def build_trajectory(source: Path, index: int, record: Any, build: Callable[[], Trajectory],
                     record_id: str | None = None) -> Trajectory | DataError:
    """Run ``build`` and validate its trajectory; any problem becomes a located ``DataError``.

    Readers check the fields they use and raise ``DataError`` with the field path; the
    ``KeyError``/``TypeError``/``AttributeError`` net catches a wrong shape nobody checked for, so
    one odd record never aborts a file with a bare traceback.
    """
    if isinstance(record, DataError):
        return record
    rid = record_id if record_id is not None else _record_id(record)
    try:
        return validate_trajectory(build())
    except DataError as e:
        return e.located(source=str(source), index=index, record_id=rid)
    except (KeyError, TypeError, AttributeError) as e:
        return DataError(f"unexpected record structure ({type(e).__name__}: {e})",
                         source=str(source), index=index, record_id=rid)


@dataclass(frozen=True)
class Origin:
    """Where a record comes from: its file, its index there and the format it is read as."""

    path: Path
    index: int
    format: str

    @property
    def default_id(self) -> str:
        """``<file stem>-<index>``, the id of a record that has none."""
        return f"{self.path.stem}-{self.index}"

    def record_id(self, record: Any) -> str:
        """The record's own id (``id``, ``dialogue_id``, ``task_id``), else ``default_id``."""
        rid = _record_id(record)
        return rid if rid is not None else self.default_id

    def meta(self, **facts: Any) -> dict[str, Any]:
        """The trajectory's ``meta``: ``source`` (the file), ``format``, ``index``, then ``facts``."""
        return {"source": str(self.path), "format": self.format, "index": self.index, **facts}


def read_records(path: Path, format: str,
                 convert: Callable[[Any, Origin], Trajectory]) -> Iterator[Trajectory | DataError]:
    """The reader loop: ``convert(record, origin)`` of each record of ``path`` (``file_records``),
    validated, or the located ``DataError`` it raised (``build_trajectory``)."""
    for index, record in file_records(path):
        origin = Origin(path, index, format)
        yield build_trajectory(path, index, record, lambda: convert(record, origin))


def find_side_file(candidates: Iterable[Path], what: str, source: Path) -> Path:
    """The first of ``candidates`` that is a file: where a reader finds ``what`` (a tool schema or
    answer file) for ``source``; ``DataError`` naming every place it looked otherwise."""
    candidates = list(candidates)
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(f"{what} not found (looked for {', '.join(str(c) for c in candidates)}; "
                    "pass its path explicitly)", source=str(source))
