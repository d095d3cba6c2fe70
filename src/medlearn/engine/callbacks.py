"""Trainer callbacks: how code outside the one training loop takes part in it without forking it.

A :class:`Callback` is told when a fit starts and ends, when each epoch starts and ends, and when a
checkpoint is written; it may add a term to every training batch's loss (FedProx's proximal term) and
may stop training (``state.should_stop = True``). What every run gets is built on them here: a
per-epoch ``history.csv`` (:class:`HistoryCSV`) and one plain progress line per epoch when stderr is not
a terminal (:class:`ProgressLines`); experiment trackers live in :mod:`medlearn.engine.tracking`.

A run trains several models when it cross-validates (one per fold, then the refit) and hands the same
callbacks to each Trainer, so a callback sees several fits, in the same order when the run is resumed;
callbacks that must tell them apart count their ``on_fit_start`` calls.
Two hooks belong to the run rather than to a fit: :meth:`Callback.on_run_start` (the resolved config)
and :meth:`Callback.on_run_end` (the output directory, once ``metrics.json`` and the bundle are written).
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from medlearn.engine.progress import lines_enabled

if TYPE_CHECKING:
    from medlearn.engine.trainer import Trainer


@dataclass
class FitResult:
    """What a fit returns (and callbacks hear at its end).

    Args:
        history: one row per epoch (see :meth:`Callback.on_epoch_end`).
        best_epoch: the epoch whose weights were kept (the last one without validation).
        best_score: its monitored validation metric (NaN without validation).
        best_state: the kept weights (also loaded into the model).
        seconds: wall time of the fit.
        samples_per_second: training throughput (validation excluded).
        extra: facts a bundle records, e.g. the thread count and determinism flag.
    """

    history: list[dict[str, float]]
    best_epoch: int
    best_score: float
    best_state: dict[str, torch.Tensor]
    seconds: float = 0.0
    samples_per_second: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitState:
    """One fit as callbacks see it; the Trainer keeps it current (best score and epoch after each epoch).

    Args:
        trainer: the Trainer running the fit (its ``cfg``, ``target``, ``monitor``, ``checkpoint_dir``).
        model: the model being trained.
        epochs: the last epoch the fit will run unless stopped early.
        start_epoch: 1, or the epoch after the checkpoint when resumed.
        history: the rows of the epochs already done (on resume: those restored from the checkpoint).
        best_score: the monitored validation metric of the best epoch so far (NaN without validation).
        best_epoch: the epoch the kept weights come from.
        should_stop: set to True by a callback to end training after the current epoch.
    """

    trainer: Trainer
    model: nn.Module
    epochs: int
    start_epoch: int = 1
    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float = float("nan")
    best_epoch: int = 0
    should_stop: bool = False


class Callback:
    """Base class of trainer callbacks: every hook is a no-op, a subclass overrides the ones it needs.

    Examples:
        >>> class StopAfter(Callback):
        ...     def __init__(self, n: int):
        ...         self.n = n
        ...     def on_fit_start(self, state: FitState) -> None:
        ...         self.state = state
        ...     def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        ...         self.state.should_stop = epoch >= self.n
    """

    def on_run_start(self, config: Mapping[str, Any]) -> None:
        """Called by the run once, before the first fit, with the resolved experiment config as a dict."""

    def on_fit_start(self, state: FitState) -> None:
        """A fit begins; keep ``state`` to read the trainer's progress or to set ``should_stop``."""

    def on_epoch_start(self, epoch: int) -> None:
        """An epoch (numbered from 1) is about to train."""

    def extra_loss(
        self, model: nn.Module, batch_x: torch.Tensor, batch_y: torch.Tensor
    ) -> torch.Tensor | None:
        """A scalar added to the loss of every training batch before the backward pass (e.g. FedProx's
        ``mu/2 · ||w - w_global||²``), or None. Not called for models fitted in one pass (trees)."""
        return None

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        """An epoch ended; ``row`` is its history row (``train_loss``, ``val_loss``, ``val_<metric>``,
        ``lr``, ``epoch_seconds``; a one-pass model's row has its fit facts instead of a train loss)."""

    def on_checkpoint(self, path: Path, epoch: int) -> None:
        """The checkpoint ``path`` (``last.pt``) now holds the state after ``epoch``."""

    def on_fit_end(self, result: FitResult) -> None:
        """The fit ended; ``result`` holds the history and the kept epoch."""

    def on_run_end(self, out: Path) -> None:
        """Called by the run once its outputs (``metrics.json``, ``report.html``, ``bundle/``) are in ``out``."""


