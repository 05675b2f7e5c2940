"""Atomic, resumable training checkpoints: safetensors for tensors, JSON for the rest.

A checkpoint directory is built under a temporary name and renamed into place, so a crash
(even SIGKILL mid-write) leaves either the previous complete checkpoint or the new one.
The optimizer state is a dict of tensors and numbers, loaded with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..utils import DiffprobeError, atomic_dir, read_json, write_json

COMPLETE = "state.json"  # written last: its presence marks a complete checkpoint


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, ema_params: list[torch.Tensor],
                    optimizer: torch.optim.Optimizer, state: dict) -> Path:
    path = Path(path)
    with atomic_dir(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
        save_file({f"{i}": p.detach().contiguous().cpu() for i, p in enumerate(ema_params)}, tmp / "ema.safetensors")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        write_json(tmp / COMPLETE, state)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Return {"model": state_dict, "ema": [tensors], "optimizer": state_dict, "state": dict}."""
    path = Path(path)
    if not (path / COMPLETE).is_file():
        raise DiffprobeError(f"{path}: no complete checkpoint here (state.json missing); start without --resume")
    try:
        model = load_file(path / "model.safetensors")
        ema = load_file(path / "ema.safetensors")
        optimizer = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated or tampered files end here
        raise DiffprobeError(f"{path}: checkpoint is damaged ({type(e).__name__}: {e}); delete it to start over, "
                             f"or restore it from a backup") from None
    return {"model": model, "ema": [ema[str(i)] for i in range(len(ema))], "optimizer": optimizer,
            "state": read_json(path / COMPLETE)}
