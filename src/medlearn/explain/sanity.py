"""Sanity checks of an explanation method (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS
2018): an explanation that does not change when the model's weights are randomised, or when the model
learned from shuffled labels, shows the input, not what the model learned.

- :func:`model_randomisation`: cascading randomisation — the layers' weights are re-initialised one by
  one from the output layer down, and the Spearman rank correlation between the original attribution
  and each randomised model's is recorded (of absolute values, as in the paper's figures). It must drop:
  the check passes when the fully randomised model's correlation is below :data:`PASS_BELOW`. Tree
  ensembles (no layers) randomise their trees from the last fitted to the first: split features drawn
  at random and leaf values redrawn with the same spread.
- :func:`rank_correlation` of the attributions of a model trained on shuffled labels (the data
  randomisation test): the caller trains that model (a slow test, a benchmark, or a bundle given to
  ``medlearn explain --shuffled-bundle``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from medlearn.engine.trees import BoostedTrees

#: The stated pass threshold: the rank correlation with the fully randomised model's attribution must be
#: below this (Adebayo et al. find correlations near 0 for methods that depend on the model).
PASS_BELOW = 0.5
#: Most randomisation steps computed (each is one attribution): the top layer, the full model, and
#: evenly spaced cascades between them.
MAX_STEPS = 5


def rank_correlation(
    a: np.ndarray, b: np.ndarray, absolute: bool = True, support: np.ndarray | None = None
) -> float | None:
    """Spearman's rank correlation of two attributions of the same input (flattened; of absolute values
    by default), or None when one of them is constant (no ranking to compare: e.g. an all-zero map).

    ``support`` (a boolean mask of the input's shape) restricts the comparison to the elements that can
    carry an attribution at all: integrated gradients, occlusion and Shapley sampling give exactly 0 to
    an input already at the baseline whatever the weights, so on a sparse input (EHR: most cells are
    "no event") the zeros alone would keep the rank correlation high — the input, not the model.
    """
    from scipy.stats import spearmanr

    x = np.abs(np.asarray(a, float)).ravel() if absolute else np.asarray(a, float).ravel()
    y = np.abs(np.asarray(b, float)).ravel() if absolute else np.asarray(b, float).ravel()
    if support is not None and np.asarray(support).any():
        keep = np.broadcast_to(np.asarray(support, bool), np.shape(a)).ravel()
        x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def randomisable_layers(network: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules holding their own weights, from the output end down (registration order reversed:
    the networks here register their head last)."""
    layers = [
        (name, module)
        for name, module in network.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]
    return layers[::-1]


def randomise_(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise one module's own weights: its ``reset_parameters`` under a seeded generator when it
    has one (torch's default initialisation), else a normal draw with each tensor's own spread."""
    state = torch.random.get_rng_state()
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    try:
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
            return
        with torch.no_grad():
            for p in module.parameters(recurse=False):
                p.normal_(0.0, float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 0.02)
    finally:
        torch.random.set_rng_state(state)


def model_randomisation(
    network: nn.Module,
    explain: Callable[[nn.Module], np.ndarray],
    original: np.ndarray,
    seed: int = 0,
    max_steps: int = MAX_STEPS,
    tree_features: int | None = None,
    support: np.ndarray | None = None,
    signed_methods: bool = False,
) -> list[dict]:
    """Cascading model randomisation of ``network`` (left untouched: a copy is randomised).

    Args:
        network: the explained network.
        explain: the attributions of the units (n, ...) under a given network (same method, inputs and
            targets as ``original``).
        original: ``explain(network)``, already computed.
        tree_features: for a tree ensemble, how many features its trees split on (randomised splits
            draw from all of them); default: the features the fitted trees use.
        support: per unit, the elements compared (see :func:`rank_correlation`); default all.
        signed_methods: the attribution has a sign (integrated gradients, occlusion, Shapley values):
            the check is judged on the signed ranking. Their absolute ranking keeps part of the input's
            own magnitude under any weights (a burst's amplitude, a z-score's size — the "input
            dominance" of gradient x input that Adebayo et al. show), so it is reported beside it.

    Returns:
        One dict per unit: ``{"steps": [{"randomised": k, "of": n, "through": name, "spearman": r}, ...],
        "final": r, "passes": bool, "threshold": PASS_BELOW}``; ``r`` is None where an attribution is
        constant (counted as passing: nothing of the original ranking is left).
    """
    generator = torch.Generator().manual_seed(seed)
    clone = copy.deepcopy(network)
    layers: list[tuple[str, Callable[[], None]]]
    if isinstance(clone, BoostedTrees):
        n = int(clone.output.numel())
        layers = [
            (f"tree {t}", lambda t=t: _randomise_tree_(clone, t, generator, tree_features))
            for t in range(n - 1, -1, -1)
        ]
    else:
        layers = [
            (name or "model", lambda m=m: randomise_(m, generator)) for name, m in randomisable_layers(clone)
        ]
    n_units = len(original)
    if not layers:
        empty = {"steps": [], "final": None, "passes": False, "threshold": PASS_BELOW, "note": "no weights"}
        return [dict(empty) for _ in range(n_units)]
    n = len(layers)
    inner = [int(round(n * j / max(1, max_steps - 1))) for j in range(1, max_steps - 1)]
    checkpoints = sorted({1, n, *[k for k in inner if 1 <= k <= n]})
    steps: list[list[dict]] = [[] for _ in range(n_units)]
    done, through = 0, ""
    for k in checkpoints:
        for name, randomise in layers[done:k]:
            randomise()
            through = name
        done = k
        randomised = explain(clone)
        for i in range(n_units):
            keep = None if support is None else support[i]
            r = rank_correlation(original[i], randomised[i], support=keep)
            signed = rank_correlation(original[i], randomised[i], absolute=False, support=keep)
            steps[i].append(
                {
                    "randomised": k,
                    "of": n,
                    "through": through,
                    "spearman": _round(r),
                    "spearman_signed": _round(signed),
                }
            )
    results = []
    for unit_steps in steps:
        final, signed = unit_steps[-1]["spearman"], unit_steps[-1]["spearman_signed"]
        judged = signed if signed_methods else final
        results.append(
            {
                "steps": unit_steps,
                "final": final,
                "final_signed": signed,
                "judged_on": "signed" if signed_methods else "absolute",
                "passes": judged is None or judged < PASS_BELOW,
                "threshold": PASS_BELOW,
            }
        )
    return results


def _randomise_tree_(trees: BoostedTrees, t: int, generator: torch.Generator, n_features: int | None) -> None:
    """Tree ``t``'s split features drawn uniformly (from ``n_features``, else from those the ensemble
    uses), its leaf values redrawn from a normal with the ensemble's spread of leaf values."""
    with torch.no_grad():
        used = torch.arange(n_features) if n_features else torch.unique(trees.feature)
        pick = torch.randint(0, len(used), trees.feature[t].shape, generator=generator)
        trees.feature[t] = used[pick]
        spread = float(trees.leaf_value.std()) or 1.0
        noise = torch.randn(trees.leaf_value[t].shape, generator=generator, dtype=torch.float64)
        trees.leaf_value[t] = noise * spread


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
