"""What the coordinator hands the Flower apps: a folder every process of the run reads.

``medlearn federate`` writes it once (``<out>/federated/work/``) before any Flower process starts:

- ``plan.json``: the resolved experiment config, the model name and constructor arguments, the hospitals
  (name and folder of their training data), the federated settings and the device;
- ``initial.npz``: the global model's starting weights (seeded, so every arm starts alike);
- ``hospitals/<name>/train.npz``: a hospital's preprocessed training units and targets. A ClientApp reads
  its own hospital's folder and nothing else; the preprocessing is the one shared by the federation.

The ServerApp writes ``rounds/round_<k>.npz`` (the global weights after round k), ``rounds/round_<k>.json``
(which hospitals replied, their training loss, who was left out and why) and ``status.json`` (the run's
end: finished, or the one-line reason it failed), which the coordinator reads: Flower's engines log a
ServerApp's exception but do not hand it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.config import ExperimentConfig

__all__ = ["Plan", "load_plan", "load_state", "save_state", "write_json_atomic"]

PLAN_FILE = "plan.json"
STATUS_FILE = "status.json"


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON through a temporary file, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    tmp.replace(path)


def save_state(path: Path, state: dict[str, torch.Tensor]) -> None:
    """A state dict as ``.npz`` (arrays only: loading it never runs code)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **{k: v.detach().cpu().numpy() for k, v in state.items()})
    tmp.replace(path)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: torch.from_numpy(npz[k].copy()) for k in npz.files}


@dataclass(frozen=True)
class Plan:
    """The run as the Flower apps see it (read from ``plan.json``)."""

    work: Path
    config: ExperimentConfig
    model_name: str
    model_kwargs: dict[str, Any]
    hospitals: list[str]
    device: str

    @property
    def federated(self) -> Any:
        assert self.config.federated is not None
        return self.config.federated

    def hospital_dir(self, name: str) -> Path:
        return self.work / "hospitals" / name

    @property
    def rounds_dir(self) -> Path:
        return self.work / "rounds"

    def status(self, ok: bool, message: str = "") -> None:
        write_json_atomic(self.work / STATUS_FILE, {"ok": ok, "message": message})


def write_plan(
    work: Path,
    cfg: ExperimentConfig,
    model_name: str,
    model_kwargs: dict[str, Any],
    hospitals: list[str],
    device: str,
) -> Path:
    write_json_atomic(
        work / PLAN_FILE,
        {
            "config": cfg.model_dump(mode="json"),
            "model_name": model_name,
            "model_kwargs": model_kwargs,
            "hospitals": hospitals,
            "device": device,
        },
    )
    return work / PLAN_FILE


@cache
def load_plan(work: str) -> Plan:
    """The plan of the run whose work folder is ``work`` (read once per process)."""
    raw = json.loads((Path(work) / PLAN_FILE).read_text())
    return Plan(
        Path(work),
        ExperimentConfig.model_validate(raw["config"]),
        raw["model_name"],
        raw["model_kwargs"],
        list(raw["hospitals"]),
        raw["device"],
    )
