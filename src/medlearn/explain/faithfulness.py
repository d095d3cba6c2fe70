"""Faithfulness of an attribution: deletion and insertion curves (Petsiuk et al., RISE, BMVC 2018; Samek
et al. 2017's region perturbation).

Deletion removes the input's groups (image patches, signal windows, sequence cells or features, see
:func:`medlearn.explain.attribution.groups`) most-attributed first — setting them to the layout's
baseline — and tracks the explained class's probability; insertion starts from the baseline and puts the
most-attributed groups back first. A faithful attribution makes the deletion curve fall faster (a lower
area under it) and the insertion curve rise faster (a higher area) than the same curves in a random
order. Reported: each area, the random orders' mean area, and their ratios (deletion < 1 and insertion
> 1 are better than random).

``beats_random`` needs a margin, not just any difference: the deletion area must be at most
:data:`BEATS_RANDOM_RATIO` (98 %) of the random orders' mean area. With only :data:`N_RANDOM` random
orders the random reference is itself a noisy estimate, and a model that hardly reacts to the input (a
briefly trained one, or an attribution that orders groups no better than chance) gives two areas equal
to three decimals — an ECG bundle showed 0.252 against 0.252 — that a strict ``<`` still counted as a
win. Deleting the most-attributed groups first must remove at least 2 % of the area random deletion
leaves. The ratios are reported unchanged, so a reader can apply a stricter margin.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Points of each curve: 0, 1/STEPS, …, 1 of the groups removed (or inserted).
STEPS = 20
#: Random orders averaged for the reference curves.
N_RANDOM = 3
#: ``beats_random`` when the deletion area is at most this fraction of the random orders' mean area
#: (a 2 % margin, so that a tie or a difference in the third decimal does not count; see above).
BEATS_RANDOM_RATIO = 0.98


def curves(
    scores: nn.Module,
    x: torch.Tensor,
    attribution: np.ndarray,
    target: int,
    group_ids: np.ndarray,
    baseline: float,
    probability: bool = True,
    seed: int = 0,
) -> dict:
    """Deletion and insertion curves of one unit ``x`` (its shape, no batch axis) for class ``target``.

    Args:
        scores: the class-score model (:class:`~medlearn.explain.scores.ClassScores`).
        attribution: of ``x``'s shape; a group's score is the sum of its elements' attributions.
        group_ids: an integer group per element of ``x``.
        probability: track the softmax probability of ``target`` (False: the raw output, regression).
    """
    flat_groups = np.asarray(group_ids).ravel()
    _, inverse = np.unique(flat_groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    group_score = np.bincount(inverse, weights=np.asarray(attribution, float).ravel(), minlength=n_groups)
    order = np.argsort(-group_score, kind="stable")
    rng = np.random.default_rng(seed)
    deletion = _curve(scores, x, order, inverse, baseline, target, probability, delete=True)
    insertion = _curve(scores, x, order, inverse, baseline, target, probability, delete=False)
    random_del, random_ins = [], []
    for _ in range(N_RANDOM):
        shuffled = rng.permutation(n_groups)
        random_del.append(_curve(scores, x, shuffled, inverse, baseline, target, probability, delete=True))
        random_ins.append(_curve(scores, x, shuffled, inverse, baseline, target, probability, delete=False))
    d_auc, dr_auc = _auc(deletion), float(np.mean([_auc(c) for c in random_del]))
    i_auc, ir_auc = _auc(insertion), float(np.mean([_auc(c) for c in random_ins]))
    return {
        "groups": n_groups,
        "deletion_auc": round(d_auc, 4),
        "deletion_auc_random": round(dr_auc, 4),
        "deletion_ratio": _ratio(d_auc, dr_auc),
        "insertion_auc": round(i_auc, 4),
        "insertion_auc_random": round(ir_auc, 4),
        "insertion_ratio": _ratio(i_auc, ir_auc),
        "beats_random": beats_random(d_auc, dr_auc),
        "beats_random_ratio": BEATS_RANDOM_RATIO,
        "deletion_curve": [round(float(v), 4) for v in deletion],
        "insertion_curve": [round(float(v), 4) for v in insertion],
    }


def beats_random(deletion_auc: float, random_auc: float) -> bool:
    """Whether a deletion area beats the random orders' mean area by the stated margin: at most
    :data:`BEATS_RANDOM_RATIO` of it (a tie, or a difference within the margin, does not count; nor does
    a random area of 0, where nothing is left to fall)."""
    return bool(random_auc > 1e-12 and deletion_auc <= BEATS_RANDOM_RATIO * random_auc)


@torch.no_grad()
def _curve(
    scores: nn.Module,
    x: torch.Tensor,
    order: np.ndarray,
    inverse: np.ndarray,
    baseline: float,
    target: int,
    probability: bool,
    delete: bool,
) -> np.ndarray:
    """The tracked output after each step of removing (``delete``) or inserting groups in ``order``."""
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    element_rank = torch.as_tensor(rank[inverse].reshape(tuple(x.shape)), device=x.device)
    cuts = np.linspace(0, len(order), STEPS + 1).round().astype(int)
    batch = []
    for cut in cuts:
        chosen = element_rank < int(cut)  # the first `cut` groups in the order
        keep_x = ~chosen if delete else chosen
        batch.append(torch.where(keep_x, x, torch.full_like(x, baseline)))
    out = scores(torch.stack(batch))
    values = torch.softmax(out, dim=1)[:, target] if probability else out[:, target]
    return values.float().cpu().numpy()


def _auc(curve: np.ndarray) -> float:
    """Area under a curve sampled at evenly spaced fractions of [0, 1] (trapezoid rule)."""
    c = np.asarray(curve, float)
    return float(((c[1:] + c[:-1]) / 2).mean())


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b > 1e-12 else None
