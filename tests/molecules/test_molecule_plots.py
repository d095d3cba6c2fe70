"""Report pictures of molecules: property histograms (generated vs reference) and the structure grid."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from tests.conftest import require_module

require_module("rdkit")

from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402
from rdkit import Chem  # noqa: E402
from rdkit.Chem import QED, Crippen, Descriptors  # noqa: E402

from medlearn.engine.plots import figure_to_data_uri  # noqa: E402
from medlearn.molecules.plots import molecule_grid, property_histograms  # noqa: E402

GENERATED = ["CCO", "not_a_smiles", None, "c1ccccc1O", ""]
REFERENCE = ["CC(=O)Nc1ccc(O)cc1", "CCN", "c1ccccc1", "CCCCCC", "OCCO", "CC(=O)Oc1ccccc1C(=O)O"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def series_labels(ax) -> set[str]:
    return {p.get_label() for p in ax.patches if not p.get_label().startswith("_")}


def decoded(uri: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return base64.b64decode(uri[len(prefix) :])


def test_histograms_have_four_panels_with_both_series_and_skip_invalid():
    fig = property_histograms(GENERATED, REFERENCE, reference_label="train")
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert len(axes) == 4
    assert [ax.get_xlabel() for ax in axes] == ["QED", "SA score", "logP (Crippen)", "molecular weight (Da)"]
    for ax in axes:
        # only the 2 valid generated SMILES count; the invalid, None and empty ones are skipped silently
        assert series_labels(ax) == {"generated (n=2)", "train (n=6)"}
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["generated (n=2)", "train (n=6)"]
    assert "no valid" not in fig._suptitle.get_text()
    assert decoded(figure_to_data_uri(fig)).startswith(PNG_SIGNATURE)


def test_histogram_values_are_the_rdkit_properties():
    smiles = ["CCO", "c1ccccc1O"]
    fig = property_histograms(smiles, smiles, reference_label="same")
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    expected = {
        "QED": [QED.qed(m) for m in mols],
        "logP (Crippen)": [Crippen.MolLogP(m) for m in mols],
        "molecular weight (Da)": [Descriptors.MolWt(m) for m in mols],
    }
    for ax in fig.get_axes():
        # both series are identical, so the shared bins span exactly their values
        lo, hi = ax.patches[0].get_path().get_extents().intervalx
        if ax.get_xlabel() in expected:
            values = expected[ax.get_xlabel()]
            assert (lo, hi) == pytest.approx((min(values), max(values)))
        elif ax.get_xlabel() == "SA score":
            assert 1.0 <= lo < hi <= 10.0


def test_histograms_subsample_reproducibly():
    reference = [("C" * n) + "O" for n in range(1, 13)]
    first = property_histograms(["CCO", "CCCN"], reference, max_molecules=5, seed=3)
    again = property_histograms(["CCO", "CCCN"], reference, max_molecules=5, seed=3)
    assert series_labels(first.get_axes()[0]) == {"generated (n=2)", "training set (n=5)"}
    paths = [[p.get_path().vertices for p in fig.get_axes()[3].patches] for fig in (first, again)]
    for a, b in zip(*paths):
        np.testing.assert_array_equal(a, b)


def test_histograms_without_valid_generated_show_reference_only():
    fig = property_histograms(["not_a_smiles", None], REFERENCE)
    assert "no valid generated molecules" in fig._suptitle.get_text()
    assert len(fig.get_axes()) == 4
    for ax in fig.get_axes():
        assert series_labels(ax) == {"training set (n=6)"}


def test_molecule_grid_is_a_png_of_the_expected_width():
    per_row, size = 3, 150
    smiles = ["CCO", "bad(", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CCN", "OCCO"]
    uri = molecule_grid(smiles, legends=[f"m{i}" for i in range(len(smiles))], per_row=per_row, size=size)
    data = decoded(uri)
    assert data.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(data))
    assert image.width == per_row * size
    assert image.height == 2 * size  # 5 drawable molecules -> 2 rows of 3


def test_molecule_grid_caps_the_number_of_molecules():
    image = Image.open(io.BytesIO(decoded(molecule_grid(["CCO"] * 40, per_row=4, size=100))))
    assert (image.width, image.height) == (400, 600)  # 24 molecules -> 6 rows


def test_molecule_grid_rejects_undrawable_input():
    with pytest.raises(ValueError, match="none of the"):
        molecule_grid(["not_a_smiles", "C1CC", ""])
    with pytest.raises(ValueError, match="legends"):
        molecule_grid(["CCO"], legends=["a", "b"])
