"""README blocks of the EHR, signals and molecules pipelines."""

from __future__ import annotations

import json

from readme_blocks.common import RESULTS, Result, ci, commits, metric, num, per_class, table, value

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
