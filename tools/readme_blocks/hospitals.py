"""README blocks of issue 17 (across hospitals): fusion, concept coverage, external validation,
federated learning."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from readme_blocks.common import (
    BINARY_HEADER,
    RESULTS,
    Result,
    binary_cells,
    ci,
    commits,
    metric,
    num,
    table,
    value,
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
        rows.append([inputs, model, *binary_cells(Result(name))])
    header = ["inputs", "model (config)", *BINARY_HEADER]
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
