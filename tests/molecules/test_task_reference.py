"""The molecule task names what its *_test metrics are scored against: MOSES Test, or molecules held out
from its own training file (the demo's RDKit NCI sample) — the keys stay ``fcd_test``..."""

from __future__ import annotations

import pytest

pytest.importorskip("rdkit")
pytest.importorskip("fcd")

from medlearn.molecules.tasks import MoleculeGeneration


def test_held_out_reference_is_named_after_the_training_file(tmp_path, monkeypatch):
    from rdkit import RDConfig

    monkeypatch.setenv("MEDLEARN_CACHE", str(tmp_path / "cache"))
    source = RDConfig.RDDataDir + "/NCI/first_5K.smi"
    with open(source) as fh:
        head = [next(fh) for _ in range(80)]
    path = tmp_path / "nci_head.smi"
    path.write_text("".join(head))
    task = MoleculeGeneration(
        {
            "test_file": None,
            "test_scaffolds_file": None,
            "n_train": 40,
            "n_val": 10,
            "n_test": 12,
            "max_tokens": 60,
        }
    )
    table = task.load(path)
    tables = {
        s: table.subset([i for i, x in enumerate(table.split) if x == s]) for s in ("train", "val", "test")
    }
    reference = task.reference(path, tables)
    n_test, n_seen = len(tables["test"]), len(tables["train"]) + len(tables["val"])
    assert reference.sources == {
        "test": f"{n_test} molecules held out from nci_head.smi (not the MOSES Test set)",
        "train": f"the {n_seen} training and validation molecules drawn from nci_head.smi",
    }
    assert reference.test_scaffolds is None  # no *_testsf metrics without a scaffold reference
