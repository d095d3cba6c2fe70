"""``medlearn demo`` credits what its models were trained on (synthetic data, RDKit's NCI sample), not the
real datasets of the tasks it borrows, in the task, the bundle's task options and the model card."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlearn.engine.run import make_task
from medlearn.errors import ConfigError
from medlearn.registry import task_class

#: Marks of the real datasets' credits (PhysioNet DOIs: MIMIC, eICU; CinC 2017; ZINC for MOSES).
REAL_DATA = ("doi:10.13026", "PhysioNet/CinC Challenge 2017", "Clifford", "ZINC", "LIDC")


def _demo_configs(tmp_path: Path) -> dict:
    from medlearn.ehr import demo as ehr
    from medlearn.imaging import demo as imaging
    from medlearn.signals import demo as signals

    configs = {
        "imaging": (imaging.demo_config(tmp_path), imaging.DEMO_CREDITS),
        "ehr": (ehr.demo_config(tmp_path), ehr.DEMO_CREDITS),
        "signals": (signals.demo_config(tmp_path), signals.DEMO_CREDITS),
    }
    try:
        from medlearn.molecules import demo as molecules

        configs["molecules"] = (molecules.demo_config(), molecules.DEMO_CREDITS)
    except ImportError:  # RDKit absent: the molecules demo cannot run either
        pass
    return configs


@pytest.mark.parametrize("pipeline", ["imaging", "ehr", "signals", "molecules"])
def test_demo_task_credits_its_own_data_and_not_the_real_dataset(pipeline, tmp_path):
    configs = _demo_configs(tmp_path)
    if pipeline not in configs:
        pytest.skip("RDKit is not installed")
    cfg, credits = configs[pipeline]
    task = make_task(cfg)
    assert task.credits == credits
    assert not set(type(task).credits) & set(credits) or pipeline == "molecules"
    assert not [c for c in credits for mark in REAL_DATA if mark in c]
    # A bundle rebuilds its task from the stored options: the credits travel with them.
    rebuilt = task_class(cfg.task)(task.options_dict())
    assert rebuilt.credits == credits and type(rebuilt).credits != credits


def test_molecules_demo_credits_rdkit_nci_sample_and_keeps_metric_credits(tmp_path):
    pytest.importorskip("rdkit")
    from medlearn.molecules.demo import DEMO_CREDITS
    from medlearn.molecules.tasks import METRIC_CREDITS, MOSES_DATA_CREDIT

    assert "rdkit/Data/NCI/first_5K.smi" in DEMO_CREDITS[0] and "BSD 3-Clause" in DEMO_CREDITS[0]
    assert MOSES_DATA_CREDIT not in DEMO_CREDITS and set(METRIC_CREDITS) <= set(DEMO_CREDITS)


def test_a_task_without_the_override_keeps_its_own_credits_and_options():
    cls = task_class("ecg_af")
    task = cls({})
    assert task.credits == cls.credits and "credits" not in task.options_dict()


@pytest.mark.parametrize("bad", [[], "one string", [""], [1]])
def test_credits_must_be_a_non_empty_list_of_strings(bad):
    with pytest.raises(ConfigError, match="data.options.credits"):
        task_class("ecg_af")({"credits": bad})
