"""Callbacks that make a training process fail on cue, for the resume and signal tests."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import lightning.pytorch as pl


class KillAtStep(pl.Callback):
    """SIGKILL this process at the end of the batch that reaches ``step`` (no cleanup at all)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class ReportSteps(pl.Callback):
    """Write the global step to ``path`` after every batch and pause ``pause_s`` seconds, so a
    test can signal the process while it is training."""

    def __init__(self, path: str, pause_s: float = 0.5) -> None:
        self.path, self.pause_s = Path(path), pause_s

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.path.write_text(str(trainer.global_step))
        time.sleep(self.pause_s)


class StopAtStep(pl.Callback):
    """Stop training gracefully once ``step`` is reached (a preemption with the schedule of the
    full run: ``max_steps`` stays as configured)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True
