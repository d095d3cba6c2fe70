"""Shared pieces of the hardening suite (issue 14): a tiny synthetic EHR run to resume, interrupt and
force, the in-process command line (typer's CliRunner: no torch import per case) and the one-line-error
assertion every hostile case ends with."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from medlearn.engine.callbacks import Callback
from tests.conftest import require_module

#: The tiny run of these tests: the shipped linear LOS baseline, 2 epochs, one thread.
CONFIG = "ehr_los_mimic4_linear"
QUICK = ["--set", "train.epochs=2", "--set", "eval.n_bootstrap=20", "--threads", "1", "--quiet"]

runner = CliRunner()


def invoke(*args: object) -> Result:
    """``medlearn ARGS`` in-process (``--quiet`` is process-wide: the autouse fixture of tests/conftest.py
    resets it)."""
    from medlearn.cli import app

    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result: Result, *needles: str, code: int = 2) -> str:
    """Exit ``code``, no traceback, and the last stderr line is the only ``error:`` line (status lines may
    precede it); it holds every needle. Returns that line."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("error:", "interrupted:"))]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


class InterruptAt(Callback):
    """Ctrl-C at the end of epoch ``epoch`` (after its checkpoint was written), or at the start of the
    fit (``epoch=0``, before any checkpoint)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_fit_start(self, state: Any) -> None:
        if self.epoch == 0:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture
def interrupt_training(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``interrupt_training(1)``: the next ``train`` (command or API) is interrupted after epoch 1."""
    import medlearn.engine.run as run

    def arm(epoch: int) -> None:
        original = run.train_experiment

        def interrupted(*args: Any, callbacks: Any = (), **kwargs: Any) -> Any:
            monkeypatch.setattr(run, "train_experiment", original)  # once
            return original(*args, callbacks=[*callbacks, InterruptAt(epoch)], **kwargs)

        monkeypatch.setattr(run, "train_experiment", interrupted)

    return arm


@pytest.fixture(scope="session")
def mimic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic MIMIC-IV-format tables (40 patients), the EHR demo's generator."""
    require_module("polars")
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    return write_synthetic_mimic4(tmp_path_factory.mktemp("fuzz") / "mimic4", n_patients=40, seed=0)


@pytest.fixture(scope="session")
def finished_run(mimic: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished 2-epoch run (copy it before changing it: :func:`copy_run`)."""
    import torch

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("fuzz") / "finished"
    result = invoke("train", CONFIG, "--data", mimic, "--out", out, *QUICK)
    assert result.exit_code == 0, result.output
    yield out
    torch.set_num_threads(threads)


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path → bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def generator_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny CharRNN (32 hidden units, one epoch on 200 molecules of RDKit's NCI sample; ~5 s)."""
    require_module("rdkit")
    import torch
    from rdkit import RDConfig

    import medlearn.molecules.metrics.moses as moses
    import medlearn.molecules.metrics.parallel as parallel
    from medlearn.config import validate
    from medlearn.engine.progress import set_quiet
    from medlearn.engine.run import train_experiment

    raw = {
        "name": "tiny_prior",
        "task": "molecule_generation",
        "data": {
            "root": str(Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"),
            "cache": False,
            "options": {
                "n_train": 200,
                "n_val": 50,
                "test_file": None,
                "n_test": 20,
                "n_samples": 20,
                "n_val_samples": 20,
            },
        },
        "model": {"name": "char_rnn", "params": {"hidden_size": 32, "num_layers": 1, "embedding_dim": 8}},
        "train": {"epochs": 1, "optimizer": "adam", "lr": 0.005, "scheduler": "none", "augment": False},
    }
    out = tmp_path_factory.mktemp("fuzz") / "generator"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    set_quiet(True)
    try:
        with pytest.MonkeyPatch.context() as mp:  # score its samples in-process (no worker pool)
            mp.setattr(parallel, "default_jobs", lambda: 1)
            mp.setattr(moses, "default_jobs", lambda: 1)
            train_experiment(validate(raw, "tiny_prior"), out, device="cpu")
    finally:
        set_quiet(False)
        torch.set_num_threads(threads)
    yield out / "bundle"


@pytest.fixture(scope="session")
def signals_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny AF classifier (the signals demo's recipe, one epoch of two batches on 40 synthetic CinC-layout
    records; ~7 s) in ``<run>/bundle``, its records in ``<run>/data`` and a monitor stream
    ``<run>/data/stream`` (30 s normal, 40 s AF, 12 s flat)."""
    require_module("wfdb")
    require_module("neurokit2")
    import torch

    from medlearn.engine.progress import set_quiet
    from medlearn.engine.run import train_experiment
    from medlearn.signals.demo import demo_config, write_stream
    from medlearn.signals.synthetic import write_synthetic_cinc

    run = tmp_path_factory.mktemp("fuzz") / "signals"
    data = write_synthetic_cinc(run / "data", n_records=40)
    cfg = demo_config(data, 1)
    cfg.train.max_train_batches = 2
    cfg.eval.n_bootstrap = 10
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    set_quiet(True)
    try:
        train_experiment(cfg, run, device="cpu")
    finally:
        set_quiet(False)
        torch.set_num_threads(threads)
    write_stream(data)
    return run
