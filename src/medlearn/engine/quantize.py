"""int8 copies of an exported model, calibrated on the bundle's own validation split.

Static quantisation (onnxruntime's QDQ format: int8 weights per output channel, int8 activations) needs
the range each activation takes on real inputs. Those come from the split the bundle already used for its
choices — validation — read from the data it was trained on (or ``--data``), preprocessed with the
bundle's own spec. The same validation inputs then measure what the copy changes: the share of units
whose label (class, decision at the operating point, or value to 0.1) stays the same. Operators
onnxruntime cannot quantise statically (e.g. LSTM) stay in float; the rest run in int8.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medlearn.errors import InputError

if TYPE_CHECKING:
    from medlearn.engine.bundle import Bundle

log = logging.getLogger(__name__)

#: validation units used to calibrate and check an int8 copy (enough for stable ranges, bounded time)
MAX_CALIBRATION_UNITS = 256
#: label agreement with the float model on validation below which static int8 gives way to dynamic
MIN_AGREEMENT = 0.99


def validation_inputs(
    bundle: Bundle, data: Path | None = None, limit: int = MAX_CALIBRATION_UNITS
) -> np.ndarray:
    """The bundle's validation units, preprocessed (``(n, *input_shape)`` float32), from ``data`` or the
    data the bundle was trained on.

    Raises:
        InputError: no data folder to read, no validation split in the bundle, or none of its units found.
    """
    from medlearn.paths import resolve_config_data_path

    root = Path(data) if data is not None else resolve_config_data_path(bundle.meta.data.root)
    if not root.exists():
        raise InputError(
            f"{root}: the bundle's training data is not here, and int8 calibrates on its validation split: "
            "pass --data DIR (the same dataset)"
        )
    wanted = set(bundle.meta.splits.get("val", []))
    if not wanted:
        raise InputError(f"{bundle.path}: the bundle records no validation split to calibrate int8 on")
    table = bundle.task.load(root)
    index = [i for i, uid in enumerate(table.ids) if uid in wanted][:limit]
    if not index:
        raise InputError(f"{root}: none of the bundle's {len(wanted)} validation units are in this dataset")
    return np.stack([bundle.preprocessing(table.raw[i]) for i in index]).astype(np.float32)


def quantize_int8(
    float_model: Path, target: Path, calibration: np.ndarray, agree: Callable[[Path], float]
) -> tuple[str, float]:
    """Write an int8 copy of ``float_model`` to ``target``: static (QDQ: int8 weights per channel and
    int8 activations, ranges measured on the ``calibration`` inputs) when its label agreement
    ``agree(target)`` on them reaches :data:`MIN_AGREEMENT`, else dynamic (int8 weights, activations
    quantised per call), whichever agrees more. A model whose classes are nearly tied (e.g. one barely
    trained) flips labels under int8 activations; weights alone move it less. Returns what was written
    and its label agreement."""
    static_kind = "static QDQ (int8 weights per channel, int8 activations)"
    _quantize_static(float_model, target, calibration)
    static = agree(target)
    if static >= MIN_AGREEMENT:
        return static_kind, static
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dynamic_path = target.with_suffix(".dynamic.onnx")
    quantize_dynamic(str(float_model), str(dynamic_path), weight_type=QuantType.QInt8)
    dynamic = agree(dynamic_path)
    if dynamic > static:
        dynamic_path.replace(target)
        return f"dynamic (int8 weights; static int8 activations agreed on {static:.1%} only)", dynamic
    dynamic_path.unlink()
    return static_kind, static


def _quantize_static(float_model: Path, target: Path, calibration: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Units(CalibrationDataReader):
        def __init__(self) -> None:
            self._rows = iter(calibration[i : i + 16] for i in range(0, len(calibration), 16))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._rows, None)
            return None if batch is None else {"input": batch}

    prepared = target.with_suffix(".prep.onnx")
    quiet = _RangeNotes()  # onnxruntime logs a per-channel note for every 1-D weight it leaves per-tensor
    logging.getLogger().addFilter(quiet)
    try:
        quant_pre_process(str(float_model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            Units(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    finally:
        logging.getLogger().removeFilter(quiet)
        prepared.unlink(missing_ok=True)


class _RangeNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "is out-of-range for weight" not in record.getMessage()
