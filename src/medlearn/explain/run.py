"""``medlearn explain``: attributions for the units of a bundle's inputs, tested as well as drawn.

For each unit and method: the attribution toward the explained class (each unit's predicted class, or
``--target``), a picture (:mod:`~medlearn.explain.draw_image`, ``draw_signal``, ``draw_sequence``, chosen
by the task's :class:`~medlearn.explain.layout.InputLayout`), the model-randomisation sanity check and,
with a bundle trained on shuffled labels, the data-randomisation check (:mod:`~medlearn.explain.sanity`),
and the deletion/insertion faithfulness curves (:mod:`~medlearn.explain.faithfulness`). Everything lands
in ``explanations.json``; :func:`explanation_checks` gives the same figures for arrays already in memory
(what a report or model card shows per bundle).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.engine.input_checks import non_finite_reason
from medlearn.engine.protocols import gradcam_layer
from medlearn.engine.trees import ArrayFitted, BoostedTrees
from medlearn.errors import ConfigError, InputError
from medlearn.explain import attribution, faithfulness, sanity
from medlearn.explain.layout import InputLayout, generic_layout
from medlearn.explain.scores import ClassScores, explained_network, predicted_targets, resolve_target

#: Units whose sanity checks are computed per run (each check re-explains them several times).
MAX_CHECKED = 16


@dataclass
class Explained:
    """One unit's attribution by one method, with its checks."""

    unit: int
    method: str
    target: int
    probability: float
    attribution: np.ndarray
    checks: dict[str, Any] = field(default_factory=dict)


@dataclass
class Explanation:
    """What :func:`explain_arrays` found: the layout, the explained classes and one :class:`Explained`
    per unit and method."""

    layout: InputLayout
    targets: list[int]
    predicted: list[int]
    probabilities: np.ndarray
    items: list[Explained]


def _scores(bundle: Any, model: torch.nn.Module) -> ClassScores:
    cal = bundle.calibration
    return ClassScores(explained_network(model), bundle.kind, cal.temperature, cal.bias)


def layout_for(bundle: Any, array: np.ndarray) -> InputLayout:
    """The task's layout for the bundle's input (its hook), else one inferred from the input's shape."""
    layout = bundle.task.explanation_layout(bundle.preprocessing)
    if layout is None:
        layout = generic_layout(tuple(np.shape(array)), bool(gradcam_layer(bundle.model)))
    return layout


def explain_arrays(
    bundle: Any,
    arrays: list[np.ndarray],
    methods: list[str] | None = None,
    target: str | int | None = None,
    checks: bool = True,
    shuffled: Any = None,
    seed: int = 0,
) -> Explanation:
    """Explain preprocessed inputs of ``bundle`` (a loaded torch bundle).

    Args:
        methods: attribution methods (:data:`~medlearn.explain.layout.METHODS`); default the layout's
            first one that applies to the model (Shapley sampling for tree models).
        target: the class to explain (name or index); default each unit's predicted class.
        checks: run the model-randomisation check and the faithfulness curves (for the first
            :data:`MAX_CHECKED` units).
        shuffled: a loaded bundle of the same task and model trained on shuffled labels: its
            attributions' rank correlation with this model's is the data-randomisation check.
    """
    if getattr(bundle, "model", None) is None:
        raise ConfigError(f"{bundle.path}: explain needs the torch model (not an onnxruntime bundle)")
    if bundle.kind == "generative":
        raise ConfigError(f"{bundle.path}: a generative model has no prediction to explain")
    if not arrays:
        return Explanation(generic_layout((1,), False), [], [], np.zeros((0, 1)), [])
    network = explained_network(bundle.model)
    trees = isinstance(network, ArrayFitted)
    layout = layout_for(bundle, arrays[0])
    chosen = methods or [attribution.default_method(layout, network, not trees)]
    for method in chosen:
        attribution.check_method(method, layout, network, not trees)
    scores = _scores(bundle, bundle.model)
    x = torch.from_numpy(np.stack(arrays).astype(np.float32)).to(bundle.device)
    probs = scores.probabilities(x)
    predicted = predicted_targets(probs, bundle.kind, bundle.threshold)
    fixed = resolve_target(target, bundle.class_names, bundle.kind)
    targets = predicted if fixed is None else [fixed] * len(arrays)
    torch.manual_seed(seed)
    items = []
    for method in chosen:
        attr = attribution.attribute(method, scores, x, targets, layout)
        found = [
            Explained(i, method, targets[i], float(probs[i, targets[i]]), attr[i]) for i in range(len(arrays))
        ]
        if checks:
            _check(bundle, scores, x, targets, layout, method, attr, found, shuffled, seed)
        items += found
    return Explanation(layout, targets, predicted, probs, items)


