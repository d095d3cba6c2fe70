"""Name → class tables for tasks, models and transforms.

Entries are ``"module:attribute"`` strings so that looking a name up imports only the modality it
belongs to (``import medlearn`` stays fast and never imports MONAI or RDKit). Adding a task is one file
plus one line here.

Out-of-tree extensions: a config (or a flag) may name a task, model or transform that is not in these
tables as ``package.module:Name`` (anything containing ``:``), e.g. ``hospital_ext.tasks:SepsisTask``; the
module is imported only when that name is looked up, so a hospital adds its own without forking. Nothing is
installed or fetched: the module must already be importable. Bundles naming such a name are loaded only when
the caller opts in (see :func:`is_external`).

A built-in name whose modality needs an optional extra that is not installed (``medlearn[signals]`` for
``ecg_af``) is a :class:`~medlearn.errors.MissingDependencyError` naming the extra, raised at lookup,
before any data is read: one line the CLI prints, never a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from medlearn.errors import ConfigError, MissingDependencyError

TASKS: dict[str, str] = {
    "lung_nodule_malignancy": "medlearn.imaging.tasks.lidc_nodules:LungNoduleMalignancy",
    "ct_nodule_malignancy": "medlearn.imaging.tasks.ct_nodules:CTNoduleMalignancy",
    "lung_nodule_multimodal": "medlearn.imaging.tasks.lidc_fusion:LungNoduleMultimodal",
    "cxr_pneumonia": "medlearn.imaging.tasks.cxr:CXRPneumonia",
    "los_classification": "medlearn.ehr.tasks:LOSClassification",
    "los_regression": "medlearn.ehr.tasks:LOSRegression",
    "in_hospital_mortality": "medlearn.ehr.tasks:InHospitalMortality",
    "los_classification_multimodal": "medlearn.ehr.fusion_tasks:LOSClassificationParts",
    "in_hospital_mortality_multimodal": "medlearn.ehr.fusion_tasks:InHospitalMortalityParts",
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
    "fused": "medlearn.fusion.model:fused",
    "fused_columns": "medlearn.fusion.model:fused_columns",
    "tabular_mlp": "medlearn.fusion.tabular:tabular_mlp",
    "tabular_trees": "medlearn.fusion.tabular:tabular_trees",
}

TRANSFORMS: dict[str, str] = {
    "scale_intensity_range": "medlearn.imaging.transforms:ScaleIntensityRange",
    "hu_window": "medlearn.imaging.transforms:HUWindow",
    "normalize": "medlearn.engine.transforms:ZScore",
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
    "fusion_pack": "medlearn.fusion.packing:FusionPack",
    "signed_log1p": "medlearn.imaging.radiomics:SignedLog1p",
}


#: The optional extra each modality package needs, and the libraries a lookup checks are installed (found
#: without importing them, so a lookup stays fast): those every task of the modality reads its data with.
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "medlearn.imaging": ("imaging", ("monai", "pydicom")),
    "medlearn.ehr": ("ehr", ("polars",)),
    "medlearn.signals": ("signals", ("wfdb",)),
    "medlearn.molecules": ("molecules", ("rdkit",)),
}


def is_external(name: str) -> bool:
    """True for an out-of-tree name (``package.module:Name``): looking it up imports code that is not part
    of medlearn, so loading a bundle that names one must be an explicit choice of the user."""
    return ":" in name


def _installed(library: str) -> bool:
    """Whether ``library`` can be imported, without importing it (``sys.modules[name] = None`` blocks one)."""
    if library in sys.modules:
        return sys.modules[library] is not None
    try:
        return importlib.util.find_spec(library) is not None
    except (ImportError, ValueError):
        return False


def _extra_of(module: str) -> tuple[str, tuple[str, ...]] | None:
    return next(
        (extra for package, extra in EXTRAS.items() if module == package or module.startswith(package + ".")),
        None,
    )


def _missing_extra(name: str, module: str, library: str) -> MissingDependencyError:
    extra = _extra_of(module)
    hint = f'pip install "medlearn[{extra[0]}]"' if extra else f"pip install {library.split('.')[0]}"
    return MissingDependencyError(f"{name} needs {library}: {hint}")


def _check_extra(name: str, module: str) -> None:
    """Raise MissingDependencyError when the modality ``module`` belongs to lacks a library of its extra."""
    extra = _extra_of(module)
    for library in extra[1] if extra else ():
        if not _installed(library):
            raise _missing_extra(name, module, library)


def _import_builtin(name: str, module: str) -> Any:
    _check_extra(name, module)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == "medlearn" or missing.startswith("medlearn."):
            raise  # our own module is missing: a bug, keep the traceback
        raise _missing_extra(name, module, missing) from None


def _import_external(name: str, kind: str) -> Any:
    """Import ``package.module:Name`` as the user named it, with one-line errors naming what is wrong."""
    module, _, attr = name.partition(":")
    if (
        not module
        or not attr
        or ":" in attr
        or not all(part.isidentifier() for part in [*module.split("."), attr])
    ):
        raise ConfigError(
            f"{name}: an out-of-tree {kind} is named package.module:Name (e.g. hospital_ext.tasks:MyTask)"
        )
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        if module == missing or module.startswith(missing + "."):
            raise ConfigError(
                f"{name}: module {missing} is not installed (install the package that provides it, "
                "or put it on PYTHONPATH)"
            ) from None
        raise ConfigError(
            f"{name}: module {module} cannot be imported: it needs {missing}, which is not installed"
        ) from None
    except ImportError as exc:
        raise ConfigError(f"{name}: module {module} cannot be imported ({exc})") from None
    try:
        return getattr(imported, attr)
    except AttributeError:
        raise ConfigError(f"{name}: module {module} has no attribute {attr}") from None


def _resolve(table: dict[str, str], kind: str, name: str) -> Any:
    if is_external(name):
        found = _import_external(name, kind)
        if not callable(found):
            raise ConfigError(f"{name}: is not a {kind} (not a class or function)")
        return found
    try:
        target = table[name]
    except KeyError:
        raise ConfigError(
            f"unknown {kind} {name!r} (known: {', '.join(sorted(table))}; or name your own as package.module:Name)"
        ) from None
    module, attr = target.split(":")
    return getattr(_import_builtin(name, module), attr)


def task_class(name: str) -> Any:
    """The Task class registered as ``name``, or the out-of-tree one ``package.module:Name``."""
    found = _resolve(TASKS, "task", name)
    if is_external(name) and not _is_task_class(found):
        raise ConfigError(f"{name}: is not a task (a subclass of medlearn.engine.task.Task)")
    return found


def _is_task_class(found: Any) -> bool:
    """A subclass of medlearn.engine.task.Task, checked by name: the registry sits below the engine (the
    engine's data module looks transforms up here), so importing the engine back would be a cycle."""
    return isinstance(found, type) and any(
        c.__module__ == "medlearn.engine.task" and c.__name__ == "Task" for c in found.__mro__
    )


def model_factory(name: str) -> Any:
    """The model factory registered as ``name``, or the out-of-tree one ``package.module:name``."""
    return _resolve(MODELS, "model", name)


def transform_class(name: str) -> Any:
    """The transform class registered as ``name``, or the out-of-tree one ``package.module:Name``."""
    return _resolve(TRANSFORMS, "transform", name)
