"""The data command line: look at a data set before training on it, or convert it.

    python -m tl_lightning.data inspect PATH [--format F]          one JSON object: counts + MAE
    python -m tl_lightning.data convert PATH --output OUT.jsonl    the normalized JSONL

``PATH`` is any file or folder ``sources.read_trajectories`` reads, a built-in world string
(``synthetic:heldout_domains``, ``synthetic-sft:train?n=400``, ``synthetic:classic``; grammar in
``tl_lightning.data.world.spec``), or ``synthetic`` for the procedural world's training
trajectories (``--size``, ``--seed``, ``--error-rate``). Bad data exits with status 2 and one line,
the ``DataError`` message (file, record, field), as bad arguments do (``records.exit_on_bad_input``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from tl_lightning.data import world
from tl_lightning.data.formats import FORMATS
from tl_lightning.data.mae import ErrorDetector, apply_mae
from tl_lightning.data.sources import ON_ERROR, read_trajectories_with_report, write_jsonl
from tl_lightning.records import DataError, Trajectory, exit_on_bad_input

SYNTHETIC = "synthetic"


def load(args: argparse.Namespace) -> tuple[list[Trajectory], dict[str, Any]]:
    """The trajectories of ``args.path`` and what the read reported (format, skipped records)."""
    if args.path == SYNTHETIC:
        trajs = world.generate_trajectories(args.size, seed=args.seed, error_rate=args.error_rate)
        return trajs, {"format": SYNTHETIC, "read_skipped": 0}
    trajs, report = read_trajectories_with_report(args.path, format=args.format, on_error=args.on_error,
                                                  tools_path=args.tools_path, answers_path=args.answers_path)
    return trajs, {"format": report.format, "read_skipped": report.skipped,
                   "read_errors": [str(e) for e in report.errors[:20]]}


def inspect(args: argparse.Namespace) -> dict[str, Any]:
    """Counts and MAE figures of a data set, as one JSON-ready dict."""
    trajs, read = load(args)
    detector = ErrorDetector(patterns=tuple(args.error_pattern)) if args.error_pattern else None
    _, report = apply_mae(trajs, detector=detector)
    mae = report.to_dict()
    return {"path": args.path, **read, "trajectories": mae["trajectories"],
            "messages": sum(len(t.messages) for t in trajs), "assistant_turns": mae["assistant_turns"],
            "calls": mae["calls"], "tool_outputs": mae["tool_outputs"], "error_outputs": mae["error_outputs"],
            "mae_kept": mae["kept_turns"], "mae_dropped": mae["dropped_turns"],
            "dropped_by_pattern": mae["dropped_by_pattern"]}


def convert(args: argparse.Namespace) -> dict[str, Any]:
    """Write the normalized JSONL; return what was written."""
    trajs, read = load(args)
    written = write_jsonl(trajs, args.output)
    return {"path": args.path, **read, "output": args.output, "written": written}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tl_lightning.data", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("inspect", "print counts and MAE figures as one JSON object"),
                        ("convert", "write the normalized JSONL (OpenAI messages + tools)")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("path", help=f"a data file or folder, a world string (synthetic:<split>), or {SYNTHETIC!r}")
        c.add_argument("--format", default="auto", choices=("auto", *sorted(FORMATS)),
                       help="source format (default: detect)")
        c.add_argument("--on-error", choices=ON_ERROR, default="raise", help="malformed records: raise or skip")
        c.add_argument("--tools-path", help="tool schemas kept outside the data file (e.g. tau-bench)")
        c.add_argument("--answers-path", help="gold answers kept outside the data file (e.g. BFCL)")
        c.add_argument("--size", type=int, default=512, help="synthetic: number of trajectories")
        c.add_argument("--seed", type=int, default=0, help="synthetic: seed")
        c.add_argument("--error-rate", type=float, default=0.3, help="synthetic: share of calls first made wrong")
        if name == "inspect":
            c.add_argument("--error-pattern", action="append", default=[],
                           help="an MAE error phrase (repeat; default: the authors' list)")
        else:
            c.add_argument("--output", required=True, help="the JSONL file to write")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = inspect(args) if args.command == "inspect" else convert(args)
    except DataError as e:
        return exit_on_bad_input(e)
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
