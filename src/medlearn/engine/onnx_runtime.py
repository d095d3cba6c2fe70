"""Predict with a bundle's ONNX export through onnxruntime, without torch.

What a bedside device or a small server runs: the bundle's own preprocessing (numpy) and its exported
graph (calibration and activation folded in, see :mod:`medlearn.engine.export`). The bundle is checked
exactly as :func:`medlearn.engine.bundle.load_bundle` checks it (manifest, schema, task), and the records
are the same prediction records; there is no Grad-CAM (no torch to take gradients with).

Torch is not imported on this path, so tasks whose preprocessing is numpy/scipy (ECG, EHR) predict
where torch is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlearn.engine.artifacts import BundleMeta
from medlearn.engine.data import Preprocessing
from medlearn.engine.predictor import Predictor, read_bundle
from medlearn.engine.task import Task
from medlearn.errors import BundleError, MissingDependencyError


@dataclass
class OnnxBundle(Predictor):
    """A bundle predicting through its ONNX export."""

    path: Path
    meta: BundleMeta
    task: Task
    preprocessing: Preprocessing
    session: Any
    model: Any = None  # no torch module: Grad-CAM is not offered

    def predict_arrays(self, arrays: list[np.ndarray]) -> np.ndarray:
        if not arrays:
            return np.zeros(0)
        name = self.session.get_inputs()[0].name
        outs = []
        for i in range(0, len(arrays), 64):
            x = np.stack(arrays[i : i + 64]).astype(np.float32)
            out = self.session.run(None, {name: x})[0]
            self.check_outputs(out, x, i, runtime="ONNX ")
            outs.append(out)
        return np.concatenate(outs)


def load_onnx_bundle(
    path: str | Path,
    allow_external: bool = False,
    public_key: str | Path | None = None,
    int8: bool = False,
    threads: int | None = None,
) -> OnnxBundle:
    """Load a bundle for onnxruntime: verified like :func:`~medlearn.engine.bundle.load_bundle`, then its
    recorded ONNX export (``medlearn export``; ``int8`` for the quantised copy).

    ``threads`` is onnxruntime's intra-op thread count per prediction (default: its own, one per core).
    A service that runs concurrent requests in parallel passes 1: several sessions' thread pools on the
    same cores, each spinning while it waits for work, cost more CPU than they save.

    Raises:
        BundleError: the checks of ``load_bundle``, or a bundle with no (int8) ONNX export.
        MissingDependencyError: onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError(
            'the onnx runtime needs onnxruntime: pip install "medlearn[serve]"'
        ) from exc
    folder, meta, task = read_bundle(path, allow_external=allow_external, public_key=public_key)
    record = meta.exports.get("onnx")
    if record is None or (int8 and "int8" not in record):
        what = "an int8 ONNX export (medlearn export --int8)" if int8 else "an ONNX export"
        raise BundleError(f"{folder}: has no {what}; run medlearn export {folder} --format onnx first")
    file = folder / (record["int8"]["file"] if int8 else record["file"])
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    return OnnxBundle(folder, meta, task, Preprocessing(meta.preprocessing), session)
