"""Trainer callbacks: hooks in order, an extra loss term (FedProx), stopping, history.csv, progress lines."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from medlearn.engine.callbacks import Callback, FitState, HistoryCSV, ProgressLines
from medlearn.engine.dummy import PrevalenceModel
from medlearn.engine.progress import set_quiet
from medlearn.engine.tracking import run_callbacks
from medlearn.errors import ConfigError
from tests.engine.test_trainer import tiny_datasets, tiny_model, tiny_trainer

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^epoch (\d+)/(\d+)  loss \d+\.\d{3}  val_auroc \d\.\d{3}  best \d\.\d{3} \(epoch \d+\)  \d+\.\d s$"
)


class Recorder(Callback):
    """Writes down every hook call, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def on_fit_start(self, state: FitState) -> None:
        self.events.append("fit_start")

    def on_epoch_start(self, epoch: int) -> None:
        self.events.append(f"epoch_start {epoch}")

    def on_checkpoint(self, path: Path, epoch: int) -> None:
        assert path.is_file()
        self.events.append(f"checkpoint {epoch}")

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        self.events.append(f"epoch_end {epoch} {sorted(k for k in row if k.startswith('val_'))[:1]}")

    def on_fit_end(self, result) -> None:
        self.events.append(f"fit_end {len(result.history)}")


class StopAfter(Callback):
    def __init__(self, n: int):
        self.n = n

    def on_fit_start(self, state: FitState) -> None:
        self.state = state

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        self.state.should_stop = epoch >= self.n


class Proximal(Callback):
    """FedProx's proximal term ``mu/2 · ||w − w_start||²``, as a federated client would add it."""

    def __init__(self, mu: float):
        self.mu = mu

    def on_fit_start(self, state: FitState) -> None:
        self.anchor = [p.detach().clone() for p in state.model.parameters()]

    def extra_loss(self, model: nn.Module, batch_x: torch.Tensor, batch_y: torch.Tensor) -> torch.Tensor:
        return self.mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), self.anchor))


class CrashAt(Callback):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _drift(model: nn.Module, start: list[torch.Tensor]) -> float:
    return float(sum(((p.detach() - s) ** 2).sum() for p, s in zip(model.parameters(), start)) ** 0.5)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_hooks_are_called_in_order_around_each_epoch_and_checkpoint(tmp_path):
    train, val = tiny_datasets()
    recorder = Recorder()
    tiny_trainer(tmp_path, callbacks=[recorder], epochs=2).fit(tiny_model(), train, val)
    assert recorder.events == [
        "fit_start",
        "epoch_start 1",
        "checkpoint 1",
        "epoch_end 1 ['val_accuracy']",
        "epoch_start 2",
        "checkpoint 2",
        "epoch_end 2 ['val_accuracy']",
        "fit_end 2",
    ]


def test_a_one_pass_model_is_reported_as_one_epoch(tmp_path):
    train, val = tiny_datasets()
    recorder, history = Recorder(), HistoryCSV(tmp_path / "history.csv")
    tiny_trainer(callbacks=[recorder, history]).fit(PrevalenceModel(1), train, val)
    assert recorder.events == ["fit_start", "epoch_start 1", "epoch_end 1 ['val_accuracy']", "fit_end 1"]
    rows = _read(tmp_path / "history.csv")
    assert len(rows) == 1 and float(rows[0]["val_auroc"]) == pytest.approx(0.5)


def test_a_callback_stops_training_after_n_epochs():
    train, val = tiny_datasets()
    result = tiny_trainer(callbacks=[StopAfter(2)], epochs=6).fit(tiny_model(), train, val)
    assert [row["epoch"] for row in result.history] == [1, 2]


def test_an_extra_loss_term_keeps_weights_near_their_start():
    train, _ = tiny_datasets()
    start = [p.detach().clone() for p in tiny_model().parameters()]
    free, anchored = tiny_model(), tiny_model()
    tiny_trainer(callbacks=[Proximal(0.0)]).fit(free, train, None)
    result = tiny_trainer(callbacks=[Proximal(5.0)]).fit(anchored, train, None)
    assert _drift(anchored, start) < 0.5 * _drift(free, start)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]  # still learns


def test_no_extra_loss_keeps_training_bit_identical():
    train, val = tiny_datasets()
    plain = tiny_trainer().fit(tiny_model(), train, val)
    hooked = tiny_trainer(callbacks=[Recorder(), Proximal(0.0)]).fit(tiny_model(), train, val)
    assert [r["train_loss"] for r in plain.history] == [r["train_loss"] for r in hooked.history]


