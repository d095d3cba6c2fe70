"""Unconditional molecule generation as an engine task: learn a set of molecules, sample new ones.

The units are molecules (canonical SMILES) drawn reproducibly from a training file; the preprocessing
is the fitted tokeniser + vocabulary (:class:`MoleculeTokens`), stored in the bundle so that sampling
decodes with exactly the training codec. The engine's generative run trains any generator with its own
objective, then samples ``n_samples`` molecules and scores them here with the MOSES table.

Two kinds of reference:

- ``test_file`` set (the MOSES layout, ``data.root: molecules/moses``): Test/TestSF statistics from the
  MOSES files, novelty against the whole training file, as the MOSES paper reports;
- ``test_file: null`` (any other SMILES file, e.g. the demo's): ``n_test`` molecules of the file are held
  out as the Test reference; filters are MOSES's MCF list (shipped with medlearn, MIT) + RDKit's PAINS.

The metric keys keep MOSES's names either way (``fcd_test`` is FCD against whichever Test reference);
metrics.json's ``"reference"`` names the sets they were scored against, and the report's rows say it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from medlearn.engine.data import Preprocessing, UnitTable, fingerprint_files
from medlearn.engine.progress import info, make_progress
from medlearn.engine.task import INTENDED_USE, GenerativeTask
from medlearn.errors import InputError
from medlearn.molecules.representations.codec import MoleculeCodec

#: Published MOSES baselines (molecularsets/moses README and Polykovskiy et al., Front. Pharmacol. 2020:
#: means over 3 runs, 30,000 samples each against the MOSES Test/TestSF sets), shown beside results.
MOSES_BASELINES: dict[str, dict[str, float]] = {
    "CharRNN": {
        "validity": 0.9748,
        "unique_1k": 1.0,
        "unique_10k": 0.9994,
        "fcd_test": 0.0732,
        "fcd_testsf": 0.5204,
        "snn_test": 0.6015,
        "snn_testsf": 0.5649,
        "frag_test": 0.9998,
        "frag_testsf": 0.9983,
        "scaf_test": 0.9242,
        "scaf_testsf": 0.1101,
        "int_div1": 0.8562,
        "int_div2": 0.8503,
        "filters": 0.9943,
        "novelty": 0.8419,
    },
    "VAE": {
        "validity": 0.9767,
        "unique_1k": 1.0,
        "unique_10k": 0.9984,
        "fcd_test": 0.099,
        "fcd_testsf": 0.567,
        "snn_test": 0.6257,
        "snn_testsf": 0.5783,
        "frag_test": 0.9994,
        "frag_testsf": 0.9984,
        "scaf_test": 0.9386,
        "scaf_testsf": 0.0588,
        "int_div1": 0.8558,
        "int_div2": 0.8498,
        "filters": 0.997,
        "novelty": 0.6949,
    },
    "LatentGAN": {
        "validity": 0.8966,
        "unique_1k": 1.0,
        "unique_10k": 0.9968,
        "fcd_test": 0.2968,
        "fcd_testsf": 0.8281,
        "snn_test": 0.5371,
        "snn_testsf": 0.5132,
        "frag_test": 0.9986,
        "frag_testsf": 0.9972,
        "scaf_test": 0.8867,
        "scaf_testsf": 0.1072,
        "int_div1": 0.8565,
        "int_div2": 0.8505,
        "filters": 0.9735,
        "novelty": 0.9498,
    },
}


#: The MOSES data set, credited when a run trains and is scored on it (the task's default).
MOSES_DATA_CREDIT = (
    "MOSES benchmark: Polykovskiy et al., Front. Pharmacol. 2020 (MIT); molecules from ZINC Clean Leads."
)
#: What every run's metrics rely on, whatever the molecules.
METRIC_CREDITS = [
    "FCD: Preuer et al., J. Chem. Inf. Model. 2018 (fcd package, ChemNet weights).",
    "RDKit (BSD) for parsing, descriptors, SA score (Ertl & Schuffenhauer 2009) and PAINS filters.",
]
#: The MOSES metric definitions and MCF filter list alone, for runs on other molecules.
MOSES_METRICS_CREDIT = (
    "MOSES metric definitions and MCF filter list: Polykovskiy et al., Front. Pharmacol. 2020 (MIT)."
)


class MoleculeTokens:
    """Preprocessing step ``mol_tokens``: canonical SMILES → ``length`` token ids (bos … eos, padded).

    A molecule longer than ``length`` (possible only outside the training set) is cut, which a loss
    can still score; its eos is lost, so nothing downstream mistakes it for a complete molecule.
    """

    def __init__(self, codec: dict[str, Any], length: int) -> None:
        self.codec = MoleculeCodec.from_dict(codec)
        self.length = int(length)

    def __call__(self, smiles: str) -> np.ndarray:
        ids = self.codec.encode(smiles)[: self.length]
        out = np.zeros(self.length, dtype=np.float32)
        out[: len(ids)] = ids
        return out


def codec_of(pre: Preprocessing) -> MoleculeCodec:
    """The codec stored in a molecule preprocessing chain."""
    step = next((s for s in pre.steps if isinstance(s, MoleculeTokens)), None)
    if step is None:
        raise InputError("this preprocessing has no mol_tokens step: not a molecule generator's bundle")
    return step.codec


class MoleculeGeneration(GenerativeTask):
    name = "molecule_generation"
    unit = "molecule"
    default_model = "char_rnn"
    intended_use = (
        INTENDED_USE + " Generated molecules are hypotheses for a chemist to review, not "
        "synthesis-ready or safe compounds."
    )
    credits = [MOSES_DATA_CREDIT, *METRIC_CREDITS]

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        #: SMILES file inside ``data.root`` (or ``data.root`` itself when it is a file)
        train_file: str = "train.csv.gz"
        #: molecules sampled (seeded) from the training file for training; None = all of them
        n_train: int | None = Field(250_000, ge=10)
        n_val: int = Field(10_000, ge=10)
        sample_seed: int = 0
        tokenizer: Literal["smiles", "selfies"] = "smiles"
        multi_fragment: Literal["keep", "largest", "reject"] = "keep"
        #: drop molecules of more tokens (counted in the report); None keeps all
        max_tokens: int | None = Field(None, ge=2)
        #: MOSES reference files inside ``data.root``; test_file null holds out n_test molecules instead
        test_file: str | None = "test.csv.gz"
        test_scaffolds_file: str | None = "test_scaffolds.csv.gz"
        n_test: int = Field(1000, ge=10)
        #: molecules sampled after training for metrics.json (MOSES: 30,000)
        n_samples: int = Field(30_000, ge=1)
        #: molecules sampled after each epoch for the validation validity
        n_val_samples: int = Field(500, ge=1)
        temperature: float = Field(1.0, gt=0)

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        self.canonicalization: dict[str, Any] | None = None

    # -- data -----------------------------------------------------------------------------------------
    def train_path(self, root: Path) -> Path:
        return root if root.is_file() else root / self.options.train_file

    def load(self, root: Path) -> UnitTable:
        from medlearn.molecules.io import canonicalize, read_smiles

        o = self.options
        path = self.train_path(root)
        smiles = read_smiles(path)
        held_out = 0 if o.test_file else o.n_test
        wanted = (len(smiles) if o.n_train is None else o.n_train) + o.n_val + held_out
        rng = np.random.default_rng(o.sample_seed)
        # 1% spare so that a few unparsable records do not shrink the sample
        order = rng.permutation(len(smiles))[: min(len(smiles), math.ceil(wanted * 1.01))]
        canonical, report = canonicalize([smiles[i] for i in order], o.multi_fragment)
        self.canonicalization = {"file": str(path), "sampled": len(order), **report.to_dict()}
        info(f"{path.name}: {report.summary()} (of {len(smiles):,} records, {len(order):,} sampled)")
        kept = [(int(i), c) for i, c in zip(order, canonical) if c is not None]
        if o.max_tokens is not None:
            from medlearn.molecules.representations.codec import make_tokenizer

            tokenizer = make_tokenizer(o.tokenizer)
            short = [(i, c) for i, c in kept if len(tokenizer.tokenize(c)) <= o.max_tokens]
            self.canonicalization[f"dropped_over_{o.max_tokens}_tokens"] = len(kept) - len(short)
            kept = short
        kept = kept[:wanted]
        n = len(kept)
        n_val, n_test = min(o.n_val, n // 5), min(held_out, n // 5)
        if n - n_val - n_test < 10:
            raise InputError(
                f"{path}: {n} valid molecules, too few to train a generator (need ≥ 10 for training)"
            )
        split = np.array(["val"] * n_val + ["test"] * n_test + ["train"] * (n - n_val - n_test))
        ids = [f"{path.name}:{i + 1}" for i, _ in kept]
        options = json.dumps(
            {
                k: v
                for k, v in self.options_dict().items()
                if k
                in (
                    "train_file",
                    "n_train",
                    "n_val",
                    "sample_seed",
                    "multi_fragment",
                    "test_file",
                    "n_test",
                    "max_tokens",
                )
            },
            sort_keys=True,
        )
        return UnitTable(
            ids=ids,
            targets=np.zeros(n, dtype=np.float32),
            groups=np.array(ids),
            raw=[c for _, c in kept],
            fingerprint=fingerprint_files([path], options),
            split=split,
        )

    def preprocessing_spec(self, model_name: str) -> list[dict[str, Any]]:
        raise InputError("molecule preprocessing is fitted on the training molecules (a vocabulary)")

    def fit_preprocessing(self, model_name: str, train: UnitTable) -> list[dict[str, Any]]:
        codec = MoleculeCodec.fit(train.raw, kind=self.options.tokenizer)
        longest = max(len(codec.encode(s)) for s in train.raw)
        self._codec, self._length = codec, longest
        return [{"name": "mol_tokens", "params": {"codec": codec.to_dict(), "length": longest}}]

    def model_kwargs(self, model_name: str) -> dict[str, Any]:
        # Samples may run a little longer than the longest training molecule before a model learns to stop.
        return {
            "vocab_size": len(self._codec.vocabulary),
            "max_length": self._length + 20,
            "codec": self._codec.to_dict(),
        }

    # -- sampling -------------------------------------------------------------------------------------
    def generate(
        self,
        model: torch.nn.Module,
        pre: Preprocessing,
        n: int,
        seed: int = 0,
        temperature: float | None = None,
        batch_size: int = 1000,
        progress: bool = True,
    ) -> list[str]:
        """``n`` SMILES sampled from ``model`` (invalid ones included, as MOSES counts them)."""
        codec = codec_of(pre)
        generator = torch.Generator().manual_seed(seed)
        temperature = self.options.temperature if temperature is None else temperature
        model.eval()
        out: list[str] = []
        with make_progress(disable=not progress) as bar:
            task = bar.add_task("sample", total=n, status="")
            while len(out) < n:
                ids = model.sample(
                    min(batch_size, n - len(out)), generator=generator, temperature=temperature
                )
                out.extend(codec.decode(row) for row in ids.tolist())
                bar.update(task, completed=len(out))
        return out

    def sample_columns(self, samples: Sequence[str]) -> dict[str, list[Any]]:
        """predictions.csv columns beside each sample: its id, split, validity and canonical SMILES."""
        from medlearn.molecules.io import canonicalize

        canonical, _ = canonicalize(list(samples))
        return {
            "id": [f"sample{i + 1}" for i in range(len(samples))],
            "split": ["generated"] * len(samples),
            "valid": [int(c is not None) for c in canonical],
            "canonical": [c or "" for c in canonical],
        }

    def sample_scores(self, model: torch.nn.Module, pre: Preprocessing) -> dict[str, float]:
        """Validity and uniqueness of ``n_val_samples`` fresh samples: the per-epoch picture of learning."""
        from medlearn.molecules.io import canonicalize

        samples = self.generate(model, pre, self.options.n_val_samples, seed=12345, progress=False)
        canonical, _ = canonicalize(samples)
        valid = [c for c in canonical if c is not None]
        validity = len(valid) / len(samples)
        unique = len(set(valid)) / len(valid) if valid else 0.0
        return {"validity": validity, "unique": unique, "valid_unique": validity * unique}

    # -- scoring --------------------------------------------------------------------------------------
    def reference(self, root: Path, tables: dict[str, UnitTable]) -> Any:
        """The MOSES reference the samples are scored against (see the module docstring)."""
        from medlearn.molecules.metrics import MosesReference

        o = self.options
        folder = root.parent if root.is_file() else root
        if o.test_file:
            stats = folder / "test_stats_fcd_props.npz"
            sf_stats = folder / "test_scaffolds_stats_fcd.npz"
            sources = {}  # files under MOSES's own names are its sets: say so (fcd_test is FCD/Test then)
            for key, label, path in (
                ("test", "Test", folder / o.test_file),
                ("test_scaffolds", "TestSF", folder / (o.test_scaffolds_file or "-")),
                ("train", "train", self.train_path(root)),
            ):
                if (
                    path.name
                    == {
                        "test": "test.csv.gz",
                        "test_scaffolds": "test_scaffolds.csv.gz",
                        "train": "train.csv.gz",
                    }[key]
                ):
                    sources[key] = f"MOSES {label} ({path})"
            return MosesReference.load(
                test_path=folder / o.test_file,
                test_stats=stats if stats.is_file() else None,
                test_scaffolds_path=folder / o.test_scaffolds_file if o.test_scaffolds_file else None,
                test_scaffolds_stats=sf_stats if sf_stats.is_file() and o.test_scaffolds_file else None,
                scaffold_split=o.test_scaffolds_file is not None,
                mcf_path=_filter_file(folder, "mcf.csv"),
                pains_path=_filter_file(folder, "wehi_pains.csv"),
                train_path=self.train_path(root),
                sources=sources,
            )
        from medlearn.molecules.metrics.filters import read_filter_smarts

        smarts = read_filter_smarts(_filter_file(folder, "mcf.csv"), _filter_file(folder, "wehi_pains.csv"))
        # Novelty against the molecules the model saw (train + val), not the whole file: the held-out Test
        # molecules come from the same file.
        train = [*tables["train"].raw, *tables["val"].raw]
        name = self.train_path(root).name
        sources = {
            "test": f"{len(tables['test']):,} molecules held out from {name} (not the MOSES Test set)",
            "train": f"the {len(train):,} training and validation molecules drawn from {name}",
        }
        return MosesReference.from_smiles(
            list(tables["test"].raw), smarts, train_smiles=train, sources=sources
        )

    def score_generated(self, samples: Sequence[str], reference: Any, split: str) -> dict[str, Any]:
        """metrics.json (CONVENTIONS names, ``ci95`` null) of generated SMILES against ``reference``."""
        from medlearn.molecules.score import metrics_json

        return metrics_json(self.name, samples, reference, split)

    def report_sections(
        self, samples: Sequence[str], metrics: dict[str, Any], train: Sequence[str], model_name: str
    ) -> list[Any]:
        from medlearn.molecules.report import generation_sections

        return generation_sections(samples, metrics, train, model_name, self.canonicalization)


def _filter_file(folder: Path, name: str) -> Path:
    """A MOSES filter list: the dataset folder's copy, else medlearn's (MCF) or RDKit's (PAINS)."""
    if (folder / name).is_file():
        return folder / name
    if name == "mcf.csv":
        return Path(__file__).parent / "data" / "mcf.csv"
    from rdkit import RDConfig

    return Path(RDConfig.RDDataDir) / "Pains" / "wehi_pains.csv"
