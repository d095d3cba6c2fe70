"""Build the README's results tables from the committed result files under ``results/``.

Every figure in a README results table comes from a file that ``tools/record_result.py`` wrote (or, for
the molecule generators whose runs predate issue 12, from ``results/legacy/``, labelled as such). The
README holds each table between two markers::

    <!-- results:imaging -->
    ...generated...
    <!-- /results:imaging -->

``python tools/readme_tables.py`` checks that every block equals what the files give (exit 1 and a diff
otherwise); ``--write`` rewrites the blocks. ``tests/test_readme_results.py`` runs the check, so a README
figure that differs from its result file fails the suite.

Selection is shown, not hidden: each table puts the **validation** figure that made a choice beside the
single **test** figure of the shipped config; variants (``results/<config>+<variant>/``) have no test
figures at all.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


# ---------------------------------------------------------------------------------------------- reading
class Result:
    """One folder of ``results/``: the files record_result.py wrote."""

    def __init__(self, name: str):
        self.name = name
        self.path = RESULTS / name
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path}: no such result (run tools/record_result.py)")
        self.provenance = self._json("provenance.json")
        self.val = self._json("metrics_val.json")
        self.bundle = self._json("bundle.json")
        test = self.path / "metrics.json"
        self.test = json.loads(test.read_text()) if test.is_file() else None

    def _json(self, name: str) -> dict[str, Any]:
        return json.loads((self.path / name).read_text())

    @property
    def minutes(self) -> float:
        return self.provenance["wall_seconds"] / 60

    def predictions(self, split: str) -> list[dict[str, str]]:
        with (self.path / "predictions.csv").open(newline="") as fh:
            return [row for row in csv.DictReader(fh) if row["split"] == split]


def metric(scored: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if scored is None:
        return None
    return scored["metrics"].get(name) or scored.get("per_class", {}).get(name)


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def ci(entry: dict[str, Any] | None, digits: int = 3, bold: bool = False) -> str:
    """``0.876 (0.806–0.934)``; a CI the bootstrap did not give (too few clusters) is left out."""
    if entry is None:
        return "–"
    text = num(entry["value"], digits)
    text = f"**{text}**" if bold else text
    bounds = entry.get("ci95")
    return text + (f" ({num(bounds[0], digits)}–{num(bounds[1], digits)})" if bounds else "")


def value(scored: dict[str, Any] | None, name: str, digits: int = 3) -> str:
    entry = metric(scored, name)
    return "–" if entry is None else num(entry["value"], digits)


def per_class(scored: dict[str, Any], name: str, cls: str, digits: int = 2) -> str:
    return num(scored.get("per_class", {}).get(cls, {}).get(name, {}).get("value"), digits)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def commits(names: list[str]) -> str:
    """Where the figures came from: the commits that ran, and whether each tree was clean."""
    seen: dict[str, bool] = {}
    for n in names:
        p = Result(n).provenance
        seen[p["commit"][:7]] = seen.get(p["commit"][:7], True) and p["tree_clean"]
    return ", ".join(f"`{c}`" + ("" if clean else " (uncommitted changes)") for c, clean in seen.items())


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
        r = Result(name)
        sens = metric(r.test, "sensitivity")["value"]
        spec = metric(r.test, "specificity")["value"]
        rows.append(
            [
                f"{what} (`{name}`)",
                model,
                f"{r.test['n']} {r.test['unit']}s",
                value(r.val, "auroc"),
                ci(metric(r.test, "auroc"), bold=True),
                f"{num(sens)} / {num(spec)}",
                value(r.test, "ece"),
                f"{r.minutes:.1f} min",
            ]
        )
    header = [
        "task (config)",
        "model",
        "test n",
        "val AUROC",
        "test AUROC (95% CI)",
        "test sensitivity / specificity at the operating point",
        "test ECE",
        "train time (1 thread)",
    ]
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


# ------------------------------------------------------------------------------------------------ EHR
EHR_MODELS = [
    ("lstm", "LSTM (headline)"),
    ("gru_attention", "GRU + attention"),
    ("transformer", "Transformer"),
    ("linear", "logistic regression on aggregates"),
    ("gbm", "gradient boosting on aggregates"),
]
EHR_DATASETS = [("mimic4", "MIMIC-IV"), ("mimic3", "MIMIC-III"), ("eicu", "eICU")]


def ehr_result(dataset: str, model: str) -> str:
    """The shipped config of that model on that dataset, else the dataset config's variant."""
    base = f"ehr_los_{dataset}"
    if model == "lstm":
        return base
    shipped = f"{base}_{model}"
    return shipped if (RESULTS / shipped).is_dir() else f"{base}+{model}"