def test_history_csv_has_one_row_per_epoch_with_every_validation_metric(tmp_path):
    train, val = tiny_datasets()
    result = tiny_trainer(callbacks=[HistoryCSV(tmp_path / "history.csv")], epochs=3).fit(
        tiny_model(), train, val
    )
    rows = _read(tmp_path / "history.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"fit", "train_loss", "val_loss", "val_auroc", "val_ece", "lr", "epoch_seconds"} <= set(rows[0])
    assert [float(r["val_auroc"]) for r in rows] == [h["val_auroc"] for h in result.history]


def test_history_csv_keeps_a_crashed_runs_epochs_and_resume_continues_it(tmp_path):
    train, val = tiny_datasets()
    path = tmp_path / "history.csv"
    with pytest.raises(KeyboardInterrupt):  # killed after epoch 3's checkpoint, before its row was written
        tiny_trainer(tmp_path / "ckpt", callbacks=[CrashAt(3), HistoryCSV(path)]).fit(
            tiny_model(), train, val
        )
    assert [int(r["epoch"]) for r in _read(path)] == [1, 2]
    resumed = tiny_trainer(tmp_path / "ckpt", callbacks=[HistoryCSV(path)]).fit(
        tiny_model(), train, val, resume=True
    )
    rows = _read(path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [float(r["train_loss"]) for r in rows] == [h["train_loss"] for h in resumed.history]


def test_history_csv_numbers_the_fits_of_a_cross_validation(tmp_path):
    train, val = tiny_datasets()
    history = HistoryCSV(tmp_path / "history.csv")
    tiny_trainer(callbacks=[history], epochs=2).fit(tiny_model(), train, val)  # a fold
    tiny_trainer(callbacks=[history], epochs=2).fit(tiny_model(), train, None)  # the refit, no validation
    rows = _read(tmp_path / "history.csv")
    assert [(r["fit"], r["epoch"]) for r in rows] == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]
    assert rows[0]["val_auroc"] != "" and rows[2]["val_auroc"] == ""


def test_progress_lines_print_one_line_per_epoch_when_stderr_is_not_a_terminal(capsys):
    train, val = tiny_datasets()
    tiny_trainer(callbacks=[ProgressLines()], epochs=3).fit(tiny_model(), train, val)
    lines = capsys.readouterr().err.splitlines()
    assert [LINE.match(line).groups() for line in lines] == [("1", "3"), ("2", "3"), ("3", "3")]


def test_progress_lines_are_silent_on_a_terminal_and_when_quiet(capsys, monkeypatch):
    train, val = tiny_datasets()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    tiny_trainer(callbacks=[ProgressLines()], epochs=2).fit(tiny_model(), train, val)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    set_quiet(True)
    try:
        tiny_trainer(callbacks=[ProgressLines()], epochs=2).fit(tiny_model(), train, val)
    finally:
        set_quiet(False)
    err = capsys.readouterr().err
    assert "train" in err  # the bar was drawn while stderr was a terminal
    assert "epoch 1/2" not in err and "epoch 2/2" not in err


def test_run_callbacks_write_history_and_print_lines_and_reject_an_unknown_tracker(tmp_path):
    callbacks = run_callbacks(tmp_path, None)
    assert [type(cb) for cb in callbacks] == [HistoryCSV, ProgressLines]
    assert callbacks[0].path == tmp_path / "history.csv"
    with pytest.raises(ConfigError, match="--track wandb"):
        run_callbacks(tmp_path, "wandb")


NOHUP_SCRIPT = """
import sys
from pathlib import Path
from medlearn.engine.tracking import run_callbacks
from medlearn.engine.progress import set_quiet
from tests.engine.test_trainer import tiny_datasets, tiny_model, tiny_trainer
set_quiet(sys.argv[2] == "quiet")
train, val = tiny_datasets()
tiny_trainer(epochs=4, callbacks=run_callbacks(Path(sys.argv[1]))).fit(tiny_model(), train, val)
"""


@pytest.mark.parametrize("quiet", [False, True], ids=["nohup", "nohup-quiet"])
def test_a_training_under_nohup_logs_one_line_per_epoch_unless_quiet(tmp_path, quiet):
    """stderr redirected to a file, as ``nohup medlearn train … 2> log`` or a scheduler does."""
    log_path = tmp_path / "train.log"
    with log_path.open("w") as log_file:
        subprocess.run(
            [sys.executable, "-c", NOHUP_SCRIPT, str(tmp_path / "out"), "quiet" if quiet else "loud"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            check=True,
            timeout=120,
        )
    epoch_lines = [line for line in log_path.read_text().splitlines() if line.startswith("epoch ")]
    if quiet:
        assert epoch_lines == []
    else:
        assert [LINE.match(line).groups() for line in epoch_lines] == [(str(e), "4") for e in range(1, 5)]
    assert len(_read(tmp_path / "out" / "history.csv")) == 4  # quiet or not, the history is written
