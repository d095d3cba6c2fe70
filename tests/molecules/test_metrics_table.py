"""compute_metrics on tiny hand-checked sets: MOSES definitions, invalid input, duplicates."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np
import pytest

from tests.conftest import require_module

require_module("rdkit")
require_module("fcd")

from rdkit import Chem, DataStructs  # noqa: E402
from rdkit.Chem import Descriptors, rdFingerprintGenerator  # noqa: E402
from rdkit.Chem.Scaffolds import MurckoScaffold  # noqa: E402
from scipy.stats import wasserstein_distance  # noqa: E402

from medlearn.errors import InputError  # noqa: E402
from medlearn.molecules.metrics import MosesReference, compute_metrics  # noqa: E402

MCF1 = "[#6]=&!@[#6]-[#6]#[#7]"  # acyclic C=C-C#N, one of the MOSES medicinal-chemistry filters
REFERENCE = [
    "c1ccc2ccccc2c1",
    "c1ccc(-c2ccccc2)cc1",
    "CCOC(=O)c1ccccc1",
    "CC(=O)Nc1ccc(O)cc1",
    "CCN(CC)CC",
    "O=C(Nc1ccccc1)c1ccccc1",
    "Cc1ccc2[nH]ccc2c1",
    "OCCc1ccncc1",
]
REFERENCE_SF = ["C1CCC2CCCCC2C1", "c1ccc(Cc2ccccc2)cc1", "CCCCO", "NC(=O)c1ccccn1"]
TRAIN = ["CCO", "c1ccc2ccccc2c1"]
GENERATED = [
    "CCO",
    "OCC",
    "c1ccccc1",
    "not a smiles(",
    "",
    "CC(=O)Nc1ccc(O)cc1",
    "c1ccccc1",
    "CC=CC#N",
    "c1ccc(-c2ccccc2)cc1",
    "C1CCC2CCCCC2C1",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> MosesReference:
    with pytest.MonkeyPatch.context() as patch:  # module scope: set our own isolated cache
        patch.setenv("MEDLEARN_CACHE", str(tmp_path_factory.mktemp("cache")))
        return MosesReference.from_smiles(
            REFERENCE, (MCF1,), test_scaffolds_smiles=REFERENCE_SF, train_smiles=TRAIN, n_jobs=1
        )


@pytest.fixture(scope="module")
def table(reference: MosesReference) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compute_metrics(GENERATED, reference, n_jobs=1)


def valid_canonical() -> list[str]:
    mols = [Chem.MolFromSmiles(s) if s else None for s in GENERATED]
    return [Chem.MolToSmiles(m) for m in mols if m is not None]


def morgan(smiles: list[str]) -> list:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    return [generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]


def cosine(a: Counter, b: Counter) -> float:
    keys = sorted(set(a) | set(b))
    u, v = np.array([a[k] for k in keys], float), np.array([b[k] for k in keys], float)
    return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))


def test_keys_are_the_moses_names_in_moses_order(table):
    assert list(table) == [
        "valid",
        "unique@1000",
        "unique@10000",
        "FCD/Test",
        "SNN/Test",
        "Frag/Test",
        "Scaf/Test",
        "FCD/TestSF",
        "SNN/TestSF",
        "Frag/TestSF",
        "Scaf/TestSF",
        "IntDiv",
        "IntDiv2",
        "Filters",
        "logP",
        "SA",
        "QED",
        "weight",
        "Novelty",
    ]


def test_validity_uniqueness_novelty_and_filters_count_by_hand(table):
    assert table["valid"] == pytest.approx(8 / 10)  # "not a smiles(" and "" are invalid
    assert table["unique@1000"] == pytest.approx(6 / 8)  # CCO and benzene twice
    assert table["Novelty"] == pytest.approx(5 / 6)  # of 6 distinct, only CCO is in TRAIN
    assert table["Filters"] == pytest.approx(7 / 8)  # CC=CC#N hits MCF1


def test_snn_and_internal_diversity_match_rdkit_bulk_tanimoto_with_duplicates(table):
    generated, reference = morgan(valid_canonical()), morgan(REFERENCE)
    snn = np.mean([max(DataStructs.BulkTanimotoSimilarity(fp, reference)) for fp in generated])
    pairs = np.array([DataStructs.BulkTanimotoSimilarity(fp, generated) for fp in generated])
    assert table["SNN/Test"] == pytest.approx(snn, abs=1e-6)
    assert table["IntDiv"] == pytest.approx(1 - np.mean(pairs.mean(axis=1)), abs=1e-6)
    assert table["IntDiv2"] == pytest.approx(1 - np.mean(np.sqrt((pairs**2).mean(axis=1))), abs=1e-6)


def test_fragment_and_scaffold_similarity_are_cosines_of_count_vectors(table):
    def fragments(smiles):
        return Counter(
            f
            for s in smiles
            for f in Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(Chem.MolFromSmiles(s))).split(".")
        )

    def scaffolds(smiles):
        found = (MurckoScaffold.GetScaffoldForMol(Chem.MolFromSmiles(s)) for s in smiles)
        return Counter(Chem.MolToSmiles(m) for m in found if m.GetRingInfo().NumRings() >= 2)

    generated = valid_canonical()
    for key, expected in [
        ("Frag/Test", cosine(fragments(REFERENCE), fragments(generated))),
        ("Scaf/Test", cosine(scaffolds(REFERENCE), scaffolds(generated))),
        ("Scaf/TestSF", cosine(scaffolds(REFERENCE_SF), scaffolds(generated))),
    ]:
        assert table[key] == pytest.approx(expected, abs=1e-9), key


def test_property_distance_is_wasserstein_over_valid_molecules_with_duplicates(table):
    weights = [Descriptors.MolWt(Chem.MolFromSmiles(s)) for s in valid_canonical()]
    reference = [Descriptors.MolWt(Chem.MolFromSmiles(s)) for s in REFERENCE]
    assert table["weight"] == pytest.approx(wasserstein_distance(reference, weights), rel=1e-9)


def test_fcd_uses_fcd_package_activations_of_the_valid_canonical_smiles_with_duplicates(table):
    import fcd

    from medlearn.molecules.metrics import frechet_distance

    model = fcd.load_ref_model()
    generated = fcd.get_predictions(model, valid_canonical(), n_jobs=0)
    reference = fcd.get_predictions(model, REFERENCE, n_jobs=0)
    expected = frechet_distance(
        generated.mean(0), np.cov(generated.T), reference.mean(0), np.cov(reference.T)
    )
    assert table["FCD/Test"] == pytest.approx(expected, rel=1e-4)


def test_all_invalid_input_scores_zero_validity_and_nan_elsewhere(reference):
    with pytest.warns(UserWarning):
        result = compute_metrics(["", "C1CC", None, "xyz", float("nan")], reference, n_jobs=1)
    assert result["valid"] == 0.0
    assert all(math.isnan(v) for k, v in result.items() if k != "valid")


def test_an_empty_generated_list_is_an_input_error(reference):
    with pytest.raises(InputError, match="no generated SMILES"):
        compute_metrics([], reference, n_jobs=1)


def test_explicit_train_smiles_override_the_reference_training_set(reference):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compute_metrics(["CCO", "CCN"], reference, train_smiles=["CCN"], n_jobs=1, k=(2,))
    assert result["unique@2"] == 1.0 and result["Novelty"] == 0.5


def test_worker_processes_and_overlapped_chemnet_give_the_same_table(reference, table):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel = compute_metrics(GENERATED, reference, n_jobs=2)
    assert parallel.keys() == table.keys()
    for key, value in table.items():
        assert parallel[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize(
    "reference, generated, expected",
    [
        ({"a": 1, "b": 2}, {"a": 2, "b": 4}, 1.0),  # same direction, different counts
        ({"a": 1}, {"b": 3}, 0.0),  # nothing in common
        ({"a": 1}, {"a": 1, "b": 1}, 1 / math.sqrt(2)),
        ({"a": 3, "b": 4}, {"a": 4, "b": 3}, 24 / 25),
    ],
)
def test_cosine_similarity_of_count_dictionaries_by_hand(reference, generated, expected):
    from medlearn.molecules.metrics import cosine_similarity

    assert cosine_similarity(reference, generated) == pytest.approx(expected)
    assert math.isnan(cosine_similarity(reference, {}))


def test_metrics_json_keeps_fcd_test_and_names_the_reference_it_was_scored_against(reference):
    from medlearn.molecules.score import metrics_json

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        named = MosesReference(
            reference.test,
            reference.test_scaffolds,
            reference.filter_smarts,
            train=reference.train,
            sources={"test": "8 toy molecules (not MOSES Test)"},
        )
        result = metrics_json("toy", GENERATED, named, "generated", n_jobs=1)
    assert "fcd_test" in result["metrics"] and "fcd_testsf" in result["metrics"]
    assert result["reference"] == {"test": "8 toy molecules (not MOSES Test)"}


def test_an_in_memory_reference_describes_its_sets_by_size_unless_named(reference):
    assert reference.sources == {
        "test": "8 SMILES given in memory",
        "test_scaffolds": "4 SMILES given in memory",
        "train": "2 SMILES given in memory",
    }


def test_report_rows_name_the_reference_and_say_when_baselines_do_not_compare():
    from medlearn.molecules.report import baseline_table_html

    metrics = {
        "n": 10,
        "split": "generated",
        "metrics": {
            k: {"value": 0.5, "ci95": None}
            for k in ("validity", "fcd_test", "snn_testsf", "qed_w", "novelty")
        },
        "reference": {
            "test": "1,000 molecules held out from first_5K.smi (not the MOSES Test set)",
            "test_scaffolds": "TestSF file",
            "train": "the 3,800 training molecules",
        },
    }
    table = baseline_table_html(metrics, "char_rnn")
    assert '<th>fcd_test <span class="meta">vs 1,000 molecules held out from first_5K.smi' in table
    assert '<th>snn_testsf <span class="meta">vs TestSF file</span></th>' in table
    assert '<th>novelty <span class="meta">vs the 3,800 training molecules</span></th>' in table
    assert "<th>validity</th>" in table and "Not comparable with the baselines" in table
    metrics["reference"]["test"] = "MOSES Test (/data/moses/test.csv.gz)"
    assert "Not comparable" not in baseline_table_html(metrics, "char_rnn")
