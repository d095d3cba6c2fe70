"""The Task: the contract between a dataset and the engine.

A task names its inputs (how to load units and preprocess them), its :class:`~medlearn.engine.target.Target`
(kind, class names, metric to monitor, …), its default model and, when it predicts from files, the
options ``medlearn predict`` takes for it (:attr:`Task.PredictOptions`). The engine talks only to this
interface, so adding a clinical task is one file plus one registry line (see ``docs/adding-a-task.md``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from medlearn.config import format_validation_error
from medlearn.engine.data import UnitTable
from medlearn.engine.target import Kind, Target
from medlearn.errors import ConfigError, InputError

__all__ = [
    "INTENDED_USE",
    "GenerativeTask",
    "Kind",
    "NoOptions",
    "PredictInputs",
    "PredictUnit",
    "Task",
    "step",
]

INTENDED_USE = (
    "Research use only, not a medical device. Outputs have not been clinically validated and must not "
    "be used for diagnosis or treatment decisions."
)


def step(name: str, **params: Any) -> dict[str, Any]:
    """One entry of a preprocessing spec: a registered transform name and its parameters."""
    return {"name": name, "params": params}


class NoOptions(BaseModel):
    """Options of a task (or of its ``predict``) that takes none: anything given is an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class PredictUnit:
    """One unit to predict from user-supplied files: its id, the raw input the preprocessing takes,
    and anything worth reporting (e.g. which reader's mark, the source file)."""

    id: str
    raw: Any
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    explanation: Any = None  # e.g. top contributing features, or the name of a Grad-CAM picture
    #: Optional picture of where the unit came from, for explanation overlays: a 2D image and the
    #: (row, col) where the model input's top-left corner sits on it (e.g. a CT slice). Not in JSON.
    context: tuple[Any, int, int] | None = None


@dataclass
class PredictInputs:
    units: list[PredictUnit]
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"input", "unit", "reason"}


