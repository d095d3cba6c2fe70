"""Pictures of generated molecules for the drug-design report: property histograms and a structure grid.

Distribution metrics (FCD, SNN, ...) condense a generated set into numbers; a chemist judging a generator
looks first at pictures: are drug-likeness (QED), synthetic accessibility (SA), lipophilicity (logP) and
size (molecular weight) distributed like the training molecules, and do the sampled structures look like
sensible chemistry? :func:`property_histograms` draws the first, :func:`molecule_grid` the second.

Properties are the ones the MOSES metrics use (:func:`medlearn.molecules.metrics.descriptors.molecule_properties`:
Crippen logP, RDKit Contrib SA score, QED, molecular weight), so the pictures and the metric table agree.
Invalid SMILES are skipped silently here: validity is reported by the metrics. Figures are built without
pyplot (as in :mod:`medlearn.engine.plots`); render them with
:func:`medlearn.engine.plots.figure_to_data_uri`. RDKit is imported only when a function is called.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from medlearn.engine.plots import png_data_uri
from medlearn.molecules.io import require
from medlearn.molecules.metrics.descriptors import PROPERTY_NAMES, molecule_properties

#: Panels of :func:`property_histograms`, in drawing order: (column of PROPERTY_NAMES, axis label).
HISTOGRAM_PANELS = (
    ("QED", "QED"),
    ("SA", "SA score"),
    ("logP", "logP (Crippen)"),
    ("weight", "molecular weight (Da)"),
)
#: Most molecules :func:`molecule_grid` draws.
MAX_GRID_MOLECULES = 24
_BINS = 40
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _sampled_properties(
    smiles: Sequence[str | None], max_molecules: int, rng: np.random.Generator
) -> np.ndarray:
    """(n, 4) properties (columns PROPERTY_NAMES) of up to ``max_molecules`` valid SMILES, drawn at random.

    SMILES are visited in a random order and parsed until ``max_molecules`` valid ones are found, so a
    large set costs only the molecules drawn, and invalid records never shrink the sample.
    """
    chem = require("rdkit.Chem", "for molecule pictures")
    rdbase = require("rdkit.rdBase", "for molecule pictures")
    candidates = [s for s in smiles if isinstance(s, str) and s.strip()]
    rows: list[tuple[float, float, float, float]] = []
    _quiet = rdbase.BlockLogs()  # RDKit's per-molecule parse errors would flood stderr
    for i in rng.permutation(len(candidates)):
        if len(rows) >= max_molecules:
            break
        mol = chem.MolFromSmiles(candidates[i])
        if mol is None or mol.GetNumAtoms() == 0:
            continue
        try:
            rows.append(molecule_properties(mol))
        except Exception:  # a molecule RDKit parses but cannot describe is skipped like an invalid one
            continue
    del _quiet
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(PROPERTY_NAMES))


def property_histograms(
    generated: Sequence[str | None],
    reference: Sequence[str],
    reference_label: str = "training set",
    max_molecules: int = 5000,
    seed: int = 0,
) -> Figure:
    """2x2 histograms of QED, SA score, logP and molecular weight: valid generated vs reference molecules.

    Each set is subsampled to ``max_molecules`` valid molecules (seeded), drawn as densities on bins shared
    by both sets in each panel; the legend gives the number of molecules drawn. Invalid, empty or
    ``None`` SMILES are skipped. With no valid generated molecule the reference is drawn alone and the
    title says so.
    """
    if max_molecules < 1:
        raise ValueError(f"max_molecules must be >= 1, got {max_molecules}")
    rng = np.random.default_rng(seed)
    gen = _sampled_properties(generated, max_molecules, rng)
    ref = _sampled_properties(reference, max_molecules, rng)
    series = [
        (values, label, color)
        for values, label, color in (
            (gen, f"generated (n={len(gen)})", "tab:orange"),
            (ref, f"{reference_label} (n={len(ref)})", "tab:blue"),
        )
        if len(values)
    ]

    fig = _figure(8.0, 6.0)
    title = f"Molecular properties: generated vs {reference_label}"
    if not len(gen):
        title += " (no valid generated molecules)"
    fig.suptitle(title)
    for ax, (name, xlabel) in zip(fig.subplots(2, 2).ravel(), HISTOGRAM_PANELS):
        column = PROPERTY_NAMES.index(name)
        columns = [values[:, column][np.isfinite(values[:, column])] for values, _, _ in series]
        if not any(c.size for c in columns):
            ax.text(0.5, 0.5, "no valid molecules", ha="center", va="center", transform=ax.transAxes)
        else:
            edges = np.histogram_bin_edges(np.concatenate(columns), bins=_BINS)
            for data, (_, label, color) in zip(columns, series):
                ax.hist(
                    data,
                    bins=edges,
                    density=True,
                    histtype="stepfilled",
                    alpha=0.45,
                    color=color,
                    edgecolor=color,
                    linewidth=1.2,
                    label=label,
                )
            ax.legend(fontsize=7)
        ax.set(xlabel=xlabel, ylabel="density")
        ax.grid(alpha=0.3)
    return fig


def _png_bytes(image: Any) -> bytes:
    """PNG bytes of what ``Draw.MolsToGridImage`` returned (PIL image, PNG bytes or an IPython Image)."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if hasattr(image, "save"):  # PIL image
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    data = getattr(image, "data", None)  # IPython.display.Image in a notebook
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    raise TypeError(f"unexpected MolsToGridImage result {type(image).__name__}")


