"""``medlearn export``: a bundle's model as ONNX, for onnxruntime on servers and bedside devices.

What is exported is what the bundle predicts, not the bare network: the post-hoc calibration
(``logit / T + b``) and the output activation (sigmoid, softmax or none) are folded into the graph, so
onnxruntime returns the same probabilities as ``Bundle.predict_arrays``. The preprocessing stays in the
bundle (it runs in numpy before the graph); the ONNX file's metadata carries the preprocessing spec,
class names, operating point, task and the SHA-256 of the bundle's manifest, so the file alone says
what it expects and which bundle it came from.

Written by default to ``<bundle>/model.onnx`` and recorded under ``exports.onnx`` in ``bundle.json``
(the manifest is rewritten: a signed bundle must be signed again). Before it is recorded, onnxruntime's
output is compared with torch's on inputs of the bundle's shape; a difference above
:data:`MAX_ABS_DIFF` fails the export. ``int8`` adds a statically quantised copy (``model.int8.onnx``;
int8 weights and activations, calibrated on the bundle's validation split, see
:mod:`medlearn.engine.quantize`) with its label agreement on those validation units.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medlearn.engine.bundle import Bundle, load_bundle
from medlearn.engine.integrity import MANIFEST, sha256_file, write_manifest
from medlearn.errors import BundleError, InputError

#: onnxruntime float output must match torch within this (probabilities or values).
MAX_ABS_DIFF = 1e-4
OPSET = 17


class Deployed(nn.Module):
    """The bundle's model with its calibration and output activation: raw input → what predict returns."""

    def __init__(self, model: nn.Module, temperature: float, bias: float, kind: str):
        super().__init__()
        self.model, self.temperature, self.bias, self.kind = model, float(temperature), float(bias), kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = self.model(x) / self.temperature + self.bias
        if self.kind == "multiclass":
            return torch.softmax(scaled, dim=1)
        first = scaled.reshape(scaled.shape[0], -1)[:, 0]
        return torch.sigmoid(first) if self.kind == "binary" else first


def example_inputs(bundle: Bundle, examples: list[Path] | None, n: int = 8, seed: int = 0) -> np.ndarray:
    """Inputs of the bundle's shape: preprocessed ``examples`` (files ``predict`` accepts) when given,
    else standard-normal arrays of the recorded ``input_shape`` (preprocessed inputs are standardised)."""
    if examples:
        loaded = bundle.task.load_inputs(examples, bundle.task.predict_options())
        arrays = [bundle.preprocessing(u.raw) for u in loaded.units]
        if not arrays:
            raise InputError(f"{examples[0]}: no unit to export with")
        return np.stack(arrays).astype(np.float32)
    if bundle.meta.input_shape is None:
        raise InputError(
            f"{bundle.path}: the bundle does not record its input shape (trained before medlearn recorded "
            "it); pass an example input (--example FILE)"
        )
    return np.random.default_rng(seed).standard_normal((n, *bundle.meta.input_shape)).astype(np.float32)


def _metadata(bundle: Bundle) -> dict[str, str]:
    meta = bundle.meta
    return {
        "medlearn.task": meta.task.name,
        "medlearn.kind": meta.kind,
        "medlearn.unit": meta.unit,
        "medlearn.class_names": json.dumps(meta.class_names),
        "medlearn.operating_point": json.dumps(
            None if meta.operating_point is None else meta.operating_point.model_dump()
        ),
        "medlearn.preprocessing": json.dumps(meta.preprocessing),
        "medlearn.model": f"{meta.model.name}@{meta.created}",
        "medlearn.bundle_manifest_sha256": sha256_file(bundle.path / MANIFEST),
        "medlearn.output": {
            "binary": "P(positive), calibrated",
            "multiclass": "class probabilities, calibrated",
            "regression": "value",
        }[meta.kind],
    }