def ehr() -> str:
    rows, names = [], []
    for model, label in EHR_MODELS:
        row = [label]
        for dataset, _ in EHR_DATASETS:
            name = ehr_result(dataset, model)
            names.append(name)
            r = Result(name)
            row += [value(r.val, "kappa_linear"), ci(metric(r.test, "kappa_linear")) if r.test else "–"]
        rows.append(row)
    header = ["model"]
    for dataset, label in EHR_DATASETS:
        n = Result(ehr_result(dataset, "lstm")).test["n"]
        header += [f"{label} val", f"{label} test ({n} adm.)"]
    return (
        table(header, rows)
        + "\nval: validation kappa_linear, what a choice may use; test: the shipped config's single test "
        "figure (95% CI, clustered by patient); –: a variant that is not shipped, so never scored on test. "
        f"Code at {commits(names)}.\n"
    )


def ehr_other() -> str:
    reg, mort = Result("ehr_los_regression_mimic4"), Result("ehr_mortality_mimic4")
    rows = [
        [
            "`ehr_los_regression_mimic4` (remaining days)",
            "MAE (days)",
            value(reg.val, "mae", 2),
            ci(metric(reg.test, "mae"), 2),
            str(reg.test["n"]),
        ],
        [
            "`ehr_mortality_mimic4` (in-hospital death)",
            "AUROC",
            value(mort.val, "auroc"),
            ci(metric(mort.test, "auroc")),
            str(mort.test["n"]),
        ],
    ]
    return table(["config", "metric", "val", "test (95% CI)", "test n"], rows)


# -------------------------------------------------------------------------------------------- signals
def _af(r: Result) -> str:
    t = r.test
    f1 = "/".join(per_class(t, "f1", c) for c in ("Normal", "AF", "Other", "Noisy"))
    return (
        f"challenge F1 {ci(metric(t, 'challenge_f1'), bold=True)}; accuracy {ci(metric(t, 'accuracy'))}; "
        f"AUROC {value(t, 'auroc')}; F1 N/AF/O/~ {f1}"
    )


def _cv(r: Result, names: list[str]) -> str:
    return "; ".join(f"{label} {ci(metric(r.test, key))}" for key, label in names)


SIGNALS = [
    (
        "ecg_af_cinc2017",
        "CinC 2017, 2,500 of the 8,528 records",
        "record; held-out test",
        "challenge_f1",
        _af,
    ),
    (
        "ecg_beats_mitdb",
        "MIT-BIH DS1, 22 records",
        "beat; 5-fold CV by record",
        "macro_f1",
        lambda r: _cv(r, [("accuracy", "accuracy"), ("macro_f1", "macro-F1")]),
    ),
    (
        "eeg_seizure_bonn",
        "Bonn, 500 segments (E vs A–D)",
        "segment; 5-fold CV",
        "auroc",
        lambda r: _cv(
            r,
            [
                ("accuracy", "accuracy"),
                ("sensitivity", "sensitivity"),
                ("specificity", "specificity"),
                ("auroc", "AUROC"),
            ],
        ),
    ),
    (
        "eeg_seizure_bonn_5set",
        "Bonn, sets A–E",
        "segment; 5-fold CV",
        "kappa",
        lambda r: _cv(r, [("accuracy", "accuracy"), ("kappa", "κ")]),
    ),
    (
        "eeg_seizure_delhi",
        "New Delhi, 150 segments",
        "segment; 5-fold CV",
        "kappa",
        lambda r: _cv(r, [("accuracy", "accuracy"), ("kappa", "κ")]),
    ),
    (
        "eeg_sleep_edf",
        "Sleep-EDF SC, 10 nights",
        "epoch; 5-fold CV by subject",
        "kappa",
        lambda r: (
            _cv(r, [("kappa", "whole recording κ"), ("macro_f1", "macro-F1")])
            + "; sleep period ± 30 min "
            + _sleep_period(r)
        ),
    ),
]


