"""A fit's checkpoint, ``<checkpoint_dir>/last.pt``: written by the Trainer after every epoch, read back
by ``train --resume``.

It holds what a resumed fit needs to end exactly where an uninterrupted one would: the model, optimizer
and scheduler states, the history, the best epoch and its weights, the patience count, torch's random
state and, for a private fit, the DP accountant's history (:mod:`medlearn.privacy.dp`), so the privacy
account continues too. Only tensors and plain containers: it loads with ``weights_only=True``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medlearn.engine.callbacks import FitState

__all__ = ["load_checkpoint", "restore_checkpoint", "save_checkpoint"]

log = logging.getLogger(__name__)


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    epoch: int,
    state: FitState,
    best_state: dict[str, torch.Tensor],
    bad_epochs: int,
    privacy: dict[str, Any] | None = None,
) -> Path:
    """Write the fit as it is after ``epoch`` to ``folder/last.pt`` (through a temporary file, so an
    interruption never leaves half a checkpoint) and return that path."""
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "epoch": epoch,
        "history": state.history,
        "best_state": best_state,
        "best_score": state.best_score,
        "best_epoch": state.best_epoch,
        "bad_epochs": bad_epochs,
        "torch_rng": torch.get_rng_state(),
        "privacy": privacy,  # the DP accountant's history (None when not private)
    }
    tmp = folder / "last.pt.tmp"
    torch.save(checkpoint, tmp)
    tmp.replace(folder / "last.pt")
    return folder / "last.pt"


def load_checkpoint(folder: Path | None) -> dict[str, Any] | None:
    """The checkpoint in ``folder``, or None when there is none."""
    path = None if folder is None else folder / "last.pt"
    if path is None or not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def restore_checkpoint(
    checkpoint: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: FitState,
) -> tuple[dict[str, torch.Tensor], int]:
    """Load a checkpoint into the fit: model, optimizer, scheduler, history, best score and epoch, the
    next epoch and torch's random state. Returns the best epoch's weights and the patience count."""
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None and checkpoint.get("scheduler"):
        scheduler.load_state_dict(checkpoint["scheduler"])
    state.history = checkpoint["history"]
    state.best_score, state.best_epoch = checkpoint["best_score"], checkpoint["best_epoch"]
    state.start_epoch = checkpoint["epoch"] + 1
    torch.set_rng_state(checkpoint["torch_rng"])
    log.info("resumed from epoch %d", checkpoint["epoch"])
    return checkpoint["best_state"], checkpoint["bad_epochs"]
