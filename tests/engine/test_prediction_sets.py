"""``eval.conformal`` end to end (issue 16, item 3): validation is split into the part that steers training
(early stopping, calibration, operating point) and the part that calibrates the sets; the bundle carries
the sets, ``metrics.json`` their coverage on test, and every prediction record its set and ``uncertain``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import medlearn


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    from medlearn.signals.synthetic import write_synthetic_cinc

    folder = tmp_path_factory.mktemp("sets")
    data = write_synthetic_cinc(folder / "data", n_records=60, seconds=20.0)
    result = medlearn.train(
        "ecg_af_cinc2017",
        out=folder / "run",
        data=data,
        overrides=[
            "data.options.seconds=20",
            "model.params.width=8",
            "train.epochs=2",
            "eval.n_bootstrap=20",
            "eval.conformal.coverage=0.8",
            "eval.conformal.score=aps",
        ],
        threads=1,
    )
    return result, data


def test_the_held_out_part_of_validation_calibrates_the_sets_and_nothing_else(run):
    result, _ = run
    meta = json.loads((result.bundle / "bundle.json").read_text())
    parts = meta["validation_parts"]
    assert set(parts["early_stopping"]).isdisjoint(parts["conformal"])
    assert sorted(parts["early_stopping"] + parts["conformal"]) == sorted(meta["splits"]["val"])
    sets = meta["prediction_sets"]
    assert sets["coverage"] == 0.8 and sets["score"] == "aps"
    assert sets["n_calibration"] == len(parts["conformal"])
    assert "held out of early stopping, calibration and the operating point" in sets["method"]
    assert meta["training"]["monitored_units"] == len(parts["early_stopping"])
    assert (
        f"less the {len(parts['conformal'])} held out for the prediction sets"
        in meta["training"]["calibrated_on"]
    )


def test_metrics_report_coverage_and_set_sizes_on_test(run):
    result, _ = run
    conformal = result.metrics["conformal"]
    scored = conformal["scored"]
    assert scored["n"] == result.metrics["n"]
    assert 0.0 <= scored["coverage"] <= 1.0 and 1.0 <= scored["mean_set_size"] <= 4.0
    assert set(scored["per_class"]) <= {"Normal", "AF", "Other", "Noisy"}
    curve = conformal["selective"]
    assert curve["coverage"][-1] == 1.0 and len(curve["accuracy"]) == len(curve["coverage"])


def test_each_prediction_carries_its_set_and_the_uncertain_flag(run):
    result, data = run
    bundle = medlearn.load_bundle(result.bundle)
    records = bundle.predict(sorted(Path(data).glob("*.hea"))[:10])
    for record in records:
        assert record["prediction_set"][0] == record["label"]  # most probable first
        assert set(record["prediction_set"]) <= set(record["probabilities"])
        assert record["uncertain"] == (len(record["prediction_set"]) > 1)
        assert record["set_coverage"] == 0.8
    again = bundle.predict(sorted(Path(data).glob("*.hea"))[:10])
    assert [r["prediction_set"] for r in again] == [r["prediction_set"] for r in records]  # deterministic


def test_without_eval_conformal_a_classifier_keeps_all_of_validation(tmp_path):
    from medlearn.signals.synthetic import write_synthetic_cinc

    data = write_synthetic_cinc(tmp_path / "data", n_records=30, seconds=20.0)
    result = medlearn.train(
        "ecg_af_cinc2017",
        out=tmp_path / "run",
        data=data,
        overrides=[
            "data.options.seconds=20",
            "model.params.width=8",
            "train.epochs=1",
            "eval.n_bootstrap=10",
        ],
        threads=1,
    )
    meta = json.loads((result.bundle / "bundle.json").read_text())
    assert meta["prediction_sets"] is None and meta["validation_parts"] is None
    assert "conformal" not in result.metrics
    record = medlearn.load_bundle(result.bundle).predict(sorted(Path(data).glob("*.hea"))[:1])[0]
    assert "prediction_set" not in record and "uncertain" not in record
    assert np.isclose(sum(record["probabilities"].values()), 1.0, atol=1e-4)


def test_the_card_report_and_card_json_carry_the_sets_and_say_there_are_no_demographics(run):
    from medlearn.engine.card_trust import NO_DEMOGRAPHICS

    result, _ = run
    card = (result.bundle / "model_card.md").read_text()
    assert "**Prediction sets.** split conformal (aps)" in card and "target coverage 80%" in card
    assert NO_DEMOGRAPHICS in card and "**Label.** one of 4 classes per record" in card
    assert "get an uncertain prediction set" in card  # a known failure mode, with its share
    facts = json.loads((result.bundle / "model_card.json").read_text())
    assert facts["prediction_sets"]["test"]["n"] == result.metrics["n"]
    assert facts["subgroups"] == NO_DEMOGRAPHICS and facts["data"]["fingerprint"]
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert "model_card.json" in manifest["files"]  # vouched for like every other bundle file
    report = result.report.read_text()
    assert "Prediction sets" in report
    assert "Model card" in report and "Accuracy vs coverage" in report


def test_an_ehr_card_has_a_subgroup_table(tmp_path):
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    data = write_synthetic_mimic4(tmp_path / "mimic", n_patients=120, seed=0)
    result = medlearn.train(
        "ehr_los_mimic4_linear",
        out=tmp_path / "run",
        data=data,
        overrides=["train.epochs=1", "eval.n_bootstrap=50"],
        threads=1,
    )
    card = (result.bundle / "model_card.md").read_text()
    assert "**Population and subgroups** (test split" in card and "| sex |" in card
    gaps = result.metrics["subgroup_gaps"]
    assert "sex" in gaps
    for entry in gaps.values():
        assert all(v["n"] >= 20 for v in entry["groups"].values())  # smaller groups are only listed
    scored = set(result.metrics.get("subsets", {}))
    assert all(name in {g for e in gaps.values() for g in e["groups"]} for name in scored if "=" in name)