def _sleep_period(r: Result) -> str:
    sub = next(iter(r.test.get("subsets", {}).values()), None)
    return "–" if sub is None else f"κ {ci(metric(sub, 'kappa'))}, macro-F1 {value(sub, 'macro_f1')}"


def _fold_spread(r: Result, key: str) -> str:
    folds = [f["metrics"].get(key) for f in r.test.get("folds", []) if f["metrics"].get(key) is not None]
    return f"folds {min(folds):.2f}–{max(folds):.2f}" if folds else ""


def signals() -> str:
    rows = []
    for name, data, unit, key, describe in SIGNALS:
        r = Result(name)
        spread = _fold_spread(r, key)
        rows.append(
            [
                f"`{name}`",
                data,
                f"{unit} (n = {r.test['n']:,})",
                describe(r) + (f" ({spread})" if spread else ""),
                value(r.val, key),
                f"{r.minutes:.1f} min",
            ]
        )
    return (
        table(
            [
                "config",
                "data",
                "unit, split",
                "test or pooled out-of-fold metric (95% CI)",
                "val (choice)",
                "train time (1 thread)",
            ],
            rows,
        )
        + f"\nCode at {commits([s[0] for s in SIGNALS])}.\n"
    )


def signals_choices() -> str:
    rows = [
        [label, f"`{name}`", value(Result(name).val, "challenge_f1"), value(Result(name).val, "accuracy")]
        for name, label in (
            ("ecg_af_cinc2017", "ECG + RR-interval channel (shipped)"),
            ("ecg_af_cinc2017+no_rr", "ECG alone"),
        )
    ]
    return table(["CinC 2017 variant", "result", "val challenge F1", "val accuracy"], rows)


# ------------------------------------------------------------------------------------------- molecules
MOLECULE_ROWS = [
    "validity",
    "unique_1k",
    "unique_10k",
    "fcd_test",
    "fcd_testsf",
    "snn_test",
    "snn_testsf",
    "frag_test",
    "frag_testsf",
    "scaf_test",
    "scaf_testsf",
    "int_div1",
    "int_div2",
    "filters",
    "novelty",
    "logp_w",
    "sa_w",
    "qed_w",
    "weight_w",
]


def molecules() -> str:
    legacy = json.loads((RESULTS / "legacy" / "molecules.json").read_text())
    models = legacy["models"]
    rows = []
    for key in MOLECULE_ROWS:
        paper = legacy["moses_paper"].get(key)
        cells = [num(models[m]["metrics"][key], 3) for m in models]
        rows.append([key, *cells, " / ".join(num(v) for v in paper) if paper else "– / – / –"])
    rows.append(["training", *[models[m]["training"] for m in models], "GPU, full training set, many epochs"])
    header = [
        "metric",
        *[f"{models[m]['label']} (`{m}`)" for m in models],
        "MOSES paper: " + " / ".join(models[m]["label"] for m in models),
    ]
    return table(header, rows) + f"\n{legacy['provenance']}\n"


# ----------------------------------------------------------------------------------------------- deploy
def _bench(name: str) -> dict[str, Any]:
    path = RESULTS / "serve" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such result (run benchmarks/serve.py --out {path})")
    return json.loads(path.read_text())