class CallbackList(Callback):
    """Several callbacks as one: each hook is called on each in order; extra losses are summed.

    Args:
        callbacks: the callbacks, called in this order.
    """

    def __init__(self, callbacks: Sequence[Callback] = ()):
        self.callbacks = list(callbacks)

    def on_run_start(self, config: Mapping[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_run_start(config)

    def on_fit_start(self, state: FitState) -> None:
        for cb in self.callbacks:
            cb.on_fit_start(state)

    def on_epoch_start(self, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_start(epoch)

    def extra_loss(
        self, model: nn.Module, batch_x: torch.Tensor, batch_y: torch.Tensor
    ) -> torch.Tensor | None:
        terms = [t for cb in self.callbacks if (t := cb.extra_loss(model, batch_x, batch_y)) is not None]
        return sum(terms[1:], terms[0]) if terms else None

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, row)

    def on_checkpoint(self, path: Path, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_checkpoint(path, epoch)

    def on_fit_end(self, result: FitResult) -> None:
        for cb in self.callbacks:
            cb.on_fit_end(result)

    def on_run_end(self, out: Path) -> None:
        for cb in self.callbacks:
            cb.on_run_end(out)


class HistoryCSV(Callback):
    """One row per epoch in a CSV file, flushed as each epoch ends, so a crashed run keeps its epochs.

    Columns: ``fit`` (1 unless cross-validating: folds, then the refit), then the history row's keys
    (``epoch``, ``train_loss``, ``val_loss``, every ``val_<metric>``, ``lr``, ``epoch_seconds``); a
    fit without validation leaves the validation columns empty. When a fit starts, the rows of that fit
    and later ones are replaced by the history it starts from, so a ``--resume`` continues the file from
    its checkpoint (no duplicated or missing epochs) and a fresh run starts an empty file.

    Args:
        path: the CSV file (``<out>/history.csv``); its folder is created.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []
        self.fit = 0

    def on_fit_start(self, state: FitState) -> None:
        self.fit += 1
        if self.fit == 1 and self.path.is_file():  # a resumed run's rows
            with self.path.open(newline="") as f:
                self.rows = [dict(r) for r in csv.DictReader(f)]
        self.rows = [r for r in self.rows if int(r["fit"]) < self.fit]
        self.rows += [{"fit": self.fit, **r} for r in state.history]
        self.columns = []
        self._rewrite()

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        self.rows.append({"fit": self.fit, **row})
        if any(k not in self.columns for k in self.rows[-1]):
            self._rewrite()
            return
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns, restval="").writerow(self.rows[-1])

    def _rewrite(self) -> None:
        """Write every row under the union of their columns (first seen first)."""
        self.columns = list(dict.fromkeys(k for r in self.rows for k in r)) or ["fit"]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)


class ProgressLines(Callback):
    """One plain line per epoch on stderr when stderr is not a terminal (a job under ``nohup`` or a
    scheduler, whose log would otherwise show nothing until the end), e.g.
    ``epoch 3/20  loss 0.412  val_auroc 0.833  best 0.841 (epoch 2)  12.1 s``. On a terminal the rich
    progress bar shows the same and no lines are printed; ``--quiet`` silences both."""

    def __init__(self) -> None:
        self.state: FitState | None = None

    def on_fit_start(self, state: FitState) -> None:
        self.state = state

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        if self.state is None or not lines_enabled():
            return
        print(epoch_line(self.state, epoch, row), file=sys.stderr, flush=True)


def epoch_line(state: FitState, epoch: int, row: Mapping[str, float]) -> str:
    """The progress line of one epoch: loss, the monitored validation metric and the best so far."""
    parts = [f"epoch {epoch}/{state.epochs}"]
    if "train_loss" in row:
        parts.append(f"loss {row['train_loss']:.3f}")
    monitor = state.trainer.monitor
    key = f"val_{monitor}"
    if key in row:
        parts.append(f"{key} {row[key]:.3f}")
        if not math.isnan(state.best_score):
            parts.append(f"best {state.best_score:.3f} (epoch {state.best_epoch})")
    parts.append(f"{row.get('epoch_seconds', 0.0):.1f} s")
    return "  ".join(parts)
