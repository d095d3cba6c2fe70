"""Admission-level EHR tasks at a fixed prediction time (default 24 h after admission).

Cohort, features and the no-look-ahead rule are in :mod:`medlearn.ehr.features`. Units are admissions,
groups are patients (so no patient is in two splits). Targets are measured from the prediction time:

- ``los_classification``: remaining length of stay in the 10 bins of Harutyunyan et al. (2019)'s
  MIMIC-III benchmark: <1 day, [1,2) … [7,8) days, [8,14), ≥14 (ordered; ``kappa_linear``, ``mad`` in bins);
- ``los_regression``: remaining length of stay in days (``mae``, ``rmse``);
- ``in_hospital_mortality``: death before discharge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medlearn.engine.data import UnitTable
from medlearn.engine.target import Target
from medlearn.engine.task import NoOptions, PredictInputs, PredictUnit, Task

LOS_BIN_EDGES_DAYS = (1, 2, 3, 4, 5, 6, 7, 8, 14)
LOS_BIN_NAMES = ["<1d", "1-2d", "2-3d", "3-4d", "4-5d", "5-6d", "6-7d", "7-8d", "8-14d", ">=14d"]


class AdmissionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prediction_hours: float = Field(24.0, gt=0, description="prediction time after admission (h)")
    bin_hours: float = Field(2.0, gt=0, description="width of a time bin (h)")
    max_labs: int = Field(50, ge=1, description="most frequent numeric codes kept (training split)")
    max_codes: int = Field(200, ge=1, description="most frequent event codes kept")
    max_history: int = Field(100, ge=0, description="most frequent earlier-admission diagnosis codes kept")
    min_count: int = Field(
        3, ge=1, description="a code enters a vocabulary when seen in this many admissions"
    )
    leaky_current_diagnoses: bool = Field(
        False,
        description="ABLATION: add the current admission's discharge diagnoses (not known at prediction time)",
    )
    impossible_values: Literal["drop", "clip", "keep"] = Field(
        "drop",
        description="physiologically impossible lab values (medlearn.ehr.plausibility): drop them, clip them "
        "to the bound they cross, or keep them; counted in the log and the report either way",
    )
    features: Literal["codes", "concepts"] = Field(
        "codes",
        description="codes: each source's own codes (itemids, lab names, LOINC...); concepts: the harmonised "
        "concepts of medlearn.ehr.concepts (values in canonical units) plus ICD diagnosis history, so a model "
        "trained on one source reads MIMIC-III, MIMIC-IV, eICU and FHIR alike",
    )


class AdmissionTask(Task):
    """Shared loading and featurisation of the admission tasks; subclasses set the target."""

    unit: ClassVar[str] = "admission"
    default_model: ClassVar[str] = "lstm"
    Options: ClassVar[type[BaseModel]] = AdmissionOptions
    PredictOptions: ClassVar[type[BaseModel]] = NoOptions  # the bundle's options fix the prediction time
    credits: ClassVar[list[str]] = [
        "MIMIC-IV Clinical Database Demo v2.2, ODbL 1.0: Johnson A et al., PhysioNet (2023), doi:10.13026/dp1f-ex47.",
        "MIMIC-III Clinical Database Demo v1.4, ODbL 1.0: Johnson A et al., PhysioNet, doi:10.13026/C2HM2Q.",
        "eICU Collaborative Research Database Demo 2.0.1, ODbL 1.0: Pollard T et al., PhysioNet, "
        "doi:10.13026/4mxk-na84.",
    ]

    def fhir_resources(self, records: list[dict[str, Any]], model_version: str) -> dict[str, Any] | None:
        """A FHIR Bundle of one RiskAssessment per predicted admission (:mod:`medlearn.ehr.fhir_risk`)."""
        from medlearn.ehr.fhir_risk import risk_assessment_bundle

        return risk_assessment_bundle(records, self.name, model_version)

    def window(self):
        from medlearn.ehr.features import Window

        return Window(self.options.prediction_hours, self.options.bin_hours)

    def targets(self, cohort: Any) -> np.ndarray:
        raise NotImplementedError

    def load(self, root: Path) -> UnitTable:
        from medlearn.ehr.concepts import feature_admissions, feature_events
        from medlearn.ehr.features import build_cohort, extract_units
        from medlearn.ehr.io import read_source

        source = read_source(root)
        order = source.admission_order_known  # eICU: events join by hospital stay, no "earlier" stays
        admissions = feature_admissions(source.admissions, source.kind, self.options.features)
        cohort = build_cohort(admissions, self.window(), admission_order_known=order)
        events, notes = feature_events(source, self.options.features)
        units = extract_units(
            events,
            cohort,
            self.window(),
            self.options.leaky_current_diagnoses,
            admission_order_known=order,
        )
        from medlearn.ehr.plausibility import log_found

        log_found(str(source.root), units, self.options.impossible_values)
        self._quality = (source, units, events, notes)
        return UnitTable(
            ids=[str(a) for a in cohort["admission_id"].to_list()],
            targets=self.targets(cohort),
            groups=np.array([str(s) for s in cohort["subject_id"].to_list()]),
            raw=units,
            fingerprint=source.fingerprint,
            meta={"remaining_los_days": [round(v, 3) for v in cohort["remaining_los_days"].to_list()]},
        )

    def data_sections(self) -> list[Any]:
        """Data quality of the source the last load read (readers' notes, per-code table)."""
        from medlearn.ehr.plausibility import impossible_counts, plausibility_html, unit_flag_counts
        from medlearn.ehr.quality import lab_quality, quality_html
        from medlearn.engine.report import ReportSection

        if getattr(self, "_quality", None) is None:
            return []
        source, units, events, notes = self._quality
        body = quality_html(
            source.notes + notes,
            lab_quality(events, units, codes=source.codes),
            len(units),
            self.options.prediction_hours,
        ) + plausibility_html(
            impossible_counts(events), unit_flag_counts(units), self.options.impossible_values
        )
        return [ReportSection(f"Data quality: {source.kind} at {source.root}", html=body)]

    def metric_subsets(self, table: UnitTable) -> dict[str, np.ndarray]:
        """Sex, age band and race/ethnicity groups of the scored units (``sex=F``, ``age=65-79``,
        ``race=White``…), every group present: the engine scores those of at least
        :data:`medlearn.engine.subgroups.MIN_GROUP_UNITS` units and lists the others as too small."""
        from medlearn.ehr.subgroups import subgroup_masks

        return subgroup_masks(table.raw, min_size=1)

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        raise NotImplementedError("EHR preprocessing is fitted on the training split (fit_preprocessing)")

    def fit_preprocessing(self, model_name: str, train: UnitTable) -> list[dict[str, Any]]:
        from medlearn.ehr.features import Featurize, fit_featurize

        o = self.options
        params = fit_featurize(
            train.raw,
            self.window().n_bins,
            o.max_labs,
            o.max_codes,
            o.max_history,
            o.min_count,
            impossible_values=o.impossible_values,
        )
        self._n_features = Featurize(**params).n_features
        return [{"name": "ehr_featurize", "params": params}]

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        return {**super().model_kwargs(model_name), "in_features": self._n_features}

    def load_inputs(self, paths: list[Path], options: NoOptions | None = None) -> PredictInputs:
        """FHIR bundles (file or folder) or any supported EHR folder: one unit per inpatient admission
        still in hospital at the prediction time. It takes no options, so ``options`` may be left out."""
        from medlearn.ehr.predict import units_from_source

        result = PredictInputs(units=[])
        for path in paths:
            got = units_from_source(path, self.window(), features=self.options.features)
            result.units.extend(got.units)
            result.skipped.extend(got.skipped)
        return result

    def annotate(self, unit: PredictUnit, array: np.ndarray, bundle: Any) -> None:
        from medlearn.ehr.predict import annotate_unit

        annotate_unit(unit, array, bundle)

    def explanation_layout(self, preprocessing: Any) -> Any:
        """Time bins × features with the featuriser's names and what a value of each means
        (:meth:`feature_units`); a removed value is 0 — the training mean of a lab or of age, an event
        that did not happen."""
        from medlearn.explain.layout import InputLayout

        featurize = preprocessing.steps[0]
        return InputLayout(
            kind="sequence",
            methods=["integrated_gradients", "occlusion"],
            baseline=0.0,
            bin_hours=self.options.bin_hours,
            feature_names=featurize.feature_names(),
            feature_units=self.feature_units(featurize),
        )

    def feature_units(self, featurize: Any) -> list[str]:
        """What a value of each feature of :class:`~medlearn.ehr.features.Featurize` means, in its
        column order: labs are z-scores against the training mean and SD (in the unit the source
        records the lab in), indicators are 0/1, age is a z-score of years."""
        labs = [f"z: (value - {m:.3g}) / {s:.3g}, source unit" for m, s in zip(featurize.mean, featurize.std)]
        return (
            labs
            + ["1 = measured in this bin"] * len(labs)
            + ["1 = recorded in this bin"] * len(featurize.code_index)
            + ["bin position in the window, 0-1"]
            + [f"z: (years - {featurize.age_mean:.3g}) / {featurize.age_std:.3g}", "1 = yes", "1 = yes"]
            + ["log(1 + count)"]
            + ["1 = this admission type"] * len(featurize.type_index)
            + ["1 = coded in an earlier admission"] * len(featurize.history_index)
        )

    def input_profile(self, table: UnitTable) -> dict[str, Any]:
        """Ages, the value range of each lab in the vocabulary, the codes the model knows and the share of
        unknown codes the training admissions had (see :func:`medlearn.ehr.predict.admission_profile`)."""
        from medlearn.ehr.predict import admission_profile

        o = self.options
        return admission_profile(
            table.raw, self.window().n_bins, o.max_labs, o.max_codes, o.max_history, o.min_count, table.groups
        )

    def check_input(self, unit: PredictUnit, array: np.ndarray, profile: dict[str, Any]) -> list[str]:
        """A negative age (born after the admission), an age or lab values beyond the training ones, and
        more unknown codes than any training admission had."""
        from medlearn.ehr.predict import check_admission

        return check_admission(unit.raw, profile) if isinstance(unit.raw, dict) else []


class LOSClassification(AdmissionTask):
    name: ClassVar[str] = "los_classification"
    target: ClassVar[Target] = Target(
        "multiclass", tuple(LOS_BIN_NAMES), monitor="kappa_linear", ordinal=True
    )

    def annotate(self, unit: PredictUnit, array: np.ndarray, bundle: Any) -> None:
        """Also give the predicted bin as an interval of remaining days."""
        super().annotate(unit, array, bundle)
        probs = bundle.predict_arrays([array])[0]
        edges = (0, *LOS_BIN_EDGES_DAYS, None)
        k = int(np.argmax(probs))
        unit.explanation = {
            **(unit.explanation or {}),
            "remaining_los_days_interval": [edges[k], edges[k + 1]],
        }

    def targets(self, cohort: Any) -> np.ndarray:
        return np.digitize(cohort["remaining_los_days"].to_numpy(), LOS_BIN_EDGES_DAYS).astype(np.int64)


class LOSRegression(AdmissionTask):
    name: ClassVar[str] = "los_regression"
    target: ClassVar[Target] = Target(
        "regression", ("remaining_los_days",), monitor="mae", value_range=(0.0, None)
    )

    def targets(self, cohort: Any) -> np.ndarray:
        return cohort["remaining_los_days"].to_numpy().astype(np.float32)


class InHospitalMortality(AdmissionTask):
    name: ClassVar[str] = "in_hospital_mortality"
    target: ClassVar[Target] = Target("binary", ("survived", "died"), monitor="auroc")

    def targets(self, cohort: Any) -> np.ndarray:
        return cohort["died_in_hospital"].fill_null(False).cast(int).to_numpy().astype(np.int64)
