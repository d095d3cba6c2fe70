"""Where a model runs and what a re-training must match: the device choice and the reproducibility
settings a bundle records. Kept apart from the trainer so that loading a bundle (which needs a device)
does not import the training loop."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

#: What a bundle can promise about re-training it (measured; see the engine's tests and the README).
REPRODUCIBILITY = (
    "same seed, config, data, library versions and machine: bit-exact weights with one torch "
    "thread (--threads 1); with more threads CPU reductions may split differently, so weights "
    "can differ in the last bits"
)


def reproducibility() -> dict[str, Any]:
    """The settings a re-training must match to reproduce weights: torch's intra-op thread count and
    whether deterministic algorithms were enforced (both recorded in ``bundle.json`` ``training``)."""
    return {"threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled()}


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Fix Python, NumPy and torch seeds and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