def serve_http() -> str:
    """``results/serve/http*.json`` (``benchmarks/serve.py --out``): torch vs onnxruntime in each run; every
    committed run is listed, since on this shared machine one run differs from the next."""
    loaded = {path.name: json.loads(path.read_text()) for path in (RESULTS / "serve").glob("http*.json")}
    if not loaded:
        raise FileNotFoundError(f"{RESULTS / 'serve'}: no http*.json (run benchmarks/serve.py --out ...)")
    runs = sorted(loaded.items(), key=lambda named: named[1]["date"])
    rows = []
    for _, b in runs:
        client = "lean client" if b["load"].get("client", "httpx").startswith("minimal") else "httpx"
        for runtime, r in b["results"].items():
            lat = r["latency_ms"]
            rows.append(
                [
                    f"{b['date'][11:16]} (`{b['commit']}`, {b['load']['requests']:,} requests, {client}, "
                    f"load {b['machine']['load_1min_after']:.1f})",
                    {"torch": "torch (eager)", "onnx": "onnxruntime"}.get(runtime, runtime),
                    f"{r['requests_per_s']:.1f}",
                    f"{lat['p50']:.1f} ms",
                    f"{lat['p95']:.1f} ms",
                    f"{lat['p99']:.1f} ms",
                    str(r["errors"]),
                    f"{r['one_at_a_time_p50_ms']:.1f} ms",
                ]
            )
    header = ["run (UTC)", "runtime", "requests/s", "p50", "p95", "p99", "errors", "one at a time (p50)"]
    b = runs[-1][1]
    load = b["load"]
    notes = (
        f"\nEach run: the requests with {load['in_flight']} in flight, then "
        f"{load['one_at_a_time']} one at a time; `--workers {b['server']['workers']}`, "
        f"{b['server']['threads_per_prediction']} thread per prediction; {b['machine']['cpus']} CPUs shared with "
        f"the load generator (load: the 1-minute load average after the run); {b['date'][:10]}.\n"
    )
    for name, run in runs:
        r = run.get("onnx_over_torch")
        if r:
            notes += (
                f"onnxruntime/torch latency in `{name}`: {r['one_at_a_time_p50']:.2f}x one at a time, "
                f"{r['under_load_p50']:.2f}x under load (p50).\n"
            )
    return table(header, rows) + notes


def serve_stream() -> str:
    """``results/serve/websocket.json`` (``benchmarks/serve.py --websocket --out``)."""
    b = _bench("websocket.json")
    rows = []
    for runtime, got in b["latency_ms"].items():
        for what, f in got.items():
            if f.get("n"):
                rows.append(
                    [
                        {"torch": "torch (eager)", "onnx": "onnxruntime"}.get(runtime, runtime),
                        {"analysis": "sample → analysis", "alarm": "sample → alarm"}[what],
                        str(f["n"]),
                        f"{f['p50']:.1f} ms",
                        f"{f['p95']:.1f} ms",
                        f"{f['max']:,.1f} ms",
                    ]
                )
    notes = (
        f"\n{b['streams']} streams at once, each at {b['speed']:g}x real time; load average "
        f"{b['machine']['load_1min_after']:.1f} after the run; {b['date'][:10]}.\n"
    )
    return table(["runtime", "latency", "n", "p50", "p95", "max"], rows) + notes


def conformal() -> str:
    """The shipped configs' prediction sets, scored once on their test split (``metrics.json``)."""
    rows = []
    for name in CONFORMAL:
        r = Result(name)
        c = (r.test or {}).get("conformal")
        if c is None:
            continue
        scored = c["scored"]
        per = ", ".join(f"{k} {v['coverage']:.3f} (n={v['n']})" for k, v in scored["per_class"].items())
        rows.append(
            [
                f"`{name}`",
                f"{c['score']}",
                f"{c['coverage']:.2f}",
                f"**{scored['coverage']:.3f}** (n={scored['n']})",
                per,
                f"{scored['mean_set_size']:.2f}",
                f"{scored['uncertain_share']:.1%}",
                str(c["n_calibration"]),
            ]
        )
    header = [
        "config",
        "sets",
        "target",
        "test coverage",
        "per class",
        "mean size",
        "uncertain",
        "calibrated on",
    ]
    return (
        table(header, rows)
        + f"\nFrom `results/<config>/metrics.json`; code at commit {commits(CONFORMAL)}.\n"
    )


CONFORMAL = ["cxr_pneumonia"]
SUBGROUPS = [
    ("ehr_los_mimic4", "MIMIC-IV demo, length of stay (LSTM)"),
    ("ehr_los_eicu", "eICU demo, length of stay"),
]


