"""Model bundles: weights + the exact preprocessing + everything needed to trust and reuse a model.

A bundle is a directory::

    bundle.json        task, target, model, preprocessing spec, operating point, calibration, metrics,
                       data fingerprint, split membership, resolved config, library versions, and under
                       ``training`` what the model saw (``summary``) and the torch thread count and
                       deterministic flag a bit-exact re-training needs (``threads``, ``deterministic``);
                       its schema is :class:`medlearn.engine.artifacts.BundleMeta`
    model.safetensors  weights (no pickle; loading never executes code from the bundle)
    model_card.md      intended use, data, metrics with CIs, caveats

``serve``, ``predict``, ``explain`` and ``evaluate`` load a bundle and never re-declare transforms: a
different preprocessing at serving time is the most common silent bug in clinical ML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medlearn.engine.artifacts import (
    BundleMeta,
    save_bundle,
)
from medlearn.engine.data import Preprocessing
from medlearn.engine.posthoc import Calibration, apply_calibration, outputs_to_predictions
from medlearn.engine.predictor import Predictor, read_bundle
from medlearn.engine.task import Task
from medlearn.errors import BundleError, ConfigError

__all__ = ["Bundle", "BundleMeta", "load_bundle", "save_bundle"]


@dataclass
class Bundle(Predictor):
    """A loaded bundle: the task, the torch model in eval mode and the saved preprocessing."""

    path: Path
    meta: BundleMeta
    task: Task
    model: nn.Module
    preprocessing: Preprocessing
    device: torch.device = torch.device("cpu")

    @property
    def calibration(self) -> Calibration:
        """Post-hoc calibration of the logits fitted on validation (identity when absent)."""
        return Calibration(**self.meta.calibration.model_dump())

    @torch.no_grad()
    def predict_arrays(self, arrays: list[np.ndarray]) -> np.ndarray:
        """Model outputs for already-preprocessed arrays (P(positive), class probabilities or values)."""
        if not arrays:
            return np.zeros(0)
        if self.model.training:  # eval mode is set on load; re-setting it walks every module each call
            self.model.eval()
        outs = []
        for i in range(0, len(arrays), 64):
            x = torch.from_numpy(np.stack(arrays[i : i + 64])).to(self.device)
            logits = self.model(x).cpu()
            self.check_outputs(logits.numpy(), x.cpu().numpy(), i)
            outs.append(outputs_to_predictions(apply_calibration(logits, self.calibration), self.kind))
        return np.concatenate(outs)

    def generate(self, n: int, seed: int = 0, temperature: float | None = None) -> list[Any]:
        """``medlearn generate`` as a function: ``n`` samples of a generative bundle (e.g. SMILES) with its
        own preprocessing (codec).

        Raises:
            ConfigError: the bundle is a predictive model.
        """
        if self.kind != "generative":
            raise ConfigError(f"{self.path}: a {self.kind} model cannot generate; pass a generator's bundle")
        return self.task.generate(self.model, self.preprocessing, n, seed=seed, temperature=temperature)


def load_bundle(
    path: str | Path, device: str = "cpu", allow_external: bool = False, public_key: str | Path | None = None
) -> Bundle:
    """Load a bundle directory onto a device, checking its metadata against the schema.

    Args:
        path: the bundle directory (``<out>/bundle``; the run folder ``<out>`` is accepted too).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        allow_external: load a bundle whose task, model or transform is out-of-tree code
            (``package.module:Name``). Loading it imports and runs that package, so it is refused unless
            asked for (CLI: ``--allow-external``).
        public_key: an Ed25519 public key (PEM): the bundle must carry a signature of its manifest by the
            matching private key (CLI: ``--require-signature KEY``; see :mod:`medlearn.engine.integrity`).

    Returns:
        The :class:`Bundle`: its task, the model in eval mode, the saved preprocessing and metadata.

    Raises:
        BundleError: not a bundle, an unsupported format version, a file that differs from the bundle's
            SHA-256 manifest (named), a missing or bad signature when ``public_key`` is given, a field
            unknown to, missing from or invalid for the schema (named), class names that are not the
            task's, weights that do not load, or out-of-tree code without ``allow_external``.

    Examples:
        >>> bundle = load_bundle("runs/ecg_af")  # doctest: +SKIP
        >>> bundle.kind, bundle.class_names  # doctest: +SKIP
        ('multiclass', ['Normal', 'AF', 'Other', 'Noisy'])
    """
    from safetensors.torch import load_file

    from medlearn.engine.models import build_model
    from medlearn.engine.runtime import pick_device

    path, meta, task = read_bundle(path, allow_external=allow_external, public_key=public_key)
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise BundleError(f"{path}: bundle has no model.safetensors")
    model, _ = build_model(meta.model.name, meta.model.params, {})
    if meta.privacy is not None and meta.privacy.replaced_layers:  # e.g. batch norm → group norm for DP-SGD
        from medlearn.privacy.dp import rebuild_replaced_layers

        rebuild_replaced_layers(model, meta.privacy.replaced_layers)
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise BundleError(f"{weights}: weights do not load into {meta.model.name} ({exc})") from None
    target = pick_device(device)
    model.to(target).eval()
    return Bundle(path, meta, task, model, Preprocessing(meta.preprocessing), target)
