"""Stop a run cleanly when the job is told to stop, and resume it exactly.

Lightning already turns SIGTERM into a ``SIGTERMException`` at the next batch boundary (on every
rank: rank 0's flag is broadcast each step), but saves nothing; and it handles SIGUSR1 only on
SLURM with auto-requeue. ``CheckpointOnSignal`` adds the missing pieces everywhere else.
``rng_state`` / ``restore_rng_state``: the random-number states a module keeps in its checkpoint,
so that a resumed run draws what the uninterrupted one drew.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info


class CheckpointOnSignal(pl.Callback):
    """On SIGTERM (and SIGUSR1 where nobody else handles it) save ``<dir>/<filename>`` and stop.

    ``<dir>`` is the ``ModelCheckpoint`` folder (so ``fit --ckpt_path last`` finds the file), or
    ``trainer.default_root_dir`` without one. The save happens between batches, on every rank
    (a sharded save is collective). Other exceptions (e.g. a NaN loss) save nothing.
    """

    def __init__(self, filename: str = "last.ckpt") -> None:
        self.filename = filename

    def checkpoint_path(self, trainer: pl.Trainer) -> Path:
        dirpath = getattr(trainer.checkpoint_callback, "dirpath", None) or trainer.default_root_dir
        return Path(dirpath) / self.filename

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # SLURM auto-requeue installs its own SIGUSR1 handler (save + requeue): keep that one.
        # Lightning restores the previous handlers itself when the run ends.
        free = signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None)
        if free and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, _forward_as_sigterm)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        rank_zero_info(f"stop signal: saved {path} at global step {trainer.global_step}; resume with --ckpt_path last")


def _forward_as_sigterm(signum: int, frame) -> None:
    """SIGUSR1 → Lightning's SIGTERM path (which also forwards it to the other local ranks)."""
    os.kill(os.getpid(), signal.SIGTERM)


def rng_state() -> dict[str, Any]:
    """The torch, python, numpy (and CUDA) random states, numpy's as plain values and tensors:
    checkpoints are read with ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gaussian)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the random states ``rng_state`` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