def subgroups() -> str:
    """The shipped EHR configs' test metric per subgroup and the gap between subgroups with its CI."""
    rows = []
    for name, what in SUBGROUPS:
        gaps = (Result(name).test or {}).get("subgroup_gaps") or {}
        for attribute, entry in gaps.items():
            groups = ", ".join(
                f"{g.split('=', 1)[1]} {v['value']:.3f} (n={v['n']})" for g, v in entry["groups"].items()
            )
            if "gap" in entry:
                a, b = (g.split("=", 1)[1] for g in entry["between"])
                ci95 = entry.get("gap_ci95")
                gap = f"{a} − {b}: {entry['gap']:.3f}" + (
                    f" ({ci95[0]:.3f} to {ci95[1]:.3f})" if ci95 else ""
                )
            else:
                gap = "– (one group of ≥ 20)"
            rows.append([what, attribute, entry["metric"], groups, gap])
    header = ["data, task", "subgroup", "metric", "per group (test)", "gap (95% CI)"]
    names = [n for n, _ in SUBGROUPS]
    return table(header, rows) + (
        "\nGroups of fewer than 20 test units are not scored. From `results/<config>/metrics.json`; code at "
        f"commit {commits(names)}.\n"
    )


# ------------------------------------------------------------------------------------------------ fusion
#: the three LIDC runs on one exam-level split: (result, inputs, model)
FUSION = [
    ("lung_nodule", "image", "2.5D ResNet (`lung_nodule`, the image-only baseline)"),
    ("lung_nodule_radiomics", "radiomics", "MLP over 72 radiomic columns (`lung_nodule_radiomics`)"),
    ("lung_nodule_fusion", "image + radiomics", "fused: both encoders (`lung_nodule_fusion`)"),
]
FUSION_CHOICES = [
    ("lung_nodule_fusion+late", "fused, late fusion, modality dropout 0.25"),
    ("lung_nodule_fusion+attention", "fused, attention fusion, modality dropout 0.25"),
    ("lung_nodule_fusion+late_md5", "fused, late fusion, modality dropout 0.5"),
    ("lung_nodule_fusion", "fused, attention fusion, modality dropout 0.5 (shipped)"),
    ("lung_nodule_radiomics+trees", "radiomics only, gradient-boosted trees"),
    ("lung_nodule_radiomics", "radiomics only, MLP (shipped)"),
]


def _target(bundle: dict[str, Any]) -> dict[str, Any]:
    """A bundle's target (kind, class names): under ``target`` since issue 14, at the top level before."""
    return bundle.get("target", bundle)


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks, n1 = rankdata(p), int(y.sum())
    n0 = len(y) - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)) if n1 and n0 else float("nan")


