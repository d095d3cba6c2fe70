"""Harmonised clinical concepts: one vocabulary over MIMIC-III, MIMIC-IV, eICU and FHIR.

A model trained on one source's codes (MIMIC itemids, eICU lab names, FHIR LOINC/RxNorm/SNOMED) cannot
read another's. The concept table (``concepts.yaml``, loaded by :func:`load_concepts`) names, per source,
the codes that carry ~70 ICU concepts (vital signs, labs, fluids, vasopressors and other ICU drugs,
ventilation, demographics) with a canonical unit, unit conversions and a plausible range;
:func:`map_concepts` turns any reader's events into concept events. ``data.options.features: concepts``
(:class:`medlearn.ehr.tasks.AdmissionOptions`) trains on them, so a bundle trained on MIMIC-IV evaluates
on eICU or MIMIC-III and predicts on FHIR. ricu's concept dictionary (eth-mds/ricu, GPL-3) was the
reference of facts; nothing is copied from it.
"""

from medlearn.ehr.concepts.mapping import (
    SHARED_SYSTEMS,
    admission_type_categories,
    concept_events,
    concept_lookup,
    describe_unconvertible,
    feature_admissions,
    feature_events,
    map_concepts,
    unconvertible_units,
)
from medlearn.ehr.concepts.table import (
    CONCEPT_EVENT_SYSTEM,
    CONCEPT_SYSTEM,
    SOURCES,
    Concept,
    SourceMap,
    load_concepts,
    normalise_unit,
)

__all__ = [
    "admission_type_categories",
    "feature_admissions",
    "CONCEPT_EVENT_SYSTEM",
    "CONCEPT_SYSTEM",
    "SHARED_SYSTEMS",
    "SOURCES",
    "Concept",
    "SourceMap",
    "concept_events",
    "concept_lookup",
    "describe_unconvertible",
    "feature_events",
    "load_concepts",
    "map_concepts",
    "normalise_unit",
    "unconvertible_units",
]
