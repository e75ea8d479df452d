"""Silence library messages that say nothing about the user's run.

Each entry below is a message that the pinned libraries print on every run of this project and
that the user can do nothing about (a deprecation inside a dependency, a missing optional CPU
kernel, an advertisement). Everything else, including every warning of our own, stays on. The
entry points (``train.py`` via ``cli.main``, ``evaluate``, ``demo``, ``reproduce``) call
``quiet_library_noise()`` at start; calling it again adds nothing twice.
"""

from __future__ import annotations

import logging
import warnings

# (category, regex on the start of the message): the warnings filters this module adds
NOISY_WARNINGS = (
    # peft reads model.is_gradient_checkpointing, which transformers 5 deprecated
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
    # lightning's own pytree helper calls a deprecated torch.utils._pytree check
    (Warning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    # our modules move their batches themselves (lm_module.CausalLMModule), on purpose
    (UserWarning, r"You have overridden `transfer_batch_to_device` in `LightningModule` but have passed in a"),
)


class _DropMessages(logging.Filter):
    """A logging filter that drops records whose message starts with one of ``prefixes``."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


# logger name -> message prefixes it drops
NOISY_LOGS = {
    # bitsandbytes looks for an optional CPU kernel package on every 4-bit-capable import
    "bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward",),
    # Lightning's advertisement for a hosted logger, printed on every fit
    "lightning.pytorch.utilities.rank_zero": ("💡 Tip:",),
}

def quiet_library_noise() -> None:
    """Install the filters above (``warnings`` keeps one copy of an identical filter)."""
    for category, pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    for name, prefixes in NOISY_LOGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(*prefixes))
