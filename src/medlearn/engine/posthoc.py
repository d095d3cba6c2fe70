"""Post-hoc calibration fitted on validation logits: temperature scaling (Guo et al., ICML 2017), with a
bias term for binary tasks (Platt scaling).

Networks trained with class weighting or to convergence on small data are overconfident and shifted
towards the up-weighted class, so their probabilities cannot be read as risks. ``logit / T + b`` with
``T > 0`` keeps the ranking (AUROC and the operating point's sensitivity are unchanged) and only moves
probabilities, so it is safe after model selection. The fitted values are stored in the bundle and
applied by every consumer of the bundle (:func:`apply_calibration`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

#: Search range of log T: T in [0.05, 20] covers every sensible over/under-confidence.
LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))
#: Search range of the binary bias (logit units).
BIAS_BOUNDS = (-10.0, 10.0)
#: How close (log T, or bias, units) a fitted value must be to a bound to count as stopped by it.
_AT_BOUND = 1e-3


@dataclass(frozen=True)
class Calibration:
    """``logit / temperature + bias`` (bias only for single-logit binary models)."""

    temperature: float = 1.0
    bias: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def at_bound(self) -> list[str]:
        """One sentence per fitted value that sits on the edge of its search range, else ``[]``.

        A value at its bound is the optimiser stopped by the range, not a minimum of the validation
        likelihood: the logits were degenerate (e.g. a constant model, or validation perfectly separated),
        so the calibrated probabilities should not be trusted as risks.
        """
        problems = []
        log_t = float(np.log(self.temperature)) if self.temperature > 0 else -np.inf
        for name, value, shown, (lo, hi), edges in (
            ("temperature", log_t, self.temperature, LOG_T_BOUNDS, (0.05, 20.0)),
            ("bias", self.bias, self.bias, BIAS_BOUNDS, BIAS_BOUNDS),
        ):
            for bound, edge, side in ((lo, edges[0], "lower"), (hi, edges[1], "upper")):
                if abs(value - bound) <= _AT_BOUND or (value < lo if side == "lower" else value > hi):
                    problems.append(
                        f"calibration {name} {shown:.4g} is at the {side} bound of its search "
                        f"range ({edge:g}): the fit was stopped by the range, so the calibrated "
                        "probabilities are not trustworthy (degenerate validation logits?)"
                    )
        return problems


def apply_calibration(logits: torch.Tensor, calibration: Calibration) -> torch.Tensor:
    return logits / calibration.temperature + calibration.bias


def _nll(logits: torch.Tensor, targets: torch.Tensor, kind: str, cal: Calibration) -> float:
    scaled = apply_calibration(logits, cal)
    if kind == "binary":
        return float(nn.functional.binary_cross_entropy_with_logits(scaled[:, 0], targets.double()))
    return float(nn.functional.cross_entropy(scaled, targets.long()))


def fit_calibration(logits: np.ndarray, targets: np.ndarray, kind: str) -> Calibration:
    """Minimise the validation negative log-likelihood over T (and, for binary tasks, the bias).

    Returns the identity for regression, or when there is nothing to fit (a single class in validation).
    A value stopped by its search range is logged as a warning (see :meth:`Calibration.at_bound`).
    """
    from scipy.optimize import minimize, minimize_scalar

    if kind == "regression" or len(np.unique(targets)) < 2:
        return Calibration()
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64)).reshape(len(logits), -1)
    y = torch.as_tensor(np.asarray(targets))
    if kind == "binary":
        result = minimize(
            lambda p: _nll(z, y, kind, Calibration(float(np.exp(p[0])), float(p[1]))),
            x0=np.zeros(2),
            method="L-BFGS-B",
            bounds=[LOG_T_BOUNDS, BIAS_BOUNDS],
            options={"ftol": 1e-12, "gtol": 1e-9},
        )  # tight: a runaway T must reach its bound
        fitted = Calibration(float(np.exp(result.x[0])), float(result.x[1]))
    else:
        result = minimize_scalar(
            lambda log_t: _nll(z, y, kind, Calibration(float(np.exp(log_t)))),
            bounds=LOG_T_BOUNDS,
            method="bounded",
            options={"xatol": 1e-4},
        )
        fitted = Calibration(float(np.exp(result.x)))
    for problem in fitted.at_bound():
        log.warning(problem)
    return fitted


def outputs_to_predictions(logits: torch.Tensor, kind: str) -> np.ndarray:
    """Binary → P(positive) (n,); multiclass → softmax (n, k); regression → values (n,)."""
    if kind == "binary":
        return torch.sigmoid(logits.reshape(len(logits), -1)[:, 0]).numpy()
    if kind == "multiclass":
        return torch.softmax(logits, dim=1).numpy()
    return logits.reshape(len(logits), -1)[:, 0].numpy()