class Task(ABC):
    """Base class of every task. Subclasses set the class attributes and implement ``load``.

    Example (a complete task, runnable: ``docs/examples/lab_task.py``)::

        class HighPotassium(Task):
            name = "high_potassium"
            unit = "sample"
            target = Target("binary", ("normal", "high"), monitor="auroc")
            default_model = "linear_baseline"
            ...
    """

    name: ClassVar[str]
    #: what the task predicts: kind, class names, the metric to monitor, ordinal classes, F1 groups,
    #: value range — one value that metrics, trainer and bundle take whole
    target: ClassVar[Target]
    unit: ClassVar[str]
    default_model: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: The options ``medlearn predict`` (and ``Bundle.predict``) take for this task, by their CLI flag
    #: names (a field's alias when it differs from the field, e.g. ``fs`` for ``fs_hz``); a pydantic model
    #: with ``extra="forbid"``, so an option the task does not take is an error. None: no predict.
    PredictOptions: ClassVar[type[BaseModel] | None] = None
    #: The datasets to credit (licence, citation) in reports, model cards and bundles. A run on other
    #: data names its own in ``data.options.credits`` (e.g. ``medlearn demo``'s synthetic data), which
    #: replaces these for that task instance and is stored with its options in the bundle.
    credits: ClassVar[list[str]] = []
    intended_use: ClassVar[str] = INTENDED_USE

    def __init__(self, options: dict[str, Any] | None = None):
        if not isinstance(getattr(type(self), "target", None), Target):
            raise TypeError(
                f"{type(self).__name__}: a task declares its target, e.g. "
                "target = Target('binary', ('negative', 'positive'), monitor='auroc')"
            )
        options = dict(options or {})
        credits = options.pop("credits", None)
        if credits is not None:
            if (
                not isinstance(credits, list)
                or not credits
                or not all(isinstance(c, str) and c.strip() for c in credits)
            ):
                raise ConfigError(
                    "data.options.credits: give a non-empty list of strings naming the data "
                    f"and its licence, got {credits!r}"
                )
            vars(self)["credits"] = list(credits)  # this instance's data, in place of the class's
        try:
            self.options = self.Options.model_validate(options)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "config", prefix="data.options")) from None

    @abstractmethod
    def load(self, root: Path) -> UnitTable:
        """Read the dataset at ``root`` into a unit table (raising InputError naming bad files)."""

    @abstractmethod
    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        """The deterministic transform chain (registered names + params) for this model's input."""

    def fit_preprocessing(self, model_name: str, train: UnitTable) -> list[dict[str, Any]]:
        """The preprocessing spec, fitted on the training split only (vocabularies, normalisation
        statistics); stateless tasks return :meth:`preprocessing_spec` unchanged."""
        return self.preprocessing_spec(model_name)

    def augmentation(self, model_name: str, seed: int) -> Callable[[np.ndarray], np.ndarray] | None:
        """Random training-time augmentation applied after the cached preprocessing (default none)."""
        return None

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        """Arguments the data dictates for the model (input channels, number of outputs)."""
        return {"out_channels": self.target.n_outputs}

    def predict_options(self, **given: Any) -> BaseModel:
        """The validated :attr:`PredictOptions` from keyword arguments named like the CLI flags
        (``nodule="55.5,85.6,-116"``, ``fs=200``); None means not given. Raises InputError naming the option
        (``--nodule: …``), or listing what the task takes when it does not take one (``--fs does not apply
        to task lung_nodule_malignancy (it takes: annotations, reader, …)``)."""
        if self.PredictOptions is None:
            raise ConfigError(f"task {self.name} does not support predicting from files")
        given = {key: value for key, value in given.items() if value is not None}
        try:
            return self.PredictOptions.model_validate(given)
        except ValidationError as exc:
            raise InputError(predict_option_error(exc, self.name, self.PredictOptions)) from None

    def load_inputs(self, paths: Sequence[Path], options: BaseModel) -> PredictInputs:
        """Turn files given to ``medlearn predict`` into units, with the options :meth:`predict_options`
        validated; tasks that support predict declare :attr:`PredictOptions` and override this."""
        raise ConfigError(f"task {self.name} does not support predicting from files")

    def load_samples(self, samples: np.ndarray, options: BaseModel) -> PredictInputs:
        """Units from samples already in memory, ``(n_samples, n_channels)`` (a signal posted to the
        service as JSON): the same units :meth:`load_inputs` makes from a file of those samples, without
        writing one. Signal tasks implement it; the default says the task takes files only."""
        raise ConfigError(f"task {self.name} predicts from files, not from a list of samples")

    def generate(
        self, model: Any, pre: Any, n: int, seed: int = 0, temperature: float | None = None, **options: Any
    ) -> list[Any]:
        """``n`` samples from a generative model, decoded with the bundle's preprocessing ``pre``
        (e.g. SMILES through the stored vocabulary); :class:`GenerativeTask` implements it."""
        raise ConfigError(f"task {self.name} does not generate")

    def data_sections(self) -> list[Any]:
        """Report sections about the data the last :meth:`load` read (e.g. a data-quality table);
        :class:`medlearn.engine.report.ReportSection` objects. Default: none."""
        return []

    def annotate(self, unit: PredictUnit, array: np.ndarray, bundle: Any) -> None:
        """Add warnings (e.g. codes the model does not know) or an explanation to a unit being
        predicted with ``bundle``; ``array`` is its preprocessed input. Default: nothing."""
        return None

    def fhir_resources(self, records: list[dict[str, Any]], model_version: str) -> dict[str, Any] | None:
        """The prediction records as FHIR R4 resources for a hospital information system (a FHIR Bundle),
        or None when the task has no FHIR form. EHR tasks answer with RiskAssessments
        (``medlearn predict --fhir``, ``Accept: application/fhir+json`` on the service). Default: None."""
        return None

    def input_profile(self, table: UnitTable) -> dict[str, Any]:
        """What the training units look like, stored in the bundle (``input_profile``) at training time so
        that :meth:`check_input` can tell an input the model was not built for: e.g. modality and body
        part, HU and spacing ranges, sampling rates and durations, value ranges. JSON-able. Default:
        nothing recorded (nothing is checked)."""
        return {}

    def check_input(self, unit: PredictUnit, array: np.ndarray, profile: dict[str, Any]) -> list[str]:
        """Why ``unit`` (preprocessed to ``array``) is outside what the bundle was trained on, judged
        against the bundle's ``profile`` (:meth:`input_profile` of its training units; ``{}`` for bundles
        that recorded none): one sentence per reason, ``[]`` when it is in scope. ``predict`` flags these
        in the record, and ``--strict`` refuses the unit. Default: no checks."""
        return []

    def metric_subsets(self, table: UnitTable) -> dict[str, np.ndarray]:
        """Named boolean masks over ``table``'s units scored again on their own (e.g. sleep staging on the
        sleep period only, as the literature reports); they appear under ``subsets`` in metrics.json."""
        return {}

    def report_examples(self, bundle: Any, table: UnitTable, pred: np.ndarray) -> list[Any] | None:
        """Report sections showing example units (e.g. ECG strips with their beats), or None to let the
        engine show :meth:`display_image` pictures with Grad-CAM. ``pred`` is per unit (probabilities)."""
        return None

    def display_image(self, x: np.ndarray) -> np.ndarray | None:
        """A 2D picture of one preprocessed input (C, *spatial) for reports, or None for non-images.

        Also applied to Grad-CAM maps given as (1, *spatial), so it must pick the same view of both.
        """
        return None

    def explanation_layout(self, preprocessing: Any) -> Any:
        """How the model's preprocessed input is laid out for ``medlearn explain``: a
        :class:`medlearn.explain.layout.InputLayout` (image, signal or sequence; the sampling rate,
        channel or feature names and units, the value a removed input takes, the default methods), given
        the bundle's fitted ``preprocessing``. Default None: explain infers the layout from the input's
        shape (a CNN's 3D/4D input is an image, a 2D input a sequence of unnamed features)."""
        return None

    @property
    def kind(self) -> Kind:
        """``target.kind``: the engine branches on it everywhere, so it stays one attribute away."""
        return self.target.kind

    @property
    def class_names(self) -> list[str]:
        """``target.class_names`` as a list (reports, predictions.csv and bundles index it)."""
        return list(self.target.class_names)

    def options_dict(self) -> dict[str, Any]:
        """The validated options, and the ``credits`` override if one was given (so a bundle keeps it)."""
        options = self.options.model_dump(mode="json")
        if "credits" in vars(self):
            options["credits"] = list(self.credits)
        return options


