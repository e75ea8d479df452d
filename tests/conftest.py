"""Shared fixtures. Real data comes from ../shared/data (never committed); the real tokenizer
is the bundled SmolLM2's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TL_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public benchmark and trajectory files beside the repository (see PROVENANCE.md)."""
    if not (SHARED_DATA / "PROVENANCE.md").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set TL_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2-135M-Instruct's real fast tokenizer (converted once from the bundled gguf)."""
    from tl_lightning.modeling import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")
