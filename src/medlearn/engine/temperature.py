"""Temperature scaling (Guo et al., ICML 2017): one scalar, fitted on validation logits, that turns an
overconfident network's scores into probabilities that can be read as risks.

Dividing logits by ``T > 0`` keeps the ranking (AUROC, the operating point's sensitivity) unchanged and
only moves probabilities, so it is safe to apply after model selection. The fitted ``T`` is stored in the
bundle and applied by every consumer of the bundle.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Search range of log T: T in [0.05, 20] covers every sensible over/under-confidence.
LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))


def _nll(logits: torch.Tensor, targets: torch.Tensor, kind: str, temperature: float) -> float:
    scaled = logits / temperature
    if kind == "binary":
        return float(nn.functional.binary_cross_entropy_with_logits(scaled[:, 0], targets.float()))
    return float(nn.functional.cross_entropy(scaled, targets.long()))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, kind: str) -> float:
    """The temperature minimising the validation negative log-likelihood (1.0 for regression or when
    there is nothing to fit, e.g. a single class in the validation split)."""
    from scipy.optimize import minimize_scalar

    if kind == "regression" or len(np.unique(targets)) < 2:
        return 1.0
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64)).reshape(len(logits), -1)
    y = torch.as_tensor(np.asarray(targets))
    result = minimize_scalar(lambda log_t: _nll(z, y, kind, float(np.exp(log_t))), bounds=LOG_T_BOUNDS,
                             method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))
