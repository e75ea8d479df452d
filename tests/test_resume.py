"""Checkpoints that survive faults, through the real CLI on tiny-llama (deterministic CPU):

- a run SIGKILLed mid-epoch and resumed with ``--ckpt_path last`` ends with the same weights as
  a run that was never interrupted (data position, optimizer and schedule restored);
- SIGTERM and SIGUSR1 sent to a training process make it save ``last.ckpt`` and exit, and the
  run resumes from it.

The faulty runs are subprocesses (tests/scripts/run_cli.py); the reference and resumed runs
run in this process to save interpreter start-ups.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tl_lightning.cli import main

REPO = Path(__file__).resolve().parents[1]
RUN_CLI = REPO / "tests" / "scripts" / "run_cli.py"
STEPS_PER_EPOCH = 4  # 8 synthetic trajectories, batch 2, no validation split


def tiny_fit(root: Path, max_steps: int, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(REPO / "configs" / "demo" / "pkt_tiny.yaml"),
        f"--trainer.default_root_dir={root}", f"--trainer.max_steps={max_steps}",
        "--trainer.val_check_interval=1.0", "--trainer.limit_val_batches=0", "--trainer.log_every_n_steps=1",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--data.synthetic_size=8", "--data.batch_size=2", "--data.val_fraction=0",
        "--model.warmup_ratio=0.2", "--checkpoint.every_n_train_steps=2", *extra,
    ]


def run_subprocess(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN_CLI), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def weights(cli) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in cli.model.model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 1e-6, f"largest weight difference {worst}"


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    max_steps = STEPS_PER_EPOCH + 1  # crosses an epoch boundary after the resume
    reference = main(tiny_fit(tmp_path / "reference", max_steps))
    assert reference.trainer.global_step == max_steps

    root = tmp_path / "killed"
    killed = run_subprocess(tiny_fit(root, max_steps, "--trainer.callbacks+=fault_callbacks.KillAtStep",
                                     "--trainer.callbacks.step=3"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    last = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2  # step 3 was trained, then lost with the process

    resumed = main(tiny_fit(root, max_steps, "--ckpt_path=last"))
    assert resumed.trainer.global_step == max_steps
    assert_same_weights(weights(resumed), weights(reference))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_stop_signal_saves_a_checkpoint_that_resumes(tmp_path, signum):
    root = tmp_path / "run"
    steps_file = tmp_path / "steps"
    args = tiny_fit(root, 1000, "--checkpoint.every_n_train_steps=1000",
                    "--trainer.callbacks+=fault_callbacks.ReportSteps", f"--trainer.callbacks.path={steps_file}")
    process = subprocess.Popen([sys.executable, str(RUN_CLI), *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (steps_file.is_file() and steps_file.read_text() not in ("", "1")):
            assert process.poll() is None, process.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    last = root / "checkpoints" / "last.ckpt"
    assert last.is_file(), output[-3000:]
    saved_step = torch.load(last, weights_only=True)["global_step"]
    assert 2 <= saved_step < 1000 and f"saved {last}" in output

    resumed = main(tiny_fit(root, saved_step + 1, "--ckpt_path=last"))
    assert resumed.trainer.global_step == saved_step + 1