class GenerativeTask(Task):
    """A task whose model learns a distribution (e.g. molecules) and is judged by a *set* of samples.

    The engine's generative run (:mod:`medlearn.engine.generative`) trains the model on the task's own
    train/val split, then asks the task to sample, to score the samples against its reference and to
    describe them in the report; the model carries its own objective (``training_loss``).
    """

    target: ClassVar[Target] = Target("generative", monitor="loss")

    @abstractmethod
    def generate(
        self, model: Any, pre: Any, n: int, seed: int = 0, temperature: float | None = None, **options: Any
    ) -> list[Any]:
        """``n`` decoded samples (invalid ones included: they count against validity)."""

    @abstractmethod
    def sample_scores(self, model: Any, pre: Any) -> dict[str, float]:
        """Quick validation metrics of a few fresh samples, after each epoch (e.g. validity)."""

    @abstractmethod
    def sample_columns(self, samples: Sequence[Any]) -> dict[str, list[Any]]:
        """predictions.csv columns beside each sample (e.g. id, validity, canonical form)."""

    @abstractmethod
    def reference(self, root: Path, tables: dict[str, UnitTable]) -> Any:
        """What samples are scored against (e.g. the MOSES Test/TestSF statistics)."""

    @abstractmethod
    def score_generated(self, samples: Sequence[Any], reference: Any, split: str) -> dict[str, Any]:
        """metrics.json (CONVENTIONS names) of a set of samples."""

    @abstractmethod
    def report_sections(
        self, samples: Sequence[Any], metrics: dict[str, Any], train: Sequence[Any], model_name: str
    ) -> list[Any]:
        """Report sections showing the samples (tables, distributions, pictures)."""


def predict_option_error(exc: ValidationError, task: str, model: type[BaseModel]) -> str:
    """One line about predict options, named as the user typed them (``--nodule: …``): options the task
    does not take are listed together with those it does; otherwise the first bad value."""
    takes = [field.alias or name for name, field in model.model_fields.items()]
    unknown = [f"--{err['loc'][0]}" for err in exc.errors() if err["type"] == "extra_forbidden"]
    if unknown:
        verb = "does not apply" if len(unknown) == 1 else "do not apply"
        return f"{', '.join(unknown)} {verb} to task {task} " + (
            f"(it takes: {', '.join(takes)})" if takes else "(it takes no options)"
        )
    err = exc.errors()[0]
    if not err["loc"]:  # a rule across options (e.g. --nodule needs --diameter)
        return err["msg"].removeprefix("Value error, ")
    flag = err["loc"][0]
    if err["type"] == "missing":
        field = next(f for name, f in model.model_fields.items() if (f.alias or name) == flag)
        return f"--{flag} is required for task {task}" + (
            f" ({field.description})" if field.description else ""
        )
    if err["type"] == "value_error":  # our own validators' messages name the value themselves
        return f"--{flag}: {err['msg'].removeprefix('Value error, ')}"
    return f"--{flag} {err['input']}: {err['msg']}"