def _cairo_grid(mols: list[Any], legends: list[str], per_row: int, size: int) -> bytes:
    """The same grid drawn directly with RDKit's Cairo drawer (fallback when MolsToGridImage fails)."""
    draw2d = require("rdkit.Chem.Draw.rdMolDraw2D", "for molecule pictures")
    ncols = min(per_row, len(mols))
    nrows = -(-len(mols) // ncols)
    drawer = draw2d.MolDraw2DCairo(ncols * size, nrows * size, size, size)
    drawer.drawOptions().drawMolsSameScale = False
    drawer.DrawMolecules(mols, legends=legends)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def molecule_grid(
    smiles: Sequence[str], legends: Sequence[str] | None = None, per_row: int = 4, size: int = 220
) -> str:
    """PNG data URI (``data:image/png;base64,...``) of the molecules drawn in a grid.

    Unparsable SMILES are skipped (with their legend); at most :data:`MAX_GRID_MOLECULES` are drawn.
    Each molecule gets a ``size`` x ``size`` cell and rows hold ``per_row`` molecules, so the image is
    ``min(per_row, n) * size`` pixels wide.

    Raises:
        ValueError: ``legends`` does not match ``smiles`` in length, or no SMILES can be drawn.
    """
    if legends is not None and len(legends) != len(smiles):
        raise ValueError(f"molecule_grid got {len(smiles)} SMILES but {len(legends)} legends")
    if per_row < 1 or size < 1:
        raise ValueError(f"per_row and size must be >= 1, got {per_row} and {size}")
    chem = require("rdkit.Chem", "for molecule pictures")
    rdbase = require("rdkit.rdBase", "for molecule pictures")
    labels = list(legends) if legends is not None else [""] * len(smiles)
    mols, kept = [], []
    _quiet = rdbase.BlockLogs()
    for smi, label in zip(smiles, labels):
        mol = chem.MolFromSmiles(smi) if isinstance(smi, str) and smi.strip() else None
        if mol is not None and mol.GetNumAtoms():
            mols.append(mol)
            kept.append(str(label))
        if len(mols) == MAX_GRID_MOLECULES:
            break
    del _quiet
    if not mols:
        raise ValueError(f"molecule_grid: none of the {len(smiles)} SMILES can be drawn")

    draw = require("rdkit.Chem.Draw", "for molecule pictures")
    try:
        options = draw.rdMolDraw2D.MolDrawOptions()
        options.drawMolsSameScale = (
            False  # RDKit's default shrinks small molecules to the largest one's scale
        )
        png = _png_bytes(
            draw.MolsToGridImage(
                mols,
                molsPerRow=per_row,
                subImgSize=(size, size),
                legends=kept,
                returnPNG=False,
                drawOptions=options,
            )
        )
    except Exception:  # e.g. a build without PIL support: draw the grid with Cairo directly
        png = _cairo_grid(mols, kept, per_row, size)
    if not png.startswith(_PNG_SIGNATURE):
        raise RuntimeError("RDKit did not produce a PNG image")
    return png_data_uri(png)
