"""Helpers of the format tests: write records to a file, break one field of a record, copy a shared
data file, and read a file with one broken record both ways (raise, then skip)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tl_lightning.data.sources import read_trajectories, read_trajectories_with_report
from tl_lightning.records import DataError

DELETE = object()  # as a breaker value: remove the key


def write_records(path: Path, records, jsonl: bool = False) -> Path:
    text = "\n".join(json.dumps(r) for r in records) if jsonl else json.dumps(records)
    path.write_text(text, encoding="utf-8")
    return path


def set_at(rec, path, value):
    """Set the value at ``path`` (keys/indices) of ``rec``; ``DELETE`` removes the key."""
    target = rec
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return rec


def copy_shared(shared_data: Path, rel: str, tmp_path: Path) -> Path:
    dst = tmp_path / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_data / rel, dst)
    return dst


def first_lines(path: Path, n: int) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:n]]


def raises_then_skips(path) -> DataError:
    """Read a file with one broken record among three: it raises (the error is returned for the
    location checks), and with on_error="skip" the other two load and the skip is counted."""
    with pytest.raises(DataError) as err:
        read_trajectories(path)
    trajs, report = read_trajectories_with_report(path, on_error="skip")
    assert len(trajs) == 2 and report.skipped == 1
    return err.value