def paired_auroc_difference(a: str, b: str, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Test AUROC of result ``a`` minus that of ``b`` on the same test units, with a 95% percentile
    interval from a bootstrap that resamples exams (the split's groups), the same draws for both."""
    rows_a = {r["id"]: r for r in Result(a).predictions("test")}
    rows_b = {r["id"]: r for r in Result(b).predictions("test")}
    if set(rows_a) != set(rows_b):
        raise ValueError(f"{a} and {b} were not scored on the same test units")
    ids = sorted(rows_a)
    positive = _target(Result(a).bundle)["class_names"][-1]
    y = np.array([rows_a[i]["target"] == positive for i in ids], dtype=int)
    pa = np.array([float(rows_a[i]["probability"]) for i in ids])
    pb = np.array([float(rows_b[i]["probability"]) for i in ids])
    groups = np.array([rows_a[i]["group"] for i in ids])
    unique = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in unique]
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        index = np.concatenate([members[k] for k in rng.integers(0, len(unique), len(unique))])
        diffs.append(_auroc(y[index], pa[index]) - _auroc(y[index], pb[index]))
    low, high = np.nanpercentile(diffs, [2.5, 97.5])
    return _auroc(y, pa) - _auroc(y, pb), float(low), float(high)


def fusion() -> str:
    rows = []
    for name, inputs, model in FUSION:
        r = Result(name)
        sens = metric(r.test, "sensitivity")["value"]
        spec = metric(r.test, "specificity")["value"]
        rows.append(
            [
                inputs,
                model,
                f"{r.test['n']} {r.test['unit']}s",
                value(r.val, "auroc"),
                ci(metric(r.test, "auroc"), bold=True),
                f"{num(sens)} / {num(spec)}",
                value(r.test, "ece"),
                f"{r.minutes:.1f} min",
            ]
        )
    header = [
        "inputs",
        "model (config)",
        "test n",
        "val AUROC",
        "test AUROC (95% CI)",
        "test sensitivity / specificity at the operating point",
        "test ECE",
        "train time (1 thread)",
    ]
    fused = FUSION[-1][0]
    diffs = [
        f"{label}: {d:+.3f} ({low:+.3f} to {high:+.3f})"
        for other, label in ((FUSION[0][0], "image only"), (FUSION[1][0], "radiomics only"))
        for d, low, high in [paired_auroc_difference(fused, other)]
    ]
    return (
        table(header, rows)
        + "\nPaired test AUROC difference, fused minus each baseline (95% CI, exams resampled, 1000 draws): "
        + "; ".join(diffs)
        + f".\n\nFrom `results/<config>/`; code at commit {commits([n for n, *_ in FUSION])}.\n"
    )


def fusion_choices() -> str:
    rows = [
        [label, f"`{name}`", value(Result(name).val, "auroc"), value(Result(name).val, "ece")]
        for name, label in FUSION_CHOICES
    ]
    return table(["LIDC fusion variant", "result", "val AUROC", "val ECE"], rows)


# ------------------------------------------------------------------------------------------- concepts
CONCEPT_SOURCES = {"mimic4": "MIMIC-IV", "mimic3": "MIMIC-III", "eicu": "eICU", "fhir": "FHIR (Synthea)"}


def fusion_missing() -> str:
    """The shipped fused model with a part absent (``tools/record_fusion_missing.py``)."""
    missing = json.loads((RESULTS / "lung_nodule_fusion" / "missing_modality.json").read_text())
    rows = [
        [inputs, *(ci(missing["auroc"][split][inputs]) for split in ("val", "test"))]
        for inputs in missing["auroc"]["test"]
    ]
    n = {split: missing["auroc"][split]["both"]["n"] for split in ("val", "test")}
    return table(
        [
            "what the fused model is given",
            f"val AUROC (95% CI, n={n['val']})",
            f"test AUROC (95% CI, n={n['test']})",
        ],
        rows,
    ) + (
        f"\nFrom `results/lung_nodule_fusion/missing_modality.json` (the shipped config retrained bit-exactly, its "
        f"validation predictions checked against the recorded ones); code at commit `{missing['commit'][:7]}`.\n"
    )


#: MIMIC-IV fusion over the featurizer's column groups: (task, metric, baseline, fused config)
FUSION_EHR = [
    ("remaining LOS, 10 bins", "kappa_linear", "ehr_los_mimic4", "ehr_los_mimic4_fusion"),
    ("in-hospital mortality", "auroc", "ehr_mortality_mimic4", "ehr_mortality_mimic4_fusion"),
]


def fusion_ehr() -> str:
    rows, names = [], []
    for what, key, baseline, fused in FUSION_EHR:
        for name, label in (
            (baseline, "single array, LSTM (the existing baseline)"),
            (f"{fused}+attention", "fused, attention (variant)"),
            (fused, "fused, late (shipped)"),
        ):
            r = Result(name)
            names.append(name)
            positives = ""
            if r.test is not None and _target(r.bundle)["kind"] == "binary":
                died = _target(r.bundle)["class_names"][-1]
                positives = f" ({sum(row['target'] == died for row in r.predictions('test'))} {died})"
            rows.append(
                [
                    what,
                    label,
                    f"`{name}`",
                    f"{key}: {value(r.val, key)}",
                    "–" if r.test is None else ci(metric(r.test, key), bold=True),
                    "–" if r.test is None else f"{r.test['n']} admissions{positives}",
                ]
            )
    return table(["task", "model", "result", "val", "test (95% CI)", "test n"], rows) + (
        f"\nFrom `results/<config>/`; code at commit {commits([n for n in names if '+' not in n])}.\n"
    )


def concepts() -> str:
    """``results/concepts/coverage.json`` (``tools/concept_coverage.py``): per concept and source, the ids
    (or patterns) the table maps and the rows found in the shared demos; the units met and converted."""
    path = RESULTS / "concepts" / "coverage.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such result (run tools/concept_coverage.py)")
    cov = json.loads(path.read_text())
    sources = {k: cov["sources"][k] for k in CONCEPT_SOURCES if k in cov["sources"]}
    shares = []
    for kind, s in sources.items():
        shares.append(
            [
                CONCEPT_SOURCES[kind],
                f"{s['events_mapped']:,} of {s['events']:,} ({s['events_mapped'] / max(s['events'], 1):.1%})",
                f"{s['distinct_codes_mapped']:,} of {s['distinct_codes']:,}",
            ]
        )
    first = next(iter(sources.values()))["concepts"]
    names = [n for n, c in first.items() if c["kind"] != "static"]  # age, sex: admission-table columns
    rows = []
    for name in names:
        cells, conversions = [], []
        for kind, s in sources.items():
            c = s["concepts"][name]
            if not c["ids"] and not c["patterns"]:
                cells.append("–")
                continue
            listed = " + ".join(
                part
                for part in (
                    f"{c['ids']} id{'s' * (c['ids'] != 1)}" if c["ids"] else "",
                    f"{c['patterns']} pattern{'s' * (c['patterns'] != 1)}" if c["patterns"] else "",
                )
                if part
            )
            cells.append(f"{listed}: {c['rows']:,}")
            for u in c["units"]:
                if not u["converted"]:
                    conversions.append(
                        f"{CONCEPT_SOURCES[kind]} {u['unit']}: **not converted** ({u['rows']:,})"
                    )
                elif (u["factor"], u["offset"]) != (1.0, 0.0):
                    conversions.append(f"{CONCEPT_SOURCES[kind]} {u['unit']} ×{u['factor']:.4g}")
        met = sorted({u["unit"] for s in sources.values() for u in s["concepts"][name]["units"]})
        unit = first[name]["unit"] or "(event)"
        rows.append([f"`{name}`", unit, ", ".join(met) or "–", *cells, "; ".join(conversions) or "–"])
    header = ["concept", "unit", "units met", *(CONCEPT_SOURCES[k] for k in sources), "conversions applied"]
    return (
        table(["source", "events mapped to a concept", "distinct codes mapped"], shares)
        + "\n<details><summary>Concept × source: ids (or drug/treatment-name patterns) the table maps, then the "
        "rows found in the shared demos</summary>\n\n"
        + table(header, rows)
        + f"\n</details>\n\nFrom `results/concepts/coverage.json` ({cov['date'][:10]}, code at "
        f"`{cov['commit'][:7]}`).\n"
    )