def _check(
    bundle: Any,
    scores: ClassScores,
    x: torch.Tensor,
    targets: list[int],
    layout: InputLayout,
    method: str,
    attr: np.ndarray,
    found: list[Explained],
    shuffled: Any,
    seed: int,
) -> None:
    """Sanity and faithfulness figures for the first :data:`MAX_CHECKED` units, into ``found``."""
    n = min(len(found), MAX_CHECKED)
    xs, ts = x[:n], targets[:n]
    network = scores.model
    cal = bundle.calibration

    def explain(net: torch.nn.Module) -> np.ndarray:
        return attribution.attribute(
            method, ClassScores(net, bundle.kind, cal.temperature, cal.bias), xs, ts, layout
        )

    tree_features = int(network.features(xs[:1]).shape[1]) if isinstance(network, BoostedTrees) else None
    # gradient/perturbation methods give an input at the baseline exactly 0: compare where it is not
    support = None if method.startswith("gradcam") else (xs != layout.baseline).cpu().numpy()
    randomised = sanity.model_randomisation(
        network,
        explain,
        attr[:n],
        seed=seed,
        tree_features=tree_features,
        support=support,
        signed_methods=not method.startswith("gradcam"),
    )
    shuffled_attr = None
    if shuffled is not None:
        shuffled_attr = attribution.attribute(method, _scores(shuffled, shuffled.model), xs, ts, layout)
    group_ids = attribution.groups(layout, tuple(x.shape[1:]), by_feature=method == "shapley")
    for i in range(n):
        item = found[i]
        item.checks["model_randomisation"] = randomised[i]
        if shuffled_attr is not None:
            r = sanity.rank_correlation(
                attr[i], shuffled_attr[i], support=None if support is None else support[i]
            )
            item.checks["label_randomisation"] = {
                "spearman": None if r is None else round(r, 4),
                "passes": r is None or r < sanity.PASS_BELOW,
                "threshold": sanity.PASS_BELOW,
            }
        item.checks["faithfulness"] = faithfulness.curves(
            scores, x[i], attr[i], ts[i], group_ids, layout.baseline, bundle.kind != "regression", seed
        )


def summarise(items: list[Explained]) -> dict[str, dict[str, Any]]:
    """Per method: how many units were checked, the median rank correlation after full model
    randomisation and the share passing, the median deletion/insertion areas and ratios, and the share
    of units whose deletion curve beats random by the stated margin (deletion ratio at most
    :data:`~medlearn.explain.faithfulness.BEATS_RANDOM_RATIO`)."""
    out: dict[str, dict[str, Any]] = {}
    for method in dict.fromkeys(i.method for i in items):
        checked = [i.checks for i in items if i.method == method and i.checks]
        finals = [
            c["model_randomisation"][
                "final_signed" if c["model_randomisation"]["judged_on"] == "signed" else "final"
            ]
            for c in checked
        ]
        finals = [f for f in finals if f is not None]
        faith = [c["faithfulness"] for c in checked]
        labels = [c["label_randomisation"]["spearman"] for c in checked if "label_randomisation" in c]
        entry: dict[str, Any] = {"units": sum(i.method == method for i in items), "checked": len(checked)}
        if checked:
            entry.update(
                model_randomisation_spearman_median=_median(finals),
                model_randomisation_pass=f"{sum(c['model_randomisation']['passes'] for c in checked)}/{len(checked)}",
                threshold=sanity.PASS_BELOW,
                deletion_auc_median=_median([f["deletion_auc"] for f in faith]),
                deletion_auc_random_median=_median([f["deletion_auc_random"] for f in faith]),
                deletion_ratio_median=_median(
                    [f["deletion_ratio"] for f in faith if f["deletion_ratio"] is not None]
                ),
                insertion_ratio_median=_median(
                    [f["insertion_ratio"] for f in faith if f["insertion_ratio"] is not None]
                ),
                deletion_beats_random=f"{sum(f['beats_random'] for f in faith)}/{len(faith)}",
                beats_random_ratio=faithfulness.BEATS_RANDOM_RATIO,
            )
            if labels:
                entry["label_randomisation_spearman_median"] = _median([v for v in labels if v is not None])
        out[method] = entry
    return out


def summary_line(summary: dict[str, dict[str, Any]]) -> str:
    """One line per run: each method's units, randomisation correlation and deletion ratio."""
    parts = []
    for method, s in summary.items():
        if not s.get("checked"):
            parts.append(f"{method}: {s['units']} unit(s), checks skipped")
            continue
        text = (
            f"{method}: {s['units']} unit(s); model randomisation rank corr. median "
            f"{_fmt(s['model_randomisation_spearman_median'])} "
            f"(pass < {s['threshold']}: {s['model_randomisation_pass']}); "
            f"deletion AUC {_fmt(s['deletion_auc_median'])} vs random {_fmt(s['deletion_auc_random_median'])} "
            f"(ratio {_fmt(s['deletion_ratio_median'])}; beats random, ratio <= "
            f"{s['beats_random_ratio']}: {s['deletion_beats_random']}), "
            f"insertion ratio {_fmt(s['insertion_ratio_median'])}"
        )
        if "label_randomisation_spearman_median" in s:
            text += f"; shuffled-label rank corr. {_fmt(s['label_randomisation_spearman_median'])}"
        parts.append(text)
    return " | ".join(parts)


