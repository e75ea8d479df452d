"""Shared fixtures. Real data comes from ``data_root()`` ($TL_LIGHTNING_DATA, default
../shared/data; never committed); the real tokenizer is the bundled SmolLM2's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tl_lightning.data.sources import DATA_ROOT_ENV, data_root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public benchmark and trajectory files (see PROVENANCE.md there)."""
    root = data_root()
    if not (root / "PROVENANCE.md").is_file():
        pytest.skip(f"shared data not found at {root} (set {DATA_ROOT_ENV})")
    return root


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2-135M-Instruct's real fast tokenizer (converted once from the bundled gguf)."""
    from tl_lightning.modeling import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (restored after): tiny models run faster so on a shared
    2-core machine. Modules of tiny-model tests use it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
