"""Fixtures of the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tl_lightning.data.sources import ReadReport, read_trajectories_with_report
from tl_lightning.records import Trajectory


class _Sources(dict):
    """``{path under shared/data: (trajectories, report)}``, each source read on first use."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, rel: str) -> tuple[list[Trajectory], ReadReport]:
        self[rel] = read_trajectories_with_report(self.root / rel)
        return self[rel]


@pytest.fixture(scope="session")
def loaded(shared_data) -> _Sources:
    """The shared/data sources, each read once per session (the SGD subset alone is ~20 MB)."""
    return _Sources(shared_data)
