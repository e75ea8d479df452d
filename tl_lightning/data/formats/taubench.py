"""``taubench``: tau-bench's historical trajectories (``<tau-bench>/historical_trajectories/
<model>-<domain>.json``, OpenAI messages under ``traj``) with the domain's tool schemas
(``<tau-bench>/<domain>_tools.json``). Calls to tools outside the schemas stay as agent history.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tl_lightning.data.formats.fields import get_field, tools_from_list, with_keys
from tl_lightning.data.formats.openai import openai_messages
from tl_lightning.data.formats.reading import Format, Origin, ReadOptions, find_side_file, load_json, read_records
from tl_lightning.records import DataError, ToolSpec, Trajectory


def _taubench_tools_path(path: Path, options: ReadOptions) -> Path:
    """``<tau-bench>/<domain>_tools.json`` for ``<tau-bench>/historical_trajectories/<model>-<domain>.json``."""
    if options.tools_path is not None:
        return find_side_file([options.tools_path], "tau-bench tool schemas", path)
    domain = path.stem.rsplit("-", 1)[-1]
    return find_side_file([path.parent.parent / f"{domain}_tools.json", path.parent / f"{domain}_tools.json"],
                          "tau-bench tool schemas", path)


def _taubench_record(rec: Any, origin: Origin, tools: tuple[ToolSpec, ...]) -> Trajectory:
    messages = openai_messages(get_field(rec, "traj", list), "traj")
    task_id = get_field(rec, "task_id", (int, str))
    meta = origin.meta(task_id=task_id, trial=rec.get("trial"), reward=rec.get("reward"), info=rec.get("info"))
    return Trajectory(f"{origin.path.stem}-task{task_id}-trial{rec.get('trial')}", tools, messages, meta)


def read_taubench(path: Path, options: ReadOptions) -> Iterator[Trajectory | DataError]:
    """tau-bench historical trajectories (OpenAI messages under ``traj``) with the domain's tool
    schemas; ``meta`` keeps ``task_id``, ``trial``, ``reward`` and ``info``."""
    tools_path = _taubench_tools_path(path, options)
    try:
        tools = tools_from_list(load_json(tools_path), "tools")
    except DataError as e:
        raise e.located(source=str(tools_path)) from None
    yield from read_records(path, "taubench", lambda rec, origin: _taubench_record(rec, origin, tools))


FORMAT = Format("taubench", read_taubench, matches_record=with_keys("traj", "task_id"),
                side_files={"*_tools.json": "a tool schema file (tau-bench), not trajectories"})
