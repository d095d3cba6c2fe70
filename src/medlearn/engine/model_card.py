"""What a bundle's model saw and how far its figures go, in plain words: the sentence stored as
``training.summary`` in ``bundle.json`` (printed by ``medlearn info``) and the bundle's ``model_card.md``.

Both are built from the bundle's metadata alone, so any run that writes a bundle (train, a generative run,
guided generation) describes it the same way.
"""

from __future__ import annotations

from typing import Any

from medlearn.engine.posthoc import Calibration
from medlearn.engine.trainer import REPRODUCIBILITY


def training_summary(meta: dict[str, Any]) -> str:
    """One plain sentence saying what the bundle's model saw: its training units, how its epochs were
    chosen, where its calibration, operating point and prediction interval come from, and what a
    re-training reproduces. Stored in ``bundle.json`` (``training.summary``), printed by ``medlearn info``
    and the model card."""
    t, unit = meta["training"], meta["unit"]
    n_train = len(meta["splits"].get("train", []))
    kind = meta["kind"]
    refit = t.get("refit")
    if refit:
        if refit["one_pass"]:
            how = "in one pass (a model fitted in one call: no epochs)"
        else:
            epochs = ", ".join(str(e) for e in refit["fold_best_epochs"])
            how = (f"for {refit['epochs']} epochs, the median best epoch of {t['folds']} folds ({epochs}), "
                   "without early stopping or a validation split")
        text = f"refit on all {n_train:,} {unit}s ({refit['groups']} groups) {how}"
    else:
        how = "in one pass" if t.get("one_pass") else (
            f"best epoch {t['best_epoch']} of {t['epochs_run']} by validation {t['monitor']} "
            f"(early stopping on {t.get('monitored_units', len(meta['splits'].get('val', [])))} {unit}s)")
        text = f"trained on the {n_train:,} {unit}s of the train split, {how}"
    fitted = []
    cal_on = t.get("calibrated_on", "the validation split")
    if kind in ("binary", "multiclass") and meta.get("config", {}).get("eval", {}).get("calibrate", True):
        fitted.append("calibration")
    if meta.get("operating_point"):
        fitted.append("operating point")
    if fitted:
        text += f"; {' and '.join(fitted)} from {cal_on}"
    interval = meta.get("prediction_interval")
    if interval:
        text += (f"; {round(interval['coverage'] * 100)}% prediction interval ±{interval['half_width']:.3g} from "
                 f"{interval['method'].removeprefix('split conformal, ')}")
    if "threads" in t:
        text += (f". Trained with {t['threads']} torch thread{'s' if t['threads'] != 1 else ''}, deterministic "
                 f"algorithms {'on' if t.get('deterministic') else 'off'}: {t.get('reproducibility', REPRODUCIBILITY)}")
    return text + "."


def model_card(meta: dict[str, Any]) -> str:
    def fmt(metric: dict) -> str:
        ci = metric.get("ci95")
        value = "n/a" if metric["value"] is None else f"{metric['value']:.3f}"
        return value + (f" (95% CI {ci[0]:.3f}–{ci[1]:.3f}{', BCa' if metric.get('ci_method') == 'bca' else ''})"
                        if ci else "")

    test = meta["metrics"]["test"]
    training = meta["training"]
    lines = [f"# Model card: {meta['task']['name']} — {meta['model']['name']}", "",
             f"**Intended use.** {meta['intended_use']}", "",
             f"**Data.** `{meta['data']['root']}` (fingerprint `{meta['data']['fingerprint']}`), "
             f"{meta['data']['n_units']} {meta['unit']}s; splits by group: "
             + ", ".join(f"{k} {len(v)}" for k, v in meta["splits"].items()) + ".", ""]
    if training.get("summary"):
        lines += [f"**What this model saw.** {training['summary']}", ""]
    heading = ("Cross-validated metrics" if test["split"] == "cv" else "Test metrics")
    lines += [f"**{heading}** (split `{test['split']}`, n = {test['n']} {test['unit']}s):", ""]
    lines += [f"- {name}: {fmt(m)}" for name, m in test["metrics"].items()]
    if test.get("ci_note"):
        lines += ["", f"*{test['ci_note']}.*"]
    if test.get("folds_summary"):
        lines += ["", "Per-fold spread (mean ± sd, min–max over folds):", ""]
        lines += [f"- {name}: {s['mean']:.3f} ± {s['sd'] if s['sd'] is not None else float('nan'):.3f} "
                  f"({s['min']:.3f}–{s['max']:.3f})" for name, s in test["folds_summary"].items()
                  if s["mean"] is not None]
    if test["split"] == "cv":
        lines += ["", "The cross-validated metrics score the fold models on the units each never saw; the shipped "
                      "weights are the refit described above, which no held-out unit has scored."]
    cal_on = training.get("calibrated_on", "the validation split")
    if meta.get("operating_point"):
        op = meta["operating_point"]
        lines += ["", f"**Operating point.** threshold {op['threshold']:.4f}, chosen on {cal_on} by "
                      f"`{op['rule']}`."]
    cal = meta.get("calibration", {"temperature": 1.0, "bias": 0.0})
    if meta["kind"] != "regression":
        lines += ["", f"**Calibration.** logit / {cal['temperature']:.3f} + {cal['bias']:.3f}, fitted on {cal_on} "
                      "(temperature/Platt scaling; ranking unchanged)."]
        lines += [f"**Warning:** {problem}." for problem in Calibration(**cal).at_bound()]
    if meta.get("prediction_interval"):
        pi = meta["prediction_interval"]
        lines += ["", f"**Prediction interval.** ±{pi['half_width']:.3g} for {round(pi['coverage'] * 100)}% coverage "
                      f"({pi['method']})."]
    lines += ["", "**Credits.**", *[f"- {c}" for c in meta["credits"]], ""]
    return "\n".join(lines)
