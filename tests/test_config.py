"""Config loading: shipped configs, overrides, and errors that name the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlearn.config import load_config, parse_override, shipped_configs
from medlearn.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_required_configs_ship_inside_the_package_and_in_the_repo():
    shipped = shipped_configs()
    for name in ("lung_nodule", "lung_nodule_seed_cnn", "cxr_pneumonia", "demo_ct"):
        assert name in shipped
        assert (REPO / "configs" / f"{name}.yaml").read_text() == shipped[name].read_text()


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_shipped_config_validates_and_names_its_dataset(name):
    from medlearn.registry import MODELS, task_class

    cfg = load_config(name)
    assert cfg.name == name
    assert cfg.data.root
    task_class(cfg.task)(cfg.data.options)  # task options validate
    assert cfg.model.name in MODELS


def test_override_values_are_parsed_as_yaml():
    assert parse_override("train.epochs=3") == (["train", "epochs"], 3)
    assert parse_override("data.root=/x/y") == (["data", "root"], "/x/y")
    assert parse_override("model.params.widths=[8, 16]") == (["model", "params", "widths"], [8, 16])
    cfg = load_config("lung_nodule", ["train.epochs=3", "train.lr=0.01"])
    assert (cfg.train.epochs, cfg.train.lr) == (3, 0.01)


def test_unknown_key_is_an_error_naming_the_key_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: lung_nodule_malignancy\ndata: {root: x}\ntrain: {epohcs: 3}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: train\.epohcs: unknown key"):
        load_config(str(path))


def test_wrong_type_is_an_error_naming_the_key_path():
    with pytest.raises(ConfigError, match=r"train\.epochs: .*integer"):
        load_config("lung_nodule", ["train.epochs=many"])


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("task: x\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+ not valid YAML"):
        load_config(str(path))


def test_missing_config_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="shipped: .*lung_nodule"):
        load_config("no_such_config")


def test_task_options_and_model_params_are_validated_with_their_key_path():
    from medlearn.engine.models import build_model
    from medlearn.registry import task_class

    with pytest.raises(ConfigError, match=r"data\.options\.dpeth: unknown key"):
        task_class("lung_nodule_malignancy")({"dpeth": 3})
    with pytest.raises(ConfigError, match=r"model\.params\.widht: unknown parameter for model seed_cnn"):
        build_model("seed_cnn", {"widht": 3}, {})
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        task_class("nope")
