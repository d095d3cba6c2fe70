"""The HTML report of a predictive run or an evaluation: the standard sections (ROC, calibration,
confusion, training curves), the task's own examples, sample inputs as the model sees them and Grad-CAM
overlays for image models (see ``docs/conventions.md#reports``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlearn.engine import metrics as M
from medlearn.engine.bundle import Bundle
from medlearn.engine.data import UnitTable
from medlearn.engine.protocols import gradcam_layer


def write_run_report(
    path: Path,
    bundle: Bundle,
    tables: dict[str, UnitTable],
    preds: dict[str, np.ndarray],
    metrics_by_split: dict[str, dict],
    history: list[dict],
    config_yaml: str | None,
    data_sections: list | None = None,
) -> Path:
    from medlearn.engine.report import standard_sections, write_report

    task, meta = bundle.task, bundle.meta
    ((split, table),) = list(tables.items())[:1]
    op = M.OperatingPoint(**meta.operating_point.model_dump()) if meta.operating_point else None
    training = meta.training
    sections = standard_sections(
        task.kind,
        table.targets,
        preds[split],
        task.class_names,
        op,
        history,
        monitor=training.monitor,
        best_epoch=training.best_epoch,
    )
    sections.extend(task_report_sections(bundle, table, preds[split]))
    sections.extend(data_sections or [])
    sections.extend(trust_sections(bundle, metrics_by_split.get(split, {})))
    warnings = bundle.calibration.at_bound()
    provenance = {
        "task": task.name,
        "model": meta.model.name,
        "data fingerprint": meta.data.fingerprint,
        "best epoch": training.best_epoch,
        "monitored metric": training.monitor,
        **{f"calibration {k}": round(v, 4) for k, v in bundle.calibration.to_dict().items()},
        "calibration fitted on": training.calibrated_on or "the validation split",
        **({"calibration warning": "; ".join(warnings)} if warnings else {}),
        **meta.versions,
    }
    # The bundle's own credits: what this model was trained on (a demo's synthetic data, not the task's dataset).
    return write_report(
        path,
        f"medlearn — {task.name} ({meta.model.name})",
        metrics_by_split,
        sections,
        meta.intended_use,
        meta.credits,
        config_yaml=config_yaml,
        provenance=provenance,
        warnings=warnings,
    )


def task_report_sections(bundle: Bundle, table: UnitTable, pred: np.ndarray, n_examples: int = 12) -> list:
    """Sample inputs and, for image models, Grad-CAM overlays of the most and least confident units."""
    from medlearn.engine.plots import figure_to_data_uri, image_grid
    from medlearn.engine.report import ReportSection

    task = bundle.task
    custom = task.report_examples(bundle, table, pred)
    if custom is not None:
        return custom
    scores = pred if pred.ndim == 1 else pred.max(axis=1)
    order = np.argsort(-scores)
    picks = list(dict.fromkeys([*order[: n_examples // 2], *order[::-1][: n_examples // 2]]))
    arrays = [bundle.preprocessing(table.raw[i]) for i in picks]
    images = [task.display_image(a) for a in arrays]
    if not picks or any(img is None for img in images):
        return []

    def truth(i: int) -> object:
        return table.targets[i] if task.kind == "regression" else task.class_names[int(table.targets[i])]

    titles = [f"{table.ids[i][:18]}\ny={truth(i)} p={scores[i]:.2f}" for i in picks]
    sections = [
        ReportSection(
            "Sample inputs (model view, highest and lowest scores)",
            figures=[
                ("Preprocessed inputs as the model sees them", figure_to_data_uri(image_grid(images, titles)))
            ],
        )
    ]
    if gradcam_layer(bundle.model):
        import html as _html

        from medlearn.explain.gradcam import cam_problem, gradcam, overlay

        heat = gradcam(bundle.model, np.stack(arrays))
        maps = [task.display_image(h[None]) for h in heat]
        overlays = [overlay(img, m) for img, m in zip(images, maps)]
        problems = [cam_problem(m) for m in maps]
        text = (
            "<p>Where the network's last convolutional block found evidence for the positive class (red = "
            "strongest). Heatmaps are normalised per image.</p>"
        )
        flagged = [(table.ids[i], problem) for i, problem in zip(picks, problems) if problem is not None]
        if flagged:  # said in words, not left to a blank overlay
            items = "".join(
                f"<li><code>{_html.escape(str(uid))}</code>: {_html.escape(problem)}</li>"
                for uid, problem in flagged
            )
            text += (
                f'<p class="cam-problem"><strong>{len(flagged)} of {len(picks)} maps show nothing.</strong>'
                f"</p><ul>{items}</ul>"
            )
        titles = [t + ("\nGrad-CAM: nothing" if p is not None else "") for t, p in zip(titles, problems)]
        sections.append(
            ReportSection(
                "Grad-CAM",
                html=text,
                figures=[("Grad-CAM overlays", figure_to_data_uri(image_grid(overlays, titles)))],
            )
        )
    return sections


def trust_sections(bundle: Bundle, scored: dict) -> list:
    """Prediction sets (coverage against the target, the selective-prediction curve) and the model card
    (with its subgroup table), as the report shows them."""
    import html as _html

    from matplotlib.figure import Figure

    from medlearn.engine.model_card import model_card
    from medlearn.engine.plots import figure_to_data_uri
    from medlearn.engine.report import ReportSection

    sections = []
    sets = scored.get("conformal")
    if sets:
        s = sets["scored"]
        rows = "".join(
            f"<tr><td>{_html.escape(name)}</td><td>{v['n']}</td><td>{v['coverage']:.3f}</td></tr>"
            for name, v in s["per_class"].items()
        )
        text = (
            f"<p>{_html.escape(sets['method'])}. Target coverage {sets['coverage']:.0%}; on this split "
            f"{s['coverage']:.1%} of {s['n']} units had their true class in the set. Mean set size "
            f"{s['mean_set_size']:.2f}; {s['uncertain_share']:.1%} of units uncertain (more than one class).</p>"
            f"<table><tr><th>true class</th><th>n</th><th>coverage</th></tr>{rows}</table>"
        )
        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        curve = sets["selective"]
        ax.plot(curve["coverage"], curve["accuracy"], marker="o", ms=3)
        ax.set_xlabel("share of units answered (most confident first)")
        ax.set_ylabel("accuracy")
        ax.set_title("Selective prediction")
        ax.grid(alpha=0.3)
        sections.append(
            ReportSection(
                "Prediction sets", html=text, figures=[("Accuracy vs coverage", figure_to_data_uri(fig))]
            )
        )
    card = model_card(bundle.meta)
    sections.append(ReportSection("Model card", html=f"<pre class='card'>{_html.escape(card)}</pre>"))
    return sections
