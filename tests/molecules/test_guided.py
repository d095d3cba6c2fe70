"""Property-guided generation (REINVENT): the objective scores molecules right, a short run on a tiny prior
raises the objective, the agent is a usable bundle, and bad CLI input is one line with exit code 2."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medlearn.cli import app
from medlearn.engine.integrity import write_manifest
from medlearn.errors import ConfigError, InputError
from tests.conftest import require_module

require_module("rdkit")
from rdkit import Chem, RDConfig  # noqa: E402
from rdkit.Chem import QED, Crippen  # noqa: E402

from medlearn.molecules.guided import reinvent, write_guided_run  # noqa: E402
from medlearn.molecules.objective import Objective  # noqa: E402

runner = CliRunner()

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
# 5-benzylidene rhodanine: a textbook PAINS alert (ene_rhod_A)
RHODANINE = "O=C1NC(=S)SC1=Cc1ccccc1"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def prior(tmp_path_factory, one_torch_thread):
    """A 1-layer CharRNN trained 5 epochs on 1,000 molecules of RDKit's NCI sample (~15 s on 1 thread)."""
    import medlearn.molecules.metrics.moses as moses
    import medlearn.molecules.metrics.parallel as parallel
    from medlearn.config import validate
    from medlearn.engine.bundle import load_bundle
    from medlearn.engine.progress import set_quiet
    from medlearn.engine.run import train_experiment

    raw = {
        "name": "tiny_prior",
        "task": "molecule_generation",
        "data": {
            "root": str(Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"),
            "cache": False,
            "options": {
                "n_train": 1000,
                "n_val": 100,
                "test_file": None,
                "n_test": 50,
                "n_samples": 50,
                "n_val_samples": 50,
            },
        },
        "model": {"name": "char_rnn", "params": {"hidden_size": 128, "num_layers": 1, "embedding_dim": 32}},
        "train": {
            "epochs": 5,
            "batch_size": 64,
            "optimizer": "adam",
            "lr": 0.005,
            "weight_decay": 0,
            "scheduler": "none",
            "class_weighting": "none",
            "augment": False,
            "grad_clip": 5,
            "seed": 0,
        },
    }
    out = tmp_path_factory.mktemp("prior")
    set_quiet(True)
    try:
        with pytest.MonkeyPatch.context() as mp:  # score the prior's own samples in-process (no worker pool)
            mp.setenv("MEDLEARN_CACHE", str(tmp_path_factory.mktemp("cache")))
            mp.setattr(parallel, "default_jobs", lambda: 1)
            mp.setattr(moses, "default_jobs", lambda: 1)
            train_experiment(validate(raw, "tiny_prior"), out, device="cpu")
        yield load_bundle(out / "bundle")
    finally:
        set_quiet(False)


@pytest.fixture(scope="module")
def guided_run(prior, tmp_path_factory):
    objective = Objective(qed=1.0)
    result = reinvent(prior, objective, steps=40, batch_size=64, seed=0, progress=False)
    out = tmp_path_factory.mktemp("guided")
    metrics = write_guided_run(result, out, prior, objective, n_eval=300, top_k=20, progress=False)
    return result, out, metrics


# ------------------------------------------------------------------------------------------ objective
def test_qed_objective_is_rdkit_qed_and_invalid_smiles_score_zero():
    scores = Objective(qed=1.0).score([ASPIRIN, "C1CC", "not a smiles", ""])
    assert scores[0] == pytest.approx(QED.qed(Chem.MolFromSmiles(ASPIRIN)), abs=1e-9)
    assert 0.5 < scores[0] < 0.6  # aspirin's QED is 0.55
    assert scores[1:].tolist() == [0.0, 0.0, 0.0]


def test_logp_window_is_one_inside_and_decays_with_distance_outside():
    objective = Objective(qed=0.0, logp_range=(1.0, 2.0))
    smiles = ["CCCCC", "CCCCCCCCCC", "OCC(O)CO"]  # logP ≈ 2.2, 4.2, -1.7
    logp = [Crippen.MolLogP(Chem.MolFromSmiles(s)) for s in smiles]
    expected = [math.exp(-max(1.0 - v, v - 2.0, 0.0)) for v in logp]
    assert objective.score(smiles) == pytest.approx(expected, abs=1e-9)
    assert Objective(qed=0.0, logp_range=(0.0, 3.0)).score(["CCCCC"])[0] == 1.0
    assert expected[1] < expected[0] < 1.0


def test_geometric_mean_of_components_and_pains_penalty():
    aspirin_qed = QED.qed(Chem.MolFromSmiles(ASPIRIN))
    aspirin_logp = Crippen.MolLogP(Chem.MolFromSmiles(ASPIRIN))  # 1.31
    both = Objective(qed=1.0, logp_range=(2.0, 3.0)).score([ASPIRIN])[0]
    assert both == pytest.approx(math.sqrt(aspirin_qed * math.exp(-(2.0 - aspirin_logp))), abs=1e-9)
    weighted = Objective(qed=3.0, logp_range=(2.0, 3.0)).score([ASPIRIN])[0]
    assert weighted == pytest.approx((aspirin_qed**3 * math.exp(-(2.0 - aspirin_logp))) ** 0.25, abs=1e-9)
    # aspirin is easy to make (SA 1.6): the SA component is 1 and the geometric mean is sqrt(QED × 1)
    capped = Objective(qed=1.0, max_sa=4.0).score([ASPIRIN])[0]
    assert capped == pytest.approx(math.sqrt(aspirin_qed), abs=1e-9)
    assert Objective(qed=0.0, max_sa=1.0).score([ASPIRIN])[0] < 1.0
    assert Objective(qed=1.0).score([RHODANINE])[0] > 0.5
    guarded = Objective(qed=1.0, no_pains=True)
    assert guarded.score([RHODANINE, ASPIRIN]).tolist() == [0.0, pytest.approx(aspirin_qed, abs=1e-9)]
    assert "no PAINS" in guarded.describe() and "QED" in guarded.describe()


def test_objective_rejects_bad_settings():
    with pytest.raises(InputError, match="LO < HI"):
        Objective(logp_range=(3.0, 1.0))
    with pytest.raises(InputError, match="SA score"):
        Objective(max_sa=0.5)
    with pytest.raises(ConfigError, match="no active component"):
        Objective(qed=0.0, no_pains=True)
    with pytest.raises(ConfigError):
        Objective(qed=-1.0)


# ------------------------------------------------------------------------------------------ REINVENT
def test_reinvent_raises_the_objective_over_the_prior(guided_run):
    result, _, metrics = guided_run
    m = {k: v["value"] for k, v in metrics["metrics"].items()}
    assert metrics["task"] == "guided_generation" and metrics["split"] == "generated" and metrics["n"] == 300
    assert all(v["ci95"] is None for v in metrics["metrics"].values())
    # same n, same seed for prior and agent samples
    assert m["score_mean_agent"] > m["score_mean_prior"] + 0.1
    assert m["validity_agent"] > m["validity_prior"]
    assert m["unique_agent"] > 0.5  # improved without collapsing onto a handful of molecules
    assert 0.0 < m["int_div1"] < 1.0 and m["top_k_score_mean"] >= m["score_mean_agent"]
    assert m["novelty_agent"] is not None and 0.0 <= m["novelty_agent"] <= 1.0
    assert len(result.history) == 40
    first, last = (
        np.mean([h["score_mean"] for h in result.history[:5]]),
        np.mean([h["score_mean"] for h in result.history[-5:]]),
    )
    assert last > first


def test_reinvent_is_deterministic_for_a_seed(prior):
    objective = Objective(qed=1.0)
    a = reinvent(prior, objective, steps=3, batch_size=16, seed=7, progress=False)
    b = reinvent(prior, objective, steps=3, batch_size=16, seed=7, progress=False)
    assert a.history == b.history
    for pa, pb in zip(a.agent.parameters(), b.agent.parameters()):
        assert torch.equal(pa, pb)


def test_outputs_top_csv_report_and_a_bundle_that_generates(guided_run, prior):
    from medlearn.engine.bundle import load_bundle

    result, out, metrics = guided_run
    with (out / "top.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["SMILES", "score", "qed", "sa", "logp", "weight"]
    assert 0 < len(rows) <= 20 and len({r["SMILES"] for r in rows}) == len(rows)
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    # the objective is QED alone, so the score column is the QED column, and rescoring agrees
    assert scores == pytest.approx([float(r["qed"]) for r in rows])
    assert Objective(qed=1.0).score([r["SMILES"] for r in rows]) == pytest.approx(scores, abs=1e-5)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    report = (out / "report.html").read_text()
    assert "Score per step" in report and "Top 12" in report and report.count("data:image/png") >= 3

    agent = load_bundle(out / "bundle")
    assert agent.kind == "generative" and agent.meta.model == prior.meta.model
    assert agent.meta.preprocessing == prior.meta.preprocessing
    assert agent.meta.guided["objective"]["qed"] == 1.0 and agent.meta.guided["steps"] == 40
    samples = agent.generate(20, seed=1)
    assert len(samples) == 20 and all(isinstance(s, str) for s in samples)
    # the saved weights are the agent's, not the prior's
    assert any(not torch.equal(pa, pp) for pa, pp in zip(agent.model.parameters(), prior.model.parameters()))


# ------------------------------------------------------------------------------------------ CLI
def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0, result.output
    for needle in needles:
        assert needle in result.output


def test_cli_bad_inputs_are_one_line_exit_2(prior, tmp_path):
    bundle = str(prior.path)
    _one_line_error(
        runner.invoke(app, ["optimize", bundle, "--out", str(tmp_path / "a"), "--logp", "3,1"]), "LO < HI"
    )
    _one_line_error(
        runner.invoke(app, ["optimize", bundle, "--out", str(tmp_path / "a"), "--logp", "x"]), "--logp"
    )
    _one_line_error(
        runner.invoke(app, ["optimize", bundle, "--out", str(tmp_path / "a"), "--no-qed"]),
        "no active component",
    )
    _one_line_error(
        runner.invoke(app, ["optimize", str(tmp_path / "missing"), "--out", str(tmp_path / "a")]), "missing"
    )
    # a bundle that is not a generator's
    fake = tmp_path / "classifier"
    fake.mkdir()
    for name in ("model.safetensors", "model_card.md"):
        (fake / name).write_bytes((prior.path / name).read_bytes())
    meta = json.loads((prior.path / "bundle.json").read_text())
    meta["target"].update(kind="binary", class_names=["inactive", "active"])
    (fake / "bundle.json").write_text(json.dumps(meta))
    write_manifest(fake)  # intact as a file set: the refusal must come from what the bundle is
    _one_line_error(
        runner.invoke(app, ["optimize", str(fake), "--out", str(tmp_path / "a")]),
        "binary",
        "is not what task",  # a generator's task with a classifier's target is refused at load
    )
    assert not (tmp_path / "a").exists()  # nothing written for a rejected run


def test_cli_runs_and_refuses_to_overwrite(prior, tmp_path):
    out = tmp_path / "run"
    args = [
        "optimize",
        str(prior.path),
        "--out",
        str(out),
        "--logp",
        "1,3",
        "--max-sa",
        "4",
        "--no-pains",
        "--steps",
        "2",
        "--batch-size",
        "16",
        "--top-k",
        "5",
        "--threads",
        "1",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "prior" in result.output and "→ agent" in result.output and "IntDiv" in result.output
    assert {"bundle", "top.csv", "metrics.json", "report.html"} <= {p.name for p in out.iterdir()}
    meta = json.loads((out / "bundle" / "bundle.json").read_text())
    objective = meta["guided"]["objective"]
    assert {k: objective[k] for k in ("qed", "logp_range", "max_sa", "no_pains")} == {
        "qed": 1.0,
        "logp_range": [1.0, 3.0],
        "max_sa": 4.0,
        "no_pains": True,
    }
    _one_line_error(runner.invoke(app, args), "--force")
