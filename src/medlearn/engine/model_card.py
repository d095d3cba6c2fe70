"""What a bundle's model saw and how far its figures go, in plain words: the sentence stored as
``training.summary`` in ``bundle.json`` (printed by ``medlearn info``) and the bundle's ``model_card.md``.

Both are built from the bundle's metadata alone, so any run that writes a bundle (train, a generative run,
guided generation) describes it the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medlearn.engine.card_trust import trust_markdown
from medlearn.engine.posthoc import Calibration
from medlearn.engine.runtime import REPRODUCIBILITY

if TYPE_CHECKING:  # artifacts writes the card: a runtime import back would be a cycle
    from medlearn.engine.artifacts import BundleMeta, PrivacyRecord

#: What the ε of a private training does not cover (docs/privacy.md).
OUTSIDE_EPSILON = (
    "ε bounds each training unit's influence on the weights only: preprocessing fitted on the training split "
    "(e.g. vocabularies, normalisation statistics) and class weights from its label counts are outside it, as "
    "is everything chosen on validation (the kept epoch, calibration, operating point), whose units it does "
    "not protect. The noise comes from torch's seeded generator, not a cryptographically secure one"
)


def training_summary(meta: BundleMeta) -> str:
    """One plain sentence saying what the bundle's model saw: its training units, how its epochs were
    chosen, where its calibration, operating point and prediction interval come from, and what a
    re-training reproduces. Stored in ``bundle.json`` (``training.summary``), printed by ``medlearn info``
    and the model card."""
    t, unit = meta.training, meta.unit
    n_train = meta.data.n_train
    refit = t.refit
    if refit:
        if refit.one_pass:
            how = "in one pass (a model fitted in one call: no epochs)"
        else:
            epochs = ", ".join(str(e) for e in refit.fold_best_epochs)
            how = (
                f"for {refit.epochs} epochs, the median best epoch of {t.folds} folds ({epochs}), "
                "without early stopping or a validation split"
            )
        text = f"refit on all {n_train:,} {unit}s ({refit.groups} groups) {how}"
    else:
        monitored = t.monitored_units if t.monitored_units is not None else len(meta.splits.get("val", []))
        how = (
            "in one pass"
            if t.one_pass
            else (
                f"best epoch {t.best_epoch} of {t.epochs_run} by validation {t.monitor} "
                f"(early stopping on {monitored} {unit}s)"
            )
        )
        text = f"trained on the {n_train:,} {unit}s of the train split, {how}"
    fitted = []
    cal_on = t.calibrated_on or "the validation split"
    if meta.kind in ("binary", "multiclass") and meta.config.get("eval", {}).get("calibrate", True):
        fitted.append("calibration")
    if meta.operating_point:
        fitted.append("operating point")
    if fitted:
        text += f"; {' and '.join(fitted)} from {cal_on}"
    interval = meta.prediction_interval
    if interval:
        text += (
            f"; {round(interval.coverage * 100)}% prediction interval ±{interval.half_width:.3g} from "
            f"{interval.method.removeprefix('split conformal, ')}"
        )
    if meta.privacy is not None:
        p = meta.privacy
        text += f"; differentially private (DP-SGD): ε = {p.epsilon:.3g} spent at δ = {p.delta:.2g}"
    if t.threads is not None:
        text += (
            f". Trained with {t.threads} torch thread{'s' if t.threads != 1 else ''}, deterministic "
            f"algorithms {'on' if t.deterministic else 'off'}: {t.reproducibility or REPRODUCIBILITY}"
        )
    return text + "."


def _header(meta: BundleMeta, counts: str) -> list[str]:
    """The title, intended use and data line (where, which version, then ``counts``) of every card."""
    return [
        f"# Model card: {meta.task.name} — {meta.model.name}",
        "",
        f"**Intended use.** {meta.intended_use}",
        "",
        f"**Data.** `{meta.data.root}` (fingerprint `{meta.data.fingerprint}`), {counts}",
        "",
    ]


def _value(metric: dict) -> str:
    ci = metric.get("ci95")
    value = "n/a" if metric["value"] is None else f"{metric['value']:.3f}"
    return value + (
        f" (95% CI {ci[0]:.3f}–{ci[1]:.3f}{', BCa' if metric.get('ci_method') == 'bca' else ''})"
        if ci
        else ""
    )


def model_card(meta: BundleMeta) -> str:
    """``model_card.md``: intended use, data, what the model saw, metrics with their CIs and split, the
    operating point and calibration, credits. A generator's card shows its generated set's figures."""
    if meta.kind == "generative":
        return _generative_card(meta)
    test = meta.metrics["test"]
    training = meta.training
    splits = ", ".join(f"{k} {len(v)}" for k, v in meta.splits.items())
    lines = _header(meta, f"{meta.data.n_units} {meta.unit}s; splits by group: {splits}.")
    if training.summary:
        lines += [f"**What this model saw.** {training.summary}", ""]
    heading = "Cross-validated metrics" if test["split"] == "cv" else "Test metrics"
    lines += [f"**{heading}** (split `{test['split']}`, n = {test['n']} {test['unit']}s):", ""]
    lines += [f"- {name}: {_value(m)}" for name, m in test["metrics"].items()]
    if test.get("ci_note"):
        lines += ["", f"*{test['ci_note']}.*"]
    if test.get("folds_summary"):
        lines += ["", "Per-fold spread (mean ± sd, min–max over folds):", ""]
        lines += [
            f"- {name}: {s['mean']:.3f} ± {s['sd'] if s['sd'] is not None else float('nan'):.3f} "
            f"({s['min']:.3f}–{s['max']:.3f})"
            for name, s in test["folds_summary"].items()
            if s["mean"] is not None
        ]
    if test["split"] == "cv":
        lines += [
            "",
            "The cross-validated metrics score the fold models on the units each never saw; the shipped "
            "weights are the refit described above, which no held-out unit has scored.",
        ]
    cal_on = training.calibrated_on or "the validation split"
    if meta.operating_point:
        op = meta.operating_point
        lines += [
            "",
            f"**Operating point.** threshold {op.threshold:.4f}, chosen on {cal_on} by `{op.rule}`.",
        ]
    cal = meta.calibration
    if meta.kind != "regression":
        lines += [
            "",
            f"**Calibration.** logit / {cal.temperature:.3f} + {cal.bias:.3f}, fitted on {cal_on} "
            "(temperature/Platt scaling; ranking unchanged).",
        ]
        lines += [f"**Warning:** {problem}." for problem in Calibration(**cal.model_dump()).at_bound()]
    if meta.prediction_interval:
        pi = meta.prediction_interval
        lines += [
            "",
            f"**Prediction interval.** ±{pi.half_width:.3g} for {round(pi.coverage * 100)}% coverage ({pi.method}).",
        ]
    if meta.privacy is not None:
        lines += ["", privacy_paragraph(meta.privacy)]
    lines += trust_markdown(meta)
    lines += ["", "**Credits.**", *[f"- {c}" for c in meta.credits], ""]
    return "\n".join(lines)


def privacy_paragraph(p: PrivacyRecord) -> str:
    """The model card's account of a private training: ε spent against its target, δ and its rule, the
    mechanism's parameters, the layers replaced, and what ε does not cover."""
    layers = ""
    if p.replaced_layers:
        kinds = sorted({f"{r.replaced} → {r.by}" for r in p.replaced_layers})
        names = ", ".join(f"`{r.path}`" for r in p.replaced_layers[:6])
        more = f" and {len(p.replaced_layers) - 6} more" if len(p.replaced_layers) > 6 else ""
        layers = (
            f" Layers DP-SGD cannot train were replaced before training ({'; '.join(kinds)}): {names}{more}."
        )
    return (
        f"**Differential privacy.** Trained with DP-SGD ({p.library}, {p.per_sample_gradients} per-unit "
        f"gradients): **ε = {p.epsilon:.3g}** spent (target {p.target_epsilon:g}) at δ = {p.delta:.3g} "
        f"({p.delta_rule}), by the {p.accountant.upper()} accountant over {p.steps:,} steps of Poisson-sampled "
        f"batches (sample rate {p.sample_rate:.4g}, {p.expected_batch_size} units expected), noise multiplier "
        f"{p.noise_multiplier:.3g}, each unit's gradient clipped to L2 norm {p.max_grad_norm:g}.{layers} "
        f"{OUTSIDE_EPSILON}."
    )


def _plain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _generative_card(meta: BundleMeta) -> str:
    """A generator is judged by one set of samples: its figures have no bootstrap CI."""
    metrics = meta.metrics.get("test") or {"n": 0, "metrics": {}}
    val = len(meta.splits.get("val", []))
    lines = [
        *_header(meta, f"{meta.data.n_train:,} training {meta.unit}s, {val} validation."),
        f"**Trained** {meta.training.seconds / 60:.1f} min, {meta.training.epochs_run} epochs.",
        "",
        f"**Generated set** ({metrics['n']:,} samples, not bootstrapped):",
        "",
    ]
    lines += [f"- {name}: {_plain(m['value'])}" for name, m in metrics["metrics"].items()]
    lines += ["", "**Credits.**", *[f"- {c}" for c in meta.credits], ""]
    return "\n".join(lines)
