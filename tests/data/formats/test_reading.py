"""What every reader shares (``formats.reading``): a broken record is a located ``DataError`` (or
skipped and counted), a truncated, non-UTF-8 or empty file fails as a whole, naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.data.formats import test_openai, test_rotbench, test_sharegpt, test_tl
from tests.data.formats.helpers import set_at, write_records
from tl_lightning.data.sources import read_trajectories, read_trajectories_with_report
from tl_lightning.records import DataError


# The formats without side files: a good record factory and breakers (name, path into the record,
# value to put there, field the DataError must name) per format.
TEXT_FORMAT_CASES = {name: (module.good_record, module.BROKEN_RECORDS) for name, module in (
    ("openai", test_openai), ("tl", test_tl), ("sharegpt", test_sharegpt), ("rotbench", test_rotbench))}


def _case_ids(cases):
    return [f"{fmt}-{name}" for fmt, (_, breakers) in cases.items() for name, *_ in breakers]


def _cases(cases):
    return [(fmt, good, path, value, fld) for fmt, (good, breakers) in cases.items()
            for _, path, value, fld in breakers]


@pytest.mark.parametrize("fmt,good,path,value,fld", _cases(TEXT_FORMAT_CASES), ids=_case_ids(TEXT_FORMAT_CASES))
def test_broken_record_raises_located_error_and_skip_counts_it(tmp_path, fmt, good, path, value, fld):
    broken = set_at(good(), path, value)
    file = write_records(tmp_path / f"{fmt}.jsonl", [good(), broken, good()], jsonl=True)
    with pytest.raises(DataError) as err:
        read_trajectories(file, format=fmt)
    e = err.value
    assert (e.source, e.index, e.field) == (str(file), 1, fld)
    assert e.record_id == good()["id"] and str(file) in str(e)
    trajs, report = read_trajectories_with_report(file, format=fmt, on_error="skip")
    assert (len(trajs), report.read, report.skipped) == (2, 2, 1) and report.errors[0].index == 1


@pytest.mark.parametrize("fmt,good", [(f, g) for f, (g, _) in TEXT_FORMAT_CASES.items()])
def test_truncated_files(tmp_path, fmt, good):
    whole = json.dumps([good(), good()])
    json_file = tmp_path / f"{fmt}.json"
    json_file.write_text(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="invalid JSON") as err:
        read_trajectories(json_file, format=fmt, on_error="skip")  # no record to skip: the file fails
    assert err.value.source == str(json_file)
    lines = [json.dumps(good()), json.dumps(good())]
    jsonl_file = tmp_path / f"{fmt}.jsonl"
    jsonl_file.write_text(lines[0] + "\n" + lines[1][:40] + "\n")
    with pytest.raises(DataError, match="line 2"):
        read_trajectories(jsonl_file, format=fmt)
    trajs, report = read_trajectories_with_report(jsonl_file, format=fmt, on_error="skip")
    assert len(trajs) == 1 and report.skipped == 1


@pytest.mark.parametrize("fmt,good", [(f, g) for f, (g, _) in TEXT_FORMAT_CASES.items()])
def test_non_utf8_and_empty_files_are_data_errors(tmp_path, fmt, good):
    latin = tmp_path / f"{fmt}.json"
    latin.write_bytes(f'[{json.dumps(good())}, "caf\u00e9"]'.encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text") as err:
        read_trajectories(latin, format=fmt, on_error="skip")  # no record to skip: the file fails
    assert err.value.source == str(latin)
    for name, text in (("empty.json", "[]"), ("blank.json", ""), ("blank.jsonl", "\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match="no records"):
            read_trajectories(tmp_path / name, format=fmt)
    # records that were all skipped are reported, not an error
    only_bad = write_records(tmp_path / "bad.jsonl", ["not a record"], jsonl=True)
    trajs, report = read_trajectories_with_report(only_bad, format=fmt, on_error="skip")
    assert trajs == [] and report.skipped == 1


@pytest.mark.parametrize("rel,fmt,side", [
    ("BFCL_v3/BFCL_v3_simple.json", "bfcl", "BFCL_v3/possible_answer"),
    ("ToolAlpaca/data/eval_real.json", "toolalpaca", None),
    ("tau-bench/historical_trajectories/gpt-4o-airline.json", "taubench", "tau-bench/airline_tools.json"),
    ("RoTBench/First_Turn/clean.json", "rotbench", None),
    ("SGD/train/dialogues_022.json", "sgd", "SGD/train/schema.json"),
    ("Seal-Tools/Seal-Tools_Dataset/dev.jsonl", "sealtools", "Seal-Tools/Seal-Tools_Dataset/tool.jsonl"),
])
def test_truncated_benchmark_file_names_the_file(shared_data, tmp_path, rel, fmt, side):
    src = (shared_data / rel).read_text(encoding="utf-8")
    dst = tmp_path / Path(rel).name
    dst.write_text(src[: len(src) // 3] if fmt != "bfcl" else src[:300], encoding="utf-8")
    if side and (shared_data / side).is_dir():
        shutil.copytree(shared_data / side, tmp_path / Path(side).name)
    elif side:
        shutil.copy(shared_data / side, tmp_path)
    with pytest.raises(DataError, match="invalid JSON") as err:
        read_trajectories(dst, format=fmt)
    assert err.value.source == str(dst)
