"""Run the tl_lightning CLI as its own process, for tests that kill it, signal it or start
several ranks (DDP relaunches this same command line for the other ranks).

    python tests/scripts/run_cli.py [--dump FILE] fit --config ... [CLI args]

``--dump FILE``: after the run, rank 0 writes ``{"global_step", "state_dict"}`` with the full
(un-sharded) model weights on CPU. Callbacks from ``fault_callbacks.py`` (next to this file)
can be added with ``--trainer.callbacks+=fault_callbacks.KillAtStep`` etc.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tl_lightning


def full_state_dict(module) -> dict:
    """The module's weights as plain CPU tensors (gathers FSDP2 shards; every rank must call it)."""
    import torch
    from torch.distributed.tensor import DTensor

    if any(isinstance(p, DTensor) for p in module.parameters()):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}


def run(argv: list[str]) -> None:
    dump = None
    if argv[:1] == ["--dump"]:
        dump, argv = argv[1], argv[2:]
    from tl_lightning.cli import main

    cli = main(argv)
    if dump is not None:
        import torch

        state = full_state_dict(cli.model.model)
        if cli.trainer.is_global_zero:
            torch.save({"global_step": cli.trainer.global_step, "state_dict": state}, dump)


if __name__ == "__main__":
    run(sys.argv[1:])
