"""README blocks of the imaging pipeline: LIDC and chest X-ray results, calibration, the real-CT path."""

from __future__ import annotations

import json

import numpy as np

from readme_blocks.common import (
    BINARY_HEADER,
    RESULTS,
    Result,
    binary_cells,
    commits,
    num,
    table,
    value,
)

# -------------------------------------------------------------------------------------------- imaging
IMAGING = [
    ("lung_nodule", "LIDC nodule malignancy", "2.5D ResNet (MONAI, 16 slices as channels)"),
    (
        "lung_nodule_seed_cnn",
        "LIDC nodule malignancy",
        "seed CNN (Conv32–Pool–Conv64–Pool–Dense128), middle slice",
    ),
    ("cxr_pneumonia", "Pneumonia on chest X-ray", "ResNet-18-style 2D (MONAI) at 28 px"),
]


def imaging() -> str:
    rows = []
    for name, what, model in IMAGING:
        rows.append([f"{what} (`{name}`)", model, *binary_cells(Result(name))])
    header = ["task (config)", "model", *BINARY_HEADER]
    return (
        table(header, rows)
        + f"\nFrom `results/<config>/`; code at commit {commits([n for n, *_ in IMAGING])}.\n"
    )


LIDC_CHOICES = [
    ("lung_nodule+tta", "2.5D ResNet, batch norm, in-plane TTA (shipped before issue 12)"),
    ("lung_nodule", "same, without TTA (shipped)"),
    ("lung_nodule+group_norm", "same, group norm (`model.params.norm=[group, {num_groups: 8}]`)"),
    ("lung_nodule_seed_cnn", "seed CNN, middle slice"),
]


def imaging_choices() -> str:
    rows = [
        [label, f"`{name}`", value(Result(name).val, "auroc"), value(Result(name).val, "ece")]
        for name, label in LIDC_CHOICES
    ]
    return table(["LIDC variant", "result", "val AUROC", "val ECE"], rows)


# ------------------------------------------------------------------------------------------ calibration
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def crossfit_ece(name: str, folds: int = 5) -> dict[str, float]:
    """Validation ECE of each calibration variant, each unit scored by a calibration fitted on the other
    folds of the validation groups (fitting and scoring on the same units would always favour the
    richest variant). The raw logits are recovered from the stored probabilities and the bundle's
    calibration: ``p = σ(z / T + b)``."""
    import torch

    from medlearn.engine.calibration import expected_calibration_error
    from medlearn.engine.posthoc import Calibration, apply_calibration, fit_calibration

    r = Result(name)
    rows = r.predictions("val")
    cal = r.bundle["calibration"]
    classes = r.bundle.get("target", r.bundle)["class_names"]  # bundle.json v2 keeps them under target
    y = np.array([classes.index(row["target"]) for row in rows])
    z = (_logit(np.array([float(row["probability"]) for row in rows])) - cal["bias"]) * cal["temperature"]
    groups = np.array([row["group"] for row in rows])
    unique = np.unique(groups)
    fold_of = {g: i % folds for i, g in enumerate(np.random.default_rng(0).permutation(unique))}
    fold = np.array([fold_of[g] for g in groups])
    out = {}
    for variant in ("none", "temperature", "temperature + bias"):
        prob = np.empty(len(y))
        for k in range(folds):
            fit, held = fold != k, fold == k
            if variant == "none":
                c = Calibration()
            elif variant == "temperature":
                c = _fit_temperature(z[fit], y[fit])
            else:
                c = fit_calibration(z[fit, None], y[fit], "binary")
            prob[held] = torch.sigmoid(apply_calibration(torch.from_numpy(z[held, None]), c))[:, 0].numpy()
        out[variant] = expected_calibration_error(y, prob)
    return out


def _fit_temperature(z: np.ndarray, y: np.ndarray):
    from scipy.optimize import minimize_scalar

    from medlearn.engine.posthoc import LOG_T_BOUNDS, Calibration

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, s) - y * s))

    return Calibration(float(np.exp(minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded").x)))


def calibration() -> str:
    rows = []
    for name in ("lung_nodule", "cxr_pneumonia"):
        scores = crossfit_ece(name)
        best = min(scores, key=scores.get)
        shipped = (
            "temperature + bias"
            if Result(name).bundle["calibration"] != {"temperature": 1.0, "bias": 0.0}
            else "none"
        )
        rows.append(
            [
                f"`{name}`",
                *[num(scores[v]) for v in ("none", "temperature", "temperature + bias")],
                best,
                shipped,
                value(Result(name).test, "ece"),
            ]
        )
    return table(
        [
            "config",
            "val ECE: none",
            "temperature",
            "temperature + bias",
            "best on val",
            "shipped",
            "test ECE (shipped)",
        ],
        rows,
    )


def real_ct() -> str:
    """Per LIDC patient of the shared DICOM slabs: each reader's rating and the bundle's probability."""
    rows = []
    for name in ("lung_nodule", "lung_nodule_seed_cnn"):
        records = json.loads((RESULTS / name / "real_ct.json").read_text())["records"]
        by_patient: dict[str, list[dict]] = {}
        for r in records:
            if "probability" in r:
                by_patient.setdefault(r["unit"].split("/")[0], []).append(r)
        for patient, marks in by_patient.items():
            partial = any(r.get("warnings") for r in marks)
            rows.append(
                [
                    f"`{name}`",
                    patient,
                    ", ".join(str(r["details"]["reader_malignancy"]) for r in marks),
                    ", ".join(num(r["probability"]) for r in marks),
                    num(marks[0]["threshold"]),
                    "partial nodule (warning)" if partial else "whole nodule in the slab",
                ]
            )
    return table(
        [
            "bundle",
            "patient",
            "readers' ratings (1–5)",
            "p(malignant) per reader mark",
            "threshold",
            "coverage",
        ],
        rows,
    )