def explanation_checks(bundle: Any, arrays: list[np.ndarray], method: str | None = None) -> dict[str, Any]:
    """The sanity and faithfulness figures of a bundle on preprocessed inputs (e.g. test units), per
    method — what a report or model card states next to the model's metrics."""
    found = explain_arrays(bundle, arrays[:MAX_CHECKED], [method] if method else None)
    return summarise(found.items)


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 4) if values else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def class_name(bundle: Any, index: int) -> str:
    """The explained (or predicted) class's name; a regression's one output is named after the task."""
    return bundle.class_names[index] if bundle.kind != "regression" else bundle.class_names[0]


def picture_title(bundle: Any, unit_id: str, item: Explained, predicted: str | None = None) -> str:
    """A picture's title: unit, method, the class explained and its probability (or value), and the
    predicted class when it is not the one explained by construction."""
    what = "value" if bundle.kind == "regression" else "p"
    said = (
        f"{unit_id}: {item.method} for class {class_name(bundle, item.target)} ({what}={item.probability:.3f}"
    )
    return said + (f"; predicted {predicted})" if predicted is not None else ")")


def picture_name(unit_id: str, method: str, used: set[str]) -> str:
    """``<unit>_<method>.png``, unique among ``used`` (which it joins, case-insensitively)."""
    stem = f"{_safe_name(unit_id)}_{method.replace('++', 'pp')}"
    name, k = f"{stem}.png", 1
    while name.lower() in used:
        k += 1
        name = f"{stem}-{k}.png"
    used.add(name.lower())
    return name


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "unit"


def explain_files(
    bundle: Any,
    inputs: list[Path],
    out_dir: Path,
    methods: list[str] | None = None,
    target: str | int | None = None,
    checks: bool = True,
    shuffled: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Explain every unit the bundle's task finds in ``inputs`` (read with its predict options, e.g.
    ``nodule``/``diameter`` or ``fs``); write a picture per unit and method and ``explanations.json``
    into ``out_dir`` (already prepared); return what the JSON holds."""
    from medlearn.explain.draw import draw, unit_summary

    validated = bundle.task.predict_options(**options)
    loaded = bundle.task.load_inputs([Path(p) for p in inputs], validated)
    units, arrays, skipped = [], [], list(loaded.skipped)
    for unit in loaded.units:
        array = bundle.preprocessing(unit.raw)
        broken = non_finite_reason(array)
        if broken is not None:
            skipped.append({"input": unit.meta.get("input", unit.id), "unit": unit.id, "reason": broken})
            continue
        units.append(unit)
        arrays.append(array)
    if not units:
        raise InputError(
            f"{', '.join(map(str, inputs))}: no unit to explain"
            + (f" ({skipped[0]['reason']})" if skipped else "")
        )
    found = explain_arrays(bundle, arrays, methods, target, checks, shuffled)
    used: set[str] = set()
    records = []
    for item in found.items:
        unit = units[item.unit]
        name = picture_name(unit.id, item.method, used)
        target_name = class_name(bundle, item.target)
        predicted = class_name(bundle, found.predicted[item.unit])
        title = picture_title(bundle, unit.id, item, predicted)
        problem = draw(out_dir / name, arrays[item.unit], item.attribution, found.layout, title, item.method)
        record = {
            "unit": unit.id,
            "input": unit.meta.get("input", unit.id),
            "method": item.method,
            "target_class": target_name,
            "predicted_class": predicted,
            ("value" if bundle.kind == "regression" else "probability"): round(item.probability, 6),
            "picture": name,
            **unit_summary(item.attribution, found.layout, item.method),
            **item.checks,
        }
        if problem:
            record["warnings"] = [problem]
        records.append(record)
    summary = summarise(found.items)
    result = {
        "bundle": str(bundle.path),
        "task": bundle.task.name,
        "model": bundle.model_name,
        "layout": found.layout.kind,
        "methods": list(summary),
        "target": "predicted class" if target is None else str(target),
        "summary": summary,
        "units": records,
        "skipped": skipped,
    }
    (out_dir / "explanations.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def unit_pictures(bundle: Any, units: list[Any], arrays: list[np.ndarray], out_dir: Path) -> list[str]:
    """One explanation picture per unit for ``predict --out`` and the service's ``explain=true`` (models
    whose inputs are not images: signals, admissions, trees): the task's default method for the unit's
    predicted class, without the sanity checks (``medlearn explain`` runs those). Returns the file names."""
    from medlearn.explain.draw import draw

    found = explain_arrays(bundle, arrays, checks=False)
    used: set[str] = set()
    pictures = []
    for item in found.items:
        unit = units[item.unit]
        name = picture_name(unit.id, item.method, used)
        title = picture_title(bundle, unit.id, item)
        draw(out_dir / name, arrays[item.unit], item.attribution, found.layout, title, item.method)
        pictures.append(name)
    return pictures
