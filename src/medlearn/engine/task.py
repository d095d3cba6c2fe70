"""The Task: the contract between a dataset and the engine.

A task names its inputs (how to load units and preprocess them), its target (kind, class names, unit),
its metric to monitor, and its default model. The engine talks only to this interface, so adding a
clinical task is one file plus one registry line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from medlearn.config import format_validation_error
from medlearn.engine.data import UnitTable
from medlearn.engine.target import Target
from medlearn.errors import ConfigError

Kind = Literal["binary", "multiclass", "regression", "generative"]

INTENDED_USE = (
    "Research use only, not a medical device. Outputs have not been clinically validated and must not "
    "be used for diagnosis or treatment decisions."
)


def step(name: str, **params: Any) -> dict[str, Any]:
    """One entry of a preprocessing spec: a registered transform name and its parameters."""
    return {"name": name, "params": params}


class NoOptions(BaseModel):
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
    """Base class of every task. Subclasses set the class attributes and implement ``load``."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    unit: ClassVar[str]
    class_names: ClassVar[list[str]]
    default_model: ClassVar[str]
    monitor: ClassVar[str] = "auroc"
    ordinal: ClassVar[bool] = False  # multiclass with ordered classes (e.g. length-of-stay bins)
    #: multiclass: named means of per-class F1 reported (and monitorable) beside the standard metrics,
    #: e.g. ``{"challenge_f1": ["Normal", "AF", "Other"]}`` for PhysioNet/CinC 2017
    f1_groups: ClassVar[dict[str, list[str]]] = {}
    value_range: ClassVar[tuple[float | None, float | None]] = (None, None)  # regression: physical bounds
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: The datasets to credit (licence, citation) in reports, model cards and bundles. A run on other
    #: data names its own in ``data.options.credits`` (e.g. ``medlearn demo``'s synthetic data), which
    #: replaces these for that task instance and is stored with its options in the bundle.
    credits: ClassVar[list[str]] = []
    intended_use: ClassVar[str] = INTENDED_USE

    def __init__(self, options: dict[str, Any] | None = None):
        options = dict(options or {})
        credits = options.pop("credits", None)
        if credits is not None:
            if not isinstance(credits, list) or not credits or not all(isinstance(c, str) and c.strip()
                                                                      for c in credits):
                raise ConfigError("data.options.credits: give a non-empty list of strings naming the data "
                                  f"and its licence, got {credits!r}")
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
        return {"out_channels": 1 if self.kind in ("binary", "regression") else len(self.class_names)}

    def load_inputs(self, paths: Sequence[Path], **options: Any) -> PredictInputs:
        """Turn files given to ``medlearn predict`` into units; tasks that support predict override."""
        raise ConfigError(f"task {self.name} does not support predicting from files")

    def generate(self, model: Any, pre: Any, n: int, seed: int = 0, temperature: float | None = None,
                 **options: Any) -> list[Any]:
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

    @property
    def target(self) -> Target:
        """What this task predicts, as one value (metrics, trainer and bundles take it whole)."""
        return Target(self.kind, tuple(self.class_names), self.monitor, self.ordinal, dict(self.f1_groups),
                      self.value_range)

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

    kind: ClassVar[Kind] = "generative"
    class_names: ClassVar[list[str]] = []
    monitor: ClassVar[str] = "loss"

    @abstractmethod
    def generate(self, model: Any, pre: Any, n: int, seed: int = 0, temperature: float | None = None,
                 **options: Any) -> list[Any]:
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
    def report_sections(self, samples: Sequence[Any], metrics: dict[str, Any], train: Sequence[Any],
                        model_name: str) -> list[Any]:
        """Report sections showing the samples (tables, distributions, pictures)."""
