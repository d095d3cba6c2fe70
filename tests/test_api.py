"""The Python API mirrors the command line (issue 13 item 7): ``medlearn.train`` / ``evaluate`` /
``load_bundle(...).predict`` write and return what ``medlearn train`` / ``evaluate`` / ``predict --json`` do,
with the same names and the same refusals; the command line calls these same functions.

One tiny real run: the shipped ``ehr_los_mimic4`` config (LSTM, length of stay) for 2 epochs on synthetic
MIMIC-IV-format tables (``medlearn.ehr.synthetic``, the EHR demo's data).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import medlearn
from medlearn.api import resolve_config
from medlearn.config import load_config
from medlearn.errors import ConfigError, InputError, OutputExistsError
from tests.conftest import require_module

require_module("polars")

QUICK = {"train.epochs": 2, "eval.n_bootstrap": 20}


@pytest.fixture(scope="module")
def mimic(tmp_path_factory) -> Path:
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    return write_synthetic_mimic4(tmp_path_factory.mktemp("api") / "mimic4", n_patients=40, seed=0)


@pytest.fixture(scope="module")
def new_patients(tmp_path_factory) -> Path:
    """Other synthetic patients to predict for (their admissions 24 h in are units; the rest skipped)."""
    from medlearn.ehr.synthetic import write_synthetic_mimic4

    return write_synthetic_mimic4(tmp_path_factory.mktemp("api") / "new", n_patients=3, seed=1)


@pytest.fixture(scope="module")
def run(mimic, tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp("api") / "run"
    return medlearn.train("ehr_los_mimic4", out=out, data=mimic, overrides=QUICK, device="cpu")


def test_train_writes_what_the_command_writes(run, mimic):
    for name in ("metrics.json", "predictions.csv", "history.csv", "report.html", "run_config.yaml"):
        assert (run.out / name).is_file(), name
    assert run.bundle == run.out / "bundle" and (run.bundle / "bundle.json").is_file()
    assert json.loads((run.out / "metrics.json").read_text()) == run.metrics
    assert run.metrics["split"] == "test" and "kappa_linear" in run.metrics["metrics"]
    saved = yaml.safe_load((run.out / "run_config.yaml").read_text())
    assert saved["data"]["root"] == str(mimic.resolve())  # --data is stored absolute, for evaluate/resume
    assert saved["train"]["epochs"] == 2 and saved["name"] == "ehr_los_mimic4"
    assert len((run.out / "history.csv").read_text().splitlines()) == 1 + 2  # header + one row per epoch


def test_evaluate_rescores_the_bundles_test_split(run, tmp_path):
    scored = medlearn.evaluate(run.bundle, out=tmp_path / "eval", device="cpu")
    assert scored.out == tmp_path / "eval" and (scored.out / "metrics.json").is_file()
    assert scored.metrics["split"] == "test" and scored.metrics["n"] == run.metrics["n"]
    assert scored.metrics["metrics"]["kappa_linear"]["value"] == pytest.approx(
        run.metrics["metrics"]["kappa_linear"]["value"], abs=1e-6
    )


def test_predict_takes_a_path_or_a_list(run, new_patients):
    bundle = medlearn.load_bundle(run.bundle)
    one = bundle.predict(new_patients)
    units = [r for r in one if "skipped" not in r]
    assert units and all(r["label"] in r["probabilities"] for r in units)
    assert bundle.predict(str(new_patients)) == one
    assert bundle.predict([new_patients, new_patients]) == one + one
    assert medlearn.predict(run.bundle, new_patients) == one  # from a path, as `medlearn predict --json`


def test_an_option_the_task_does_not_take_is_rejected_by_name(run, new_patients, tmp_path):
    bundle = medlearn.load_bundle(run.bundle)
    with pytest.raises(InputError, match=r"nodule.* does not apply to task los_classification"):
        bundle.predict(new_patients, nodule="55.5,85.6,-116")
    with pytest.raises(InputError, match=r"colour.* does not apply"):
        medlearn.predict(bundle, new_patients, out=tmp_path / "pics", colour="red")
    assert not (tmp_path / "pics").exists()  # refused before the output directory is made


def test_predict_names_a_missing_input(run, tmp_path):
    with pytest.raises(InputError, match=r"absent\.json: no such file or folder"):
        medlearn.predict(run.bundle, [tmp_path / "absent.json"])


def test_overrides_as_a_list_or_a_dict_are_the_same():
    as_list = resolve_config(
        "ehr_los_mimic4",
        ["train.epochs=3", "data.options.bin_hours=4", "model.name=gru_attention", "name=los short"],
    )
    as_dict = resolve_config(
        "ehr_los_mimic4",
        {"train.epochs": 3, "data.options.bin_hours": 4, "model.name": "gru_attention", "name": "los short"},
    )
    assert as_list == as_dict
    assert as_dict.train.epochs == 3 and as_dict.data.options["bin_hours"] == 4
    assert as_dict.model.name == "gru_attention" and as_dict.name == "los short"
    assert resolve_config("ehr_los_mimic4", "train.epochs=3").train.epochs == 3  # one string is one item


def test_a_config_may_be_a_dict_or_an_experiment_config():
    shipped = load_config("ehr_los_mimic4")
    raw = shipped.model_dump(mode="json")
    assert resolve_config(raw) == shipped
    assert resolve_config(shipped, {"train.lr": 0.01}).train.lr == 0.01
    assert shipped.train.lr == 0.002  # the caller's config is not modified


def test_a_bad_override_names_the_key_before_anything_is_written(mimic, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"train\.epohcs: unknown key"):
        medlearn.train("ehr_los_mimic4", out=out, data=mimic, overrides={"train.epohcs": 2})
    with pytest.raises(ConfigError, match=r"model\.params\.hiden"):  # bound against the model's signature
        medlearn.train("ehr_los_mimic4", out=out, data=mimic, overrides=["model.params.hiden=8"])
    with pytest.raises(ConfigError, match="track wandb: unknown tracker"):
        medlearn.train("ehr_los_mimic4", out=out, data=mimic, track="wandb")
    with pytest.raises(InputError, match="device gpu"):
        medlearn.train("ehr_los_mimic4", out=out, data=mimic, device="gpu")
    assert not out.exists()


def test_a_non_empty_output_directory_is_refused_without_force(mimic, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    with pytest.raises(OutputExistsError, match="busy: output directory is not empty; pass --force"):
        medlearn.train("ehr_los_mimic4", out=out, data=mimic, overrides=QUICK)
    with pytest.raises(OutputExistsError):
        medlearn.evaluate(tmp_path / "no-bundle-needed", out=out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_resume_needs_an_interrupted_run(tmp_path):
    with pytest.raises(InputError, match=r"run_config\.yaml: missing, so .* cannot be resumed"):
        medlearn.train(None, resume=tmp_path)
    with pytest.raises(InputError, match="a resumed run continues in its own directory"):
        medlearn.train(None, resume=tmp_path, out=tmp_path / "elsewhere")


# -- the command line calls the same functions ------------------------------------------------------


class Recorder:
    """Stands in for an API function: records its arguments and returns ``result``."""

    def __init__(self, result: Any = None) -> None:
        self.result = result
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.result


def test_the_command_line_passes_its_flags_to_the_api(monkeypatch, tmp_path):
    import medlearn.api as api
    from medlearn.cli import app

    outputs = SimpleNamespace(  # what the command prints from a RunOutputs
        out=tmp_path,
        metrics={"split": "test", "n": 3, "unit": "admission", "metrics": {}},
        bundle=tmp_path / "bundle",
        report=tmp_path / "report.html",
    )
    runner = CliRunner()

    train = Recorder(outputs)
    monkeypatch.setattr(api, "train", train)
    args = ["train", "ehr_los_mimic4", "--set", "train.epochs=3", "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--track", "mlflow", "--force", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    ((config,), kwargs) = train.calls[0]
    assert config == "ehr_los_mimic4" and kwargs["overrides"] == ["train.epochs=3"]
    assert kwargs["track"] == "mlflow" and kwargs["force"] and kwargs["device"] == "cpu"
    assert kwargs["out"] == tmp_path / "o"

    evaluate = Recorder(outputs)
    monkeypatch.setattr(api, "evaluate", evaluate)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "b"), "--split", "val", "--allow-external"])
    assert result.exit_code == 0, result.output
    assert evaluate.calls[0][1]["allow_external"] and evaluate.calls[0][1]["split"] == "val"

    predict = Recorder([{"input": "x", "unit": "u", "model": "m", "value": 1.0}])
    monkeypatch.setattr(api, "predict", predict)
    result = runner.invoke(app, ["predict", str(tmp_path / "b"), "x.json", "--json", "--allow-external"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == predict.result
    assert predict.calls[0][1]["allow_external"] and predict.calls[0][1]["nodule"] is None


def test_info_loads_with_allow_external_only_when_asked(monkeypatch, tmp_path):
    import medlearn.api as api
    from medlearn.cli import app

    class Refused(Exception):
        pass

    def load(path: Any, **kwargs: Any) -> Any:
        raise Refused(kwargs)

    monkeypatch.setattr(api, "load_bundle", load)
    for flags, allowed in (([], False), (["--allow-external"], True)):
        result = CliRunner().invoke(app, ["info", str(tmp_path), *flags])
        assert isinstance(result.exception, Refused) and result.exception.args[0]["allow_external"] is allowed
