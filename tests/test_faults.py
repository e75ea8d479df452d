"""faults.py: the random states a resumed run restores."""

from __future__ import annotations

import io
import random

import numpy as np
import torch

from tl_lightning.faults import restore_rng_state, rng_state


def draws() -> tuple:
    return torch.rand(3).tolist(), random.random(), np.random.rand(2).tolist()


def test_restored_states_draw_the_same_numbers_and_load_weights_only():
    state = rng_state()
    first = draws()
    buffer = io.BytesIO()
    torch.save(state, buffer)  # as in a checkpoint, read back the way Lightning reads checkpoints
    buffer.seek(0)
    restore_rng_state(torch.load(buffer, weights_only=True))
    assert draws() == first
