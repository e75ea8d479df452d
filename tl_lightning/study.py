"""What the ablation study is: its arms, its training mix and its evaluation sets.

Shared by the driver (``reproduce.py``, which runs the arms) and the report
(``ablation_report.py``, which reads their results), so neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass

SYNTHETIC_TRAIN = "synthetic-sft:train?n=1200&error_rate=0.3"
# Files under the data root (the synthetic world is built in): no test item of any evaluation set.
TRAINING_FILES = ("Seal-Tools/Seal-Tools_Dataset/dev.jsonl", "API-Bank/lv1-lv2-samples/level-1-given-desc")
# (name, scoring rules, data): the evaluation sets, never trained on.
EVAL_SETS = (("synthetic", "generic", "synthetic:heldout_domains?n=400"),
             ("bfcl_simple", "bfcl", "BFCL_v3/BFCL_v3_simple.json"),
             ("bfcl_multiple", "bfcl", "BFCL_v3/BFCL_v3_multiple.json"),
             ("sealtools", "generic", "Seal-Tools/Seal-Tools_Dataset/test_in_domain.jsonl"),
             ("toolalpaca", "toolalpaca", "ToolAlpaca/data/eval_real.json"),
             ("rotbench", "rotbench", "RoTBench/First_Turn/clean.json"))
SET_NAMES = tuple(name for name, _, _ in EVAL_SETS)


@dataclass(frozen=True)
class Arm:
    """One row of the ablation: how its model is made.

    ``train``: ``"none"`` (the base model), ``"sft"`` (``sft.yaml`` with ``mae`` and ``w_max``;
    ``w_max`` 1 is plain cross-entropy) or ``"rl"`` (``irm.yaml`` from ``start``'s model of the
    same seed); ``seeded``: run with every seed of the budget (else the first only)."""

    name: str
    label: str
    train: str = "sft"
    mae: bool = False
    w_max: float = 1.0
    start: str | None = None
    seeded: bool = False


ARMS = (
    Arm("base", "base model (no training)", train="none"),
    Arm("sft", "standard SFT", mae=False, w_max=1.0, seeded=True),
    Arm("sft_mae", "SFT + MAE", mae=True, w_max=1.0),
    Arm("pkt", "PKT", mae=False, w_max=9.0),
    Arm("mae_pkt", "MAE + PKT", mae=True, w_max=9.0, seeded=True),
    Arm("mae_pkt_irm", "MAE + PKT + IRM", train="rl", start="mae_pkt", seeded=True),
)
ARM_NAMES = tuple(a.name for a in ARMS)
STANDARD, FULL = "sft", "mae_pkt_irm"