def _onnx_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _labels(kind: str, out: np.ndarray, threshold: float) -> np.ndarray:
    if kind == "multiclass":
        return out.argmax(axis=1)
    if kind == "binary":
        return (out >= threshold).astype(int)
    return np.round(out, 1)


def export_onnx(
    bundle_path: str | Path,
    out: str | Path | None = None,
    int8: bool = False,
    examples: list[Path] | None = None,
    allow_external: bool = False,
    data: Path | None = None,
) -> dict[str, Any]:
    """Export a bundle's model (calibration and activation folded in) to ONNX and check it.

    Args:
        bundle_path: the bundle (or its run folder).
        out: the ONNX file; default ``<bundle>/model.onnx``, which is then recorded in ``bundle.json``
            (where ``predict --runtime onnx`` finds it).
        int8: also write an int8 copy beside it (``<name>.int8.onnx``), calibrated on the validation split.
        examples: input files to check parity on (default: random arrays of the recorded input shape).
        allow_external: export a bundle that runs out-of-tree code.
        data: the dataset whose validation split calibrates and checks the int8 copy (default: the data
            the bundle was trained on).

    Returns:
        What was exported: file, opset, the max abs difference to torch, int8 file and label agreement.

    Raises:
        BundleError: a generator (not exported), or onnxruntime disagreeing with torch.
        InputError: no input shape recorded and no example given.

    Examples:
        >>> export_onnx("runs/ecg_af")["max_abs_diff"] < 1e-4  # doctest: +SKIP
        True
    """
    bundle = load_bundle(bundle_path, allow_external=allow_external)
    if bundle.kind == "generative":
        raise BundleError(f"{bundle.path}: generators are not exported (they sample token by token)")
    inside = out is None
    target = bundle.path / "model.onnx" if out is None else Path(out)
    if target.suffix != ".onnx":
        raise InputError(f"{target}: the output must be a .onnx file")
    target.parent.mkdir(parents=True, exist_ok=True)
    x = example_inputs(bundle, examples)
    cal = bundle.calibration
    deployed = Deployed(bundle.model.cpu(), cal.temperature, cal.bias, bundle.kind).eval()
    with torch.no_grad():
        expected = deployed(torch.from_numpy(x)).numpy()
        torch.onnx.export(
            deployed,
            (torch.from_numpy(x),),
            str(target),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    import onnx

    graph = onnx.load(str(target))
    for key, value in _metadata(bundle).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(target))
    got = _onnx_outputs(target, x)
    diff = float(np.abs(got - expected).max())
    if not diff <= MAX_ABS_DIFF:
        target.unlink(missing_ok=True)
        raise BundleError(
            f"{bundle.path}: onnxruntime differs from torch by {diff:.2g} (> {MAX_ABS_DIFF:g}); not exported"
        )
    record: dict[str, Any] = {
        "file": target.name if inside else str(target),
        "opset": OPSET,
        "max_abs_diff": diff,
        "checked_on": f"{len(x)} {'example' if examples else 'random'} inputs",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if int8:
        from medlearn.engine.quantize import quantize_int8, validation_inputs

        val = validation_inputs(bundle, data)
        threshold = bundle.threshold if bundle.threshold is not None else 0.5
        float_labels = _labels(bundle.kind, _onnx_outputs(target, val), threshold)

        def agreement(path: Path) -> float:
            return float((_labels(bundle.kind, _onnx_outputs(path, val), threshold) == float_labels).mean())

        quantized = target.with_suffix(".int8.onnx")
        how, agreed = quantize_int8(target, quantized, val, agreement)
        record["int8"] = {
            "file": quantized.name if inside else str(quantized),
            "quantization": how,
            "calibrated_on": f"{len(val)} validation units",
            "label_agreement": agreed,
        }
    if inside:
        bundle.meta.exports["onnx"] = record
        (bundle.path / "bundle.json").write_text(bundle.meta.to_json())
        write_manifest(bundle.path)
    return record
