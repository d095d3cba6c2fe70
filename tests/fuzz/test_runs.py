"""No damaged run (issue 14): a failed ``--resume`` leaves the run resumable as it was; ``--resume`` with
another CONFIG or other data is refused; a finished run is not rewritten without ``--force``; ``--force``
never leaves old outputs beside new ones (and never deletes a file medlearn did not write); two units with
the same id get distinct pictures; Ctrl-C says how to resume and exits 130.

All on a tiny synthetic EHR run (``ehr_los_mimic4_linear``, 2 epochs, one thread): a few seconds each.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

import medlearn
from medlearn.errors import ConfigError, OutputExistsError, RunInterrupted
from tests.fuzz.conftest import CONFIG, QUICK, assert_one_line_error, copy_run, invoke, snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def epochs_in_history(run: Path) -> list[int]:
    with (run / "history.csv").open(newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture
def interrupted_run(mimic, tmp_path, interrupt_training) -> Path:
    """A run interrupted by Ctrl-C after epoch 1 of 2: its checkpoint and run_config.yaml, no results."""
    out = tmp_path / "run"
    interrupt_training(1)
    result = invoke("train", CONFIG, "--data", mimic, "--out", out, *QUICK)
    line = assert_one_line_error(result, f"medlearn train --resume {out}", code=130)
    assert line.startswith("interrupted:")
    assert (out / "checkpoints" / "last.pt").is_file() and (out / "run_config.yaml").is_file()
    assert not (out / "metrics.json").exists() and not (out / "bundle").exists()
    return out


def test_ctrl_c_says_how_to_resume_and_the_resumed_run_finishes(interrupted_run):
    assert epochs_in_history(interrupted_run) == [1]
    resumed = invoke(
        "train", "--resume", interrupted_run, "--threads", "1", "--quiet"
    )  # CONFIG may be left out
    assert resumed.exit_code == 0, resumed.output
    assert epochs_in_history(interrupted_run) == [1, 2]
    history = json.loads((interrupted_run / "bundle" / "bundle.json").read_text())["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_ctrl_c_before_the_first_checkpoint_says_to_start_again(mimic, tmp_path, interrupt_training):
    out = tmp_path / "run"
    interrupt_training(0)
    result = invoke("train", CONFIG, "--data", mimic, "--out", out, *QUICK)
    assert_one_line_error(result, "nothing to resume", "--force", code=130)


def test_ctrl_c_through_the_api_is_a_keyboard_interrupt_naming_the_run(mimic, tmp_path, interrupt_training):
    interrupt_training(1)
    with pytest.raises(KeyboardInterrupt) as caught:
        medlearn.train(CONFIG, out=tmp_path / "run", data=mimic, overrides={"train.epochs": 2}, device="cpu")
    assert isinstance(caught.value, RunInterrupted) and caught.value.resumable
    assert caught.value.out == tmp_path / "run"


def test_failed_resumes_leave_the_run_resumable_as_it_was(interrupted_run, mimic, tmp_path):
    before = snapshot(interrupted_run)
    failures = [
        (("--set", "train.epochs=0"), ("train.epochs",)),  # invalid: refused before anything is written
        (
            ("--set", "train.lr=0.5"),
            ("train.lr", "a resumed run keeps its config"),
        ),  # would not fit the checkpoint
        (("--set", "model.params.bogus=1"), ("model.params.bogus",)),
        (("--data", tmp_path), ("a resumed run keeps its data",)),
        (("--out", tmp_path / "elsewhere"), ("its own directory",)),
    ]
    for args, needles in failures:
        result = invoke("train", "--resume", interrupted_run, *args, "--threads", "1", "--quiet")
        assert_one_line_error(result, *needles)
        assert snapshot(interrupted_run) == before, args
    # another CONFIG than the run's own is refused, naming the difference
    other = invoke("train", "ehr_los_mimic4", "--resume", interrupted_run, "--quiet")
    assert_one_line_error(other, "not the config of the run being resumed", "leave CONFIG out")
    with pytest.raises(ConfigError, match="not the config of the run being resumed"):
        medlearn.train("ehr_los_mimic4", resume=interrupted_run)
    # the same CONFIG (and the same overrides) is accepted: see the last step
    assert snapshot(interrupted_run) == before
    # a resume that fails after validation (the data went away) restores run_config.yaml
    moved = tmp_path / "moved"
    shutil.move(mimic, moved)
    try:
        gone = invoke(
            "train", "--resume", interrupted_run, "--set", "train.epochs=3", "--threads", "1", "--quiet"
        )
        assert_one_line_error(gone, str(mimic))
    finally:
        shutil.move(moved, mimic)
    assert snapshot(interrupted_run) == before
    # and the run still resumes
    resumed = invoke("train", CONFIG, "--resume", interrupted_run, *QUICK)
    assert resumed.exit_code == 0, resumed.output
    assert epochs_in_history(interrupted_run) == [1, 2]


def test_a_finished_run_is_not_rewritten_without_force(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    before = snapshot(run)
    again = invoke("train", "--resume", run, "--set", "train.epochs=3", "--threads", "1", "--quiet")
    assert_one_line_error(again, "this run finished", "--force")
    overwrite = invoke("train", CONFIG, "--out", run, "--quiet")
    assert_one_line_error(overwrite, "--force")
    with pytest.raises(OutputExistsError, match="this run finished"):
        medlearn.train(None, resume=run)
    assert snapshot(run) == before
    # with --force, --resume continues the finished run (one more epoch from its checkpoint)
    extended = invoke(
        "train", "--resume", run, "--force", "--set", "train.epochs=3", "--threads", "1", "--quiet"
    )
    assert extended.exit_code == 0, extended.output
    assert epochs_in_history(run) == [1, 2, 3]
    assert json.loads((run / "bundle" / "bundle.json").read_text())["training"]["epochs_run"] == 3


def test_force_on_a_run_never_leaves_old_outputs_beside_new_ones(
    finished_run, mimic, tmp_path, interrupt_training
):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "notes.txt").write_text("the user's own notes")
    (run / "bundle" / "README.txt").write_text("not medlearn's")
    interrupt_training(1)  # the forced re-training is interrupted after its first epoch
    result = invoke("train", CONFIG, "--data", mimic, "--out", run, "--force", *QUICK)
    assert_one_line_error(result, "--resume", code=130)
    for old in ("metrics.json", "metrics_val.json", "predictions.csv", "report.html", "config.yaml"):
        assert not (run / old).exists(), old  # nothing of the finished run survives beside the new epoch
    assert sorted(p.name for p in (run / "bundle").iterdir()) == [
        "README.txt"
    ]  # only what medlearn did not write
    assert (run / "notes.txt").read_text() == "the user's own notes"
    assert epochs_in_history(run) == [1]  # the new run's history, not the old one's
    resumed = invoke(
        "train", "--resume", run, "--threads", "1", "--quiet"
    )  # it resumes like any interrupted run
    assert resumed.exit_code == 0, resumed.output
    assert (run / "metrics.json").is_file() and epochs_in_history(run) == [1, 2]


def test_force_clears_the_checkpoints_of_an_interrupted_run(interrupted_run, mimic):
    """A fresh ``--force`` training does not continue an earlier checkpoint: it starts from epoch 1."""
    stale = interrupted_run / "checkpoints" / "fold1" / "last.pt"
    stale.parent.mkdir()
    stale.write_bytes(b"an older cross-validated run")
    result = invoke("train", CONFIG, "--data", mimic, "--out", interrupted_run, "--force", *QUICK)
    assert result.exit_code == 0, result.output
    assert not stale.exists() and epochs_in_history(interrupted_run) == [1, 2]


def test_units_with_the_same_id_get_distinct_picture_names():
    from medlearn.engine.predict import _picture_name

    used: set[str] = set()
    names = [
        _picture_name(uid, used) for uid in ["LIDC-0001", "LIDC-0001", "LIDC/0001", "lidc-0001", "", "?"]
    ]
    assert names[:4] == [
        "LIDC-0001_gradcam.png",
        "LIDC-0001-2_gradcam.png",
        "LIDC_0001_gradcam.png",
        "lidc-0001-3_gradcam.png",  # a case-insensitive file system would merge it with the first
    ]
    assert names[4:] == ["unit_gradcam.png", "unit-2_gradcam.png"]
    assert len({n.lower() for n in names}) == len(names)
