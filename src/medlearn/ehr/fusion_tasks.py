"""The admission tasks with their inputs split into kinds of data for a fused model (:mod:`medlearn.fusion`).

The featurizer (:class:`medlearn.ehr.features.Featurize`) already makes one (time bins × features) array
per admission; its :meth:`~medlearn.ehr.features.Featurize.feature_names` say which column holds what.
These tasks load, split and featurise exactly as ``los_classification`` / ``in_hospital_mortality`` do
(same units, same patient-level split), and tell the ``fused_columns`` model which columns form each
part, so each kind of data gets its own encoder without re-extracting anything:

- ``timeseries`` (a series): lab values (``lab:``), whether each was measured (``measured:``), medication,
  procedure and ICU item events (``event:``) and the bin's position (``time``), per 2 h bin;
- ``history``: diagnosis codes of earlier admissions (``history:``), constant over the bins;
- ``static``: age, sex, number of earlier admissions and admission type.

The default model is ``fused_columns``; any other model name behaves as in the parent task (so the LSTM
baseline runs unchanged on these tasks).
"""

from __future__ import annotations

from typing import Any, ClassVar

from medlearn.ehr.tasks import InHospitalMortality, LOSClassification
from medlearn.engine.data import UnitTable

#: which feature-name prefixes (or exact names) make each part; ``series`` parts keep the time axis
PARTS: dict[str, dict[str, Any]] = {
    "timeseries": {"prefixes": ["lab:", "measured:", "event:", "time"], "series": True},
    "history": {"prefixes": ["history:"], "series": False},
    "static": {"prefixes": ["age", "sex_", "n_prior_admissions", "admission_type:"], "series": False},
}
FUSED_MODEL = "fused_columns"
#: the fused model's encoders when the config names none
DEFAULT_ENCODERS: dict[str, dict[str, Any]] = {
    "timeseries": {"model": "lstm", "params": {"hidden": 64}},
    "history": {"model": "tabular_mlp", "params": {"hidden": [32]}},
    "static": {"model": "tabular_mlp", "params": {"hidden": [16]}},
}


class ColumnParts:
    """Mixin for an admission task: the fused model's column groups from the fitted featurizer's names."""

    default_model: ClassVar[str] = FUSED_MODEL
    _feature_names: list[str]

    def fit_preprocessing(self, model_name: str, train: UnitTable) -> list[dict[str, Any]]:
        from medlearn.ehr.features import Featurize

        spec = super().fit_preprocessing(model_name, train)  # type: ignore[misc]
        featurize = next(s for s in spec if s["name"] == "ehr_featurize")
        self._feature_names = Featurize(**featurize["params"]).feature_names()
        return spec

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        kwargs = super().model_kwargs(model_name)  # type: ignore[misc]
        if model_name != FUSED_MODEL:
            return kwargs
        from medlearn.fusion.columns import group_columns

        parts = group_columns(self._feature_names, PARTS)
        return {
            "out_channels": kwargs["out_channels"],
            "parts": parts,
            "default_encoders": {name: DEFAULT_ENCODERS[name] for name in parts},
        }


class LOSClassificationParts(ColumnParts, LOSClassification):
    name: ClassVar[str] = "los_classification_multimodal"


class InHospitalMortalityParts(ColumnParts, InHospitalMortality):
    name: ClassVar[str] = "in_hospital_mortality_multimodal"
