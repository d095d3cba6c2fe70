"""Name → class tables for tasks, models and transforms.

Entries are ``"module:attribute"`` strings so that looking a name up imports only the modality it
belongs to (``import medlearn`` stays fast and never imports MONAI or RDKit). Adding a task is one file
plus one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from medlearn.errors import ConfigError

TASKS: dict[str, str] = {
    "lung_nodule_malignancy": "medlearn.imaging.tasks.lidc_nodules:LungNoduleMalignancy",
    "ct_nodule_malignancy": "medlearn.imaging.tasks.ct_nodules:CTNoduleMalignancy",
    "cxr_pneumonia": "medlearn.imaging.tasks.cxr:CXRPneumonia",
    "los_classification": "medlearn.ehr.tasks:LOSClassification",
    "los_regression": "medlearn.ehr.tasks:LOSRegression",
    "in_hospital_mortality": "medlearn.ehr.tasks:InHospitalMortality",
    "ecg_af": "medlearn.signals.tasks.ecg_af:EcgAF",
    "ecg_beats": "medlearn.signals.tasks.ecg_beats:EcgBeats",
    "eeg_sleep": "medlearn.signals.tasks.eeg_sleep:EEGSleep",
    "eeg_seizure": "medlearn.signals.tasks.eeg_seizure:EEGSeizure",
    "eeg_seizure_bonn_sets": "medlearn.signals.tasks.eeg_seizure:BonnSets",
    "eeg_seizure_delhi_phases": "medlearn.signals.tasks.eeg_seizure:DelhiPhases",
    "molecule_generation": "medlearn.molecules.tasks:MoleculeGeneration",
}

MODELS: dict[str, str] = {
    "seed_cnn": "medlearn.imaging.models:seed_cnn",
    "nodule_resnet25d": "medlearn.imaging.models:nodule_resnet25d",
    "resnet3d": "medlearn.imaging.models:resnet3d",
    "cnn3d": "medlearn.imaging.models:cnn3d",
    "resnet2d": "medlearn.imaging.models:resnet2d",
    "lstm": "medlearn.ehr.models:lstm",
    "gru_attention": "medlearn.ehr.models:gru_attention",
    "transformer": "medlearn.ehr.models:transformer",
    "linear_baseline": "medlearn.ehr.models:linear_baseline",
    "gradient_boosting": "medlearn.ehr.models:gradient_boosting",
    "resnet1d": "medlearn.signals.models:resnet1d",
    "cnn1d": "medlearn.signals.models:cnn1d",
    "cnn_lstm": "medlearn.signals.models:cnn_lstm",
    "epoch_gru": "medlearn.signals.models:epoch_gru",
    "char_rnn": "medlearn.molecules.generators.charrnn:char_rnn",
    "mol_vae": "medlearn.molecules.generators.vae:mol_vae",
    "latent_gan": "medlearn.molecules.generators.latent_gan:latent_gan",
    "dummy": "medlearn.engine.dummy:dummy",
}

TRANSFORMS: dict[str, str] = {
    "scale_intensity_range": "medlearn.imaging.transforms:ScaleIntensityRange",
    "hu_window": "medlearn.imaging.transforms:HUWindow",
    "normalize": "medlearn.imaging.transforms:Normalize",
    "slice_stack": "medlearn.imaging.transforms:SliceStack",
    "middle_slice": "medlearn.imaging.transforms:MiddleSlice",
    "add_channel": "medlearn.imaging.transforms:AddChannel",
    "resample_isotropic": "medlearn.imaging.transforms:ResampleIsotropic",
    "crop_around": "medlearn.imaging.transforms:CropAround",
    "denoise": "medlearn.imaging.transforms:Denoise",
    "ehr_featurize": "medlearn.ehr.features:Featurize",
    "signal_bandpass": "medlearn.signals.transforms:BandpassFilter",
    "signal_resample": "medlearn.signals.transforms:Resample",
    "signal_standardize": "medlearn.signals.transforms:Standardize",
    "signal_fix_length": "medlearn.signals.transforms:FixLength",
    "signal_rr_channel": "medlearn.signals.transforms:AddRRChannel",
    "feature_standardize": "medlearn.signals.tasks.eeg_sleep:FeatureStandardize",
    "mol_tokens": "medlearn.molecules.tasks:MoleculeTokens",
}


def _resolve(table: dict[str, str], kind: str, name: str) -> Any:
    try:
        target = table[name]
    except KeyError:
        raise ConfigError(f"unknown {kind} {name!r} (known: {', '.join(sorted(table))})") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def task_class(name: str) -> Any:
    return _resolve(TASKS, "task", name)


def model_factory(name: str) -> Any:
    return _resolve(MODELS, "model", name)


def transform_class(name: str) -> Any:
    return _resolve(TRANSFORMS, "transform", name)