# -------------------------------------------------------------------------------- external validation
#: (result trained on MIMIC-IV with harmonised concepts, metrics shown, the raw-codes config beside it)
EXTERNAL = [
    ("ehr_los_mimic4_concepts", ["kappa_linear", "mad"], "ehr_los_mimic4"),
    ("ehr_mortality_mimic4_concepts", ["auroc", "auprc", "ece"], "ehr_mortality_mimic4"),
]
EXTERNAL_SOURCES = {"eicu-demo": "eICU demo (external)", "mimic-iii-demo": "MIMIC-III demo (external)"}


def _deaths(predictions: Path, split: str) -> str:
    """``, N deaths`` among a mortality result's scored units, counted in its predictions file."""
    with predictions.open(newline="") as fh:
        targets = [row["target"] for row in csv.DictReader(fh) if row["split"] == split]
    return f", {targets.count('died')} deaths" if "survived" in targets else ""


def external() -> str:
    """Internal test beside external datasets (``record_result.py --external``) for the concepts configs."""
    out = []
    for name, metrics, raw in EXTERNAL:
        r = Result(name)
        rows = [["MIMIC-IV demo, raw codes (`" + raw + "`), internal test", str(Result(raw).test["n"])]]
        rows[0] += [ci(metric(Result(raw).test, m)) for m in metrics]
        rows[0][1] += _deaths(Result(raw).path / "predictions.csv", "test")
        rows.append(["MIMIC-IV demo, concepts, internal test", str(r.test["n"])])
        rows[1][1] += _deaths(r.path / "predictions.csv", "test")
        rows[1] += [ci(metric(r.test, m)) for m in metrics]
        for slug, label in EXTERNAL_SOURCES.items():
            scored = json.loads((r.path / "external" / f"{slug}.json").read_text())
            count = str(scored["n"]) + _deaths(r.path / "external" / f"{slug}.predictions.csv", "all")
            rows.append([label, count] + [ci(metric(scored, m)) for m in metrics])
        out.append(
            f"`{name}` (trained once on MIMIC-IV, then scored unchanged on every admission of the other "
            "sources, split `all`; 95% bootstrap CI clustered by patient):\n\n"
            + table(["data", "admissions", *metrics], rows)
        )
    return "\n".join(out) + f"\nCode at {commits([n for n, _, _ in EXTERNAL])}.\n"


