"""What a task predicts: the one description of a target that metrics, the trainer and bundles share.

Before this existed, seven loose fields (kind, class names, ordinal, F1 groups, monitor, value range,
…) were threaded separately through metrics, trainer and run; a :class:`Target` travels as one value and
knows which validation metrics exist for it, so a config's ``early_stopping.monitor`` can be checked
before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["binary", "multiclass", "regression", "generative"]

#: Validation metric names per kind, as the trainer and ``metrics.json`` name them (see
#: :mod:`medlearn.engine.metrics`); ``loss`` is always available.
BINARY_METRICS = (
    "auroc",
    "auprc",
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "f1",
    "ece",
    "brier",
)
MULTICLASS_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "kappa", "ece")
ORDINAL_METRICS = ("kappa_linear", "mad")
REGRESSION_METRICS = ("mae", "rmse")


@dataclass(frozen=True)
class Target:
    """The prediction target of a task.

    Args:
        kind: ``binary`` (P(positive) against a threshold), ``multiclass`` (softmax over classes),
            ``regression`` (one value) or ``generative`` (a model judged by a set of samples).
        class_names: label names; binary: ``(negative, positive)``; empty for regression/generative.
        monitor: the default validation metric for early stopping (a config may choose another).
        ordinal: multiclass with ordered classes (adds ``kappa_linear`` and ``mad``).
        f1_groups: named means of per-class F1 reported (and monitorable) beside the standard metrics,
            e.g. ``{"challenge_f1": ("Normal", "AF", "Other")}`` for PhysioNet/CinC 2017.
        value_range: regression: physical bounds a prediction is clipped to (e.g. no negative stay).

    Examples:
        >>> Target("binary", ("benign", "malignant")).metric_names()[:2]
        ('loss', 'auroc')
    """

    kind: Kind
    class_names: tuple[str, ...] = ()
    monitor: str = "auroc"
    ordinal: bool = False
    f1_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    value_range: tuple[float | None, float | None] = (None, None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "f1_groups", {k: tuple(v) for k, v in self.f1_groups.items()})
        if self.kind == "binary" and len(self.class_names) != 2:
            raise ValueError(
                f"a binary target needs 2 class names (negative, positive), got {self.class_names}"
            )
        if self.kind == "multiclass" and len(self.class_names) < 2:
            raise ValueError(f"a multiclass target needs at least 2 class names, got {self.class_names}")
        for name, classes in self.f1_groups.items():
            unknown = [c for c in classes if c not in self.class_names]
            if unknown:
                raise ValueError(f"f1_groups.{name}: {unknown} are not among the classes {self.class_names}")
        if self.monitor not in self.metric_names(extra_generative=(self.monitor,)):
            raise ValueError(
                f"monitor {self.monitor!r} is not a {self.kind} metric "
                f"(choose from {', '.join(self.metric_names())})"
            )

    @property
    def n_outputs(self) -> int:
        """Model outputs: one logit for binary and regression, one per class for multiclass."""
        return len(self.class_names) if self.kind == "multiclass" else 1

    def metric_names(self, extra_generative: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Validation metrics the trainer can monitor for this target. A generative model's validation
        metrics come from its task's sample scorer (e.g. ``validity``), so they are whatever the task names
        (``extra_generative``) beside ``loss``."""
        if self.kind == "binary":
            return ("loss", *BINARY_METRICS)
        if self.kind == "multiclass":
            return ("loss", *MULTICLASS_METRICS, *(ORDINAL_METRICS if self.ordinal else ()), *self.f1_groups)
        if self.kind == "regression":
            return ("loss", *REGRESSION_METRICS)
        return ("loss", *extra_generative)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "class_names": list(self.class_names),
            "monitor": self.monitor,
            "ordinal": self.ordinal,
            "f1_groups": {k: list(v) for k, v in self.f1_groups.items()},
            "value_range": list(self.value_range),
        }
