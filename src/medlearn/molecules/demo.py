"""``medlearn demo molecules``: a CharRNN trained on molecules an installed package ships, then scored.

RDKit installs ``Data/NCI/first_5K.smi`` (5,000 NCI compounds), so the demo needs no download and no
shared data: it trains the ``mol_charrnn_moses`` recipe, shrunk to minutes on 2 CPU cores, on 3,500 of them
(those of at most 60 SMILES tokens, MOSES-sized)
and scores 2,000 samples with the MOSES table against 1,000 held-out ones (filters: MOSES's MCF list shipped
with medlearn, RDKit's PAINS). A few minutes of CPU buy a model that has learnt SMILES syntax only in part:
the point is the whole path — data, training, sampling, metrics, report, bundle — not the numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

from medlearn.config import ExperimentConfig, load_config
from medlearn.engine.run import RunOutputs, train_experiment
from medlearn.molecules.tasks import METRIC_CREDITS, MOSES_METRICS_CREDIT

#: What the demo's model is trained and scored on, credited in its report, model card and bundle.
DEMO_CREDITS = [
    "Data: RDKit's NCI sample, rdkit/Data/NCI/first_5K.smi (5,000 structures from the NCI open compound "
    "database), shipped with RDKit (BSD 3-Clause; Landrum G et al., RDKit: open-source cheminformatics, "
    "https://www.rdkit.org). The demo trains on part of it and scores against molecules held out from it "
    "(metrics.json's reference says how many), not against the MOSES Test set.",
    MOSES_METRICS_CREDIT,
    *METRIC_CREDITS,
]


def nci_smiles() -> Path:
    from rdkit import RDConfig

    path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    if not path.is_file():
        from medlearn.errors import InputError

        raise InputError(f"{path}: RDKit's NCI sample is missing from this RDKit installation")
    return path


def run_demo(out: Path, epochs: int = 12, device: str = "auto") -> RunOutputs:
    return train_experiment(demo_config(epochs), out, device=device)


def demo_config(epochs: int = 12) -> ExperimentConfig:
    """The ``mol_charrnn_moses`` recipe shrunk for the demo, on RDKit's NCI sample, crediting it (not MOSES)."""
    return load_config(
        "mol_charrnn_moses",
        [
            f"data.root={nci_smiles()}",
            "name=demo_molecules",
            f"data.options.credits={json.dumps(DEMO_CREDITS)}",
            "data.options.test_file=null",
            "data.options.test_scaffolds_file=null",
            "data.options.n_train=3500",
            "data.options.n_val=300",
            "data.options.n_test=1000",
            "data.options.n_samples=2000",
            "data.options.n_val_samples=200",
            "data.options.max_tokens=60",
            "model.params.hidden_size=256",
            "model.params.num_layers=1",
            f"train.epochs={epochs}",
            "train.batch_size=64",
            "train.max_train_batches=null",
            "train.time_limit_minutes=null",
            "train.early_stopping.patience=20",
            "train.lr=0.003",
            "train.scheduler=none",
        ],
    )