# ------------------------------------------------------------------------------------------ federated
FEDERATED = ["ecg_af_cinc2017_federated", "ehr_los_concepts_federated", "ehr_los_eicu_federated"]


def federated() -> str:
    """``medlearn federate`` runs: per hospital and pooled, federated beside centralised and local-only."""
    out = []
    for name in FEDERATED:
        test = Result(name).test
        fed = test["federated"]
        arms = fed["comparison"]
        scopes = [h["name"] for h in fed["hospitals"]] + ["pooled"]
        patients = {h["name"]: h["patients"] for h in fed["hospitals"]}
        rows = [
            [
                "**all hospitals, pooled predictions**" if s == "pooled" else s,
                str(sum(patients.values())) if s == "pooled" else str(patients[s]),
                str(arms["federated"][s]["n"]),
                *[ci(arms[a][s]) + ("" if arms[a][s]["ci95"] else " (no CI: < 10 patients)") for a in arms],
            ]
            for s in scopes
        ]
        out.append(
            f"`{name}` ({fed['strategy']}, {fed['rounds']} rounds × {fed['local_epochs']} local epochs, "
            f"{fed['engine']} engine; test {fed['metric']}, 95% bootstrap CI):\n\n"
            + table(["hospital", "patients", f"test {test['unit']}s", *arms], rows)
            + ("\nNotes: " + "; ".join(fed["notes"]) + "." if fed["notes"] else "")
            + f"\nFederated {fed['metric']} after each round (pooled): "
            + ", ".join(num(r["metrics"]["pooled"]["value"]) for r in fed["per_round"])
            + f". Code at {commits([name])}.\n"
        )
    return "\n".join(out)


BLOCKS: dict[str, Callable[[], str]] = {
    "serve-http": serve_http,
    "serve-stream": serve_stream,
    "conformal": conformal,
    "subgroups": subgroups,
    "imaging": imaging,
    "imaging-choices": imaging_choices,
    "calibration": calibration,
    "real-ct": real_ct,
    "ehr": ehr,
    "ehr-other": ehr_other,
    "signals": signals,
    "signals-choices": signals_choices,
    "molecules": molecules,
    "concepts": concepts,
    "fusion": fusion,
    "fusion-choices": fusion_choices,
    "fusion-missing": fusion_missing,
    "fusion-ehr": fusion_ehr,
    "federated": federated,
    "external": external,
}


def render(readme: str) -> str:
    """The README with every results block regenerated from the files."""

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise KeyError(f"README block results:{name} has no generator in tools/readme_tables.py")
        return match[1] + BLOCKS[name]() + match[4]

    return BLOCK.sub(replace, readme)


def main() -> int:
    parser = argparse.ArgumentParser(description="Check (default) or rewrite the README's results tables.")
    parser.add_argument("--write", action="store_true", help="rewrite the blocks in README.md")
    args = parser.parse_args()
    current = README.read_text()
    fresh = render(current)
    if args.write:
        README.write_text(fresh)
        return 0
    if fresh != current:
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(True), fresh.splitlines(True), "README.md", "from results/"
            )
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
