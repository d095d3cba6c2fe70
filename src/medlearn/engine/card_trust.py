"""The trust part of a model card (TRIPOD+AI items where they apply): the label, the population, the
metric per subgroup with the gap between subgroups, the prediction sets, the known failure modes and
the explanation checks — as markdown for ``model_card.md`` and as facts for ``model_card.json``.

Everything comes from the bundle's metadata (its ``metrics.test`` as the run scored it once), so the card,
its JSON and the report say the same thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medlearn.engine.artifacts import BundleMeta

#: what the card says where the data hold no demographics (imaging crops, CinC, synthetic data)
NO_DEMOGRAPHICS = (
    "The data carry no demographics (sex, age, ethnicity) the task reads, so no subgroup figures exist: "
    "how the model does for different groups of people is unknown."
)
#: the input checks behind out-of-scope flags, by input-profile key (Task.check_input)
PROFILE_CHECKS = {
    "modality": "the imaging modality",
    "body_part": "the body part",
    "hu": "Hounsfield-unit ranges",
    "spacing_mm": "voxel spacing",
    "fs_hz": "sampling rates",
    "seconds": "record durations",
    "amplitude": "signal amplitudes",
    "age": "ages",
    "codes": "known codes",
    "systems": "coding systems",
}


def label_definition(meta: BundleMeta) -> str:
    t = meta.target
    if t.kind == "regression":
        lo, hi = t.value_range
        return f"a value per {t.unit}" + (f" within [{lo}, {hi}]" if lo is not None or hi is not None else "")
    order = " (ordered)" if t.ordinal else ""
    return f"one of {len(t.class_names)} classes{order} per {t.unit}: {', '.join(t.class_names)}"


def subgroup_rows(meta: BundleMeta) -> list[dict[str, Any]]:
    """One row per subgroup attribute scored on the test split (see :mod:`medlearn.engine.subgroups`)."""
    gaps = (meta.metrics.get("test") or {}).get("subgroup_gaps") or {}
    rows = []
    for attribute, entry in gaps.items():
        rows.append(
            {
                "attribute": attribute,
                "metric": entry["metric"],
                "groups": entry["groups"],
                "too_small": entry.get("too_small", []),
                "gap": entry.get("gap"),
                "between": entry.get("between"),
                "gap_ci95": entry.get("gap_ci95"),
            }
        )
    return rows


def failure_modes(meta: BundleMeta) -> list[str]:
    """What the bundle knows to go wrong: inputs outside its training profile, a calibration fit at the
    edge of its range, subgroups it does worse for (a gap whose CI excludes 0)."""
    modes = []
    checked = [PROFILE_CHECKS.get(k, k.replace("_", " ")) for k in meta.input_profile if k != "n_units"]
    if checked:
        modes.append(
            "inputs unlike the training units are flagged out of scope (refused with --strict); checked: "
            + ", ".join(checked)
        )
    for row in subgroup_rows(meta):
        ci = row["gap_ci95"]
        if row["gap"] is not None and ci is not None and (ci[0] > 0 or ci[1] < 0):
            better, worse = row["between"]
            modes.append(
                f"{row['metric']} is lower for {worse} than for {better} by {row['gap']:.3f} "
                f"(95% CI {ci[0]:.3f} to {ci[1]:.3f})"
            )
    sets = (meta.metrics.get("test") or {}).get("conformal")
    if sets:
        share = sets["scored"]["uncertain_share"]
        modes.append(f"{share:.0%} of test units get an uncertain prediction set (more than one class)")
    return modes


def trust_markdown(meta: BundleMeta) -> list[str]:
    """The card's lines for the label, population and subgroups, prediction sets, failure modes and
    explanation checks."""
    lines = ["", f"**Label.** {label_definition(meta)}."]
    rows = subgroup_rows(meta)
    if rows:
        lines += ["", "**Population and subgroups** (test split; groups under 20 units are not scored):", ""]
        lines += ["| subgroup | metric | per group | gap (95% CI) |", "|---|---|---|---|"]
        for r in rows:
            groups = ", ".join(
                f"{g.split('=', 1)[1]} {v['value'] if v['value'] is not None else 'n/a'} (n={v['n']})"
                for g, v in r["groups"].items()
            )
            if r["too_small"]:
                groups += "; too small: " + ", ".join(g.split("=", 1)[1] for g in r["too_small"])
            gap = "–"
            if r["gap"] is not None:
                ci = r["gap_ci95"]
                gap = f"{' − '.join(g.split('=', 1)[1] for g in r['between'])}: {r['gap']:.3f}"
                gap += f" ({ci[0]:.3f} to {ci[1]:.3f})" if ci else ""
            lines.append(f"| {r['attribute']} | {r['metric']} | {groups} | {gap} |")
    elif meta.kind != "generative":
        lines += ["", f"**Population and subgroups.** {NO_DEMOGRAPHICS}"]
    sets = (meta.metrics.get("test") or {}).get("conformal")
    if meta.prediction_sets is not None and sets:
        s = sets["scored"]
        lines += [
            "",
            f"**Prediction sets.** {meta.prediction_sets.method}; target coverage "
            f"{meta.prediction_sets.coverage:.0%}, reached {s['coverage']:.1%} on the test split (n = {s['n']}), "
            f"mean set size {s['mean_set_size']:.2f}, uncertain (more than one class) {s['uncertain_share']:.1%}.",
        ]
    modes = failure_modes(meta)
    if modes:
        lines += ["", "**Known failure modes.**", "", *[f"- {m}" for m in modes]]
    lines += [
        "",
        "**Explanations.** Not checked at training time: `medlearn explain BUNDLE INPUT --out DIR` draws them "
        "and runs the model-randomisation and deletion checks (explanations.json).",
    ]
    return lines


def card_facts(meta: BundleMeta) -> dict[str, Any]:
    """``model_card.json``: the card's facts for machines (a registry, a review board's tooling)."""
    test = meta.metrics.get("test") or {}
    return {
        "model": f"{meta.task.name} / {meta.model.name}",
        "created": meta.created,
        "intended_use": meta.intended_use,
        "data": {"root": meta.data.root, "fingerprint": meta.data.fingerprint, "n_units": meta.data.n_units},
        "label": label_definition(meta),
        "training": meta.training.summary,
        "metrics": {
            "split": test.get("split"),
            "n": test.get("n"),
            "values": {
                k: {"value": m.get("value"), "ci95": m.get("ci95")}
                for k, m in test.get("metrics", {}).items()
            },
        },
        "subgroups": subgroup_rows(meta) or NO_DEMOGRAPHICS,
        "calibration": meta.calibration.model_dump(),
        "operating_point": None if meta.operating_point is None else meta.operating_point.model_dump(),
        "prediction_interval": None
        if meta.prediction_interval is None
        else meta.prediction_interval.model_dump(),
        "prediction_sets": None
        if meta.prediction_sets is None
        else {**meta.prediction_sets.model_dump(), "test": (test.get("conformal") or {}).get("scored")},
        "privacy": None if meta.privacy is None else meta.privacy.model_dump(),
        "known_failure_modes": failure_modes(meta),
        "explanation_checks": "not run at training time (medlearn explain)",
        "credits": list(meta.credits),
    }
