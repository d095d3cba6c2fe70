"""validate_experiment: a config is checked whole (task options, model params, transforms, monitor) before
any data file is read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest
from pydantic import Field

from medlearn import registry
from medlearn.config import load_config, shipped_configs
from medlearn.engine.models import build_model
from medlearn.engine.target import Target
from medlearn.engine.task import Task, step
from medlearn.engine.validate import check_params, validate_experiment
from medlearn.errors import ConfigError


@pytest.fixture
def no_data_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Every registered task's ``load`` fails the test if called; the data root does not exist either."""
    calls: list[str] = []

    def load(self: Task, root: Path) -> Any:
        calls.append(str(root))
        raise AssertionError(f"{self.name} read data at {root} during validation")

    for name in registry.TASKS:
        monkeypatch.setattr(registry.task_class(name), "load", load)
    return calls


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_shipped_config_validates_without_reading_data(name, no_data_read):
    validate_experiment(load_config(name, ["data.root=/nonexistent/medlearn-data"]))
    assert no_data_read == []


def test_a_misspelt_model_parameter_fails_before_any_data_file_is_opened(no_data_read):
    cfg = load_config("ecg_af_cinc2017", ["model.params.widht=64", "data.root=/nonexistent/cinc2017"])
    with pytest.raises(
        ConfigError,
        match=r"^model\.params\.widht: unknown parameter for model resnet1d "
        r"\(accepted: .*\bwidth\b",
    ):
        validate_experiment(cfg)
    assert no_data_read == []


def test_a_model_parameter_of_the_wrong_type_names_the_key():
    cfg = load_config("ecg_af_cinc2017", ["model.params.width=wide"])
    with pytest.raises(
        ConfigError, match=r"^model\.params\.width: model resnet1d rejects the value: .*integer.*'wide'"
    ):
        validate_experiment(cfg)


def test_an_unknown_monitor_metric_fails_naming_the_metrics_of_the_target():
    cfg = load_config("ecg_af_cinc2017", ["train.early_stopping.monitor=auc"])
    with pytest.raises(
        ConfigError,
        match=r"^train\.early_stopping\.monitor: 'auc' is not a validation metric of task "
        r"ecg_af \(multiclass; choose from loss, .*macro_f1.*challenge_f1",
    ):
        validate_experiment(cfg)


def test_a_monitor_of_another_kind_is_rejected_and_a_valid_one_accepted():
    with pytest.raises(ConfigError, match="'mae' is not a validation metric of task lung_nodule_malignancy"):
        validate_experiment(load_config("lung_nodule", ["train.early_stopping.monitor=mae"]))
    validate_experiment(load_config("lung_nodule", ["train.early_stopping.monitor=auprc"]))


def test_unknown_task_model_and_task_option_name_their_key():
    with pytest.raises(ConfigError, match=r"^task: unknown task 'lung_nodul'"):
        validate_experiment(load_config("lung_nodule", ["task=lung_nodul"]))
    with pytest.raises(ConfigError, match=r"^model\.name: unknown model 'resnet'"):
        validate_experiment(load_config("lung_nodule", ["model.name=resnet"]))
    with pytest.raises(ConfigError, match=r"data\.options\.dpeth: unknown key"):
        validate_experiment(load_config("lung_nodule", ["data.options.dpeth=3"]))


class BadSpecTask(Task):
    """A task whose preprocessing names a transform parameter ``normalize`` does not take."""

    name: ClassVar[str] = "bad_spec"
    target: ClassVar[Target] = Target("binary", ("no", "yes"))
    unit: ClassVar[str] = "row"
    default_model: ClassVar[str] = "dummy"

    def load(self, root: Path) -> Any:
        raise AssertionError("validation must not load data")

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        return [step("normalize", mean=0.0, sd=1.0)]


def test_a_preprocessing_step_with_a_parameter_its_transform_does_not_take_is_an_error(monkeypatch):
    monkeypatch.setitem(registry.TASKS, "bad_spec", f"{__name__}:BadSpecTask")
    cfg = load_config(
        "lung_nodule", ["task=bad_spec", "model.name=dummy", "model.params={}", "data.options={}"]
    )
    with pytest.raises(
        ConfigError,
        match=r"task bad_spec: preprocessing\[0\]\.params\.sd: unknown parameter for "
        r"transform normalize \(accepted: mean, std",
    ):
        validate_experiment(cfg)


def test_build_model_runs_the_same_check_as_the_validator():
    with pytest.raises(ConfigError, match=r"model\.params\.dropout: model seed_cnn rejects the value"):
        build_model("seed_cnn", {"dropout": "lots"}, {})
    model, kwargs = build_model("seed_cnn", {"dropout": 0}, {"out_channels": 2})
    assert kwargs["dropout"] == 0 and kwargs["out_channels"] == 2


def test_check_params_accepts_yaml_lists_for_tuples_and_any_key_for_kwargs():
    def factory(widths: tuple[int, ...] = (8,), **extra: Any) -> None: ...

    check_params(factory, {"widths": [8, 16], "anything": 1}, "model.params", "model f")
    with pytest.raises(ConfigError, match=r"model\.params\.widths: model f rejects the value: .* at \[1\]"):
        check_params(factory, {"widths": [8, "x"]}, "model.params", "model f")


def test_constraints_a_factory_declares_are_checked_before_it_is_built():
    def factory(width: Annotated[int, Field(gt=0)] = 32) -> None:
        raise AssertionError("the factory must not be called by the check")

    with pytest.raises(
        ConfigError, match=r"model\.params\.width: model f rejects the value: .*greater than 0.*-4"
    ):
        check_params(factory, {"width": -4}, "model.params", "model f")
