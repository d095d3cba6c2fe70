"""Fréchet ChemNet Distance with the ``fcd`` package's ChemNet, computed faster but identically.

``fcd.get_predictions`` one-hot encodes every SMILES into a 350-step float64 array in Python, then runs
ChemNet (two strided convolutions, then two LSTMs) over all 350 steps. Two exact shortcuts:

- the one-hot tensor is built in one scatter from the package's own tokeniser and vocabulary;
- the padding after a SMILES is all zeros, and the convolutions have no bias and SELU(0) = 0, so the
  first LSTM — which reads the sequence *backwards* — starts with a run of zero inputs whose states are
  the same for every molecule. Those states are computed once; each batch (molecules sorted by length)
  starts the first LSTM at the end of its shortest common padding run. The second LSTM still runs over
  every step, as it must (its state differs per molecule).

The activations equal ``fcd.get_predictions`` to float rounding (checked in the tests); the Fréchet
distance is computed as ``fcd.calculate_frechet_distance`` defines it (see :func:`frechet_distance`).
Like ``fcd``, the pad length is ``max(350, longest SMILES + 1)`` over the whole list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch

from medlearn.engine.progress import make_progress
from medlearn.molecules.io import require

_DEFAULT_PAD = 350
_PROBE = "Clc1ccc(Br)cc1[Si](C)(C)C.[Na+]X"


class ChemNetEmbedder:
    """ChemNet's 512-d penultimate activations of SMILES (the FCD feature space).

    Args:
        batch_size: molecules per forward pass; larger batches use the cores better (the LSTM's
            matrix products), at ≈ 0.2 MB of memory per molecule.
    """

    def __init__(self, batch_size: int = 1024) -> None:
        self._fcd = require("fcd", "for the FCD metric")
        self.batch_size = batch_size
        self.model = self._fcd.load_ref_model()
        layers = list(self.model)
        self._convolutions = torch.nn.Sequential(*layers[:6])
        self._lstm1, self._lstm2 = layers[8], layers[11]
        self._vocab = self._fcd_vocabulary()
        self._zero_states: tuple[torch.Tensor, torch.Tensor] | None = None

    def _fcd_vocabulary(self) -> dict[str, int] | None:
        """``fcd``'s token → column map, or ``None`` (then its own slow encoder is used) if a future
        release changes it in a way the probe below would notice."""
        vocab = vars(self._fcd.utils).get("__vocab")
        if not isinstance(vocab, list) or "X" not in vocab:
            return None
        mapping = {token: i for i, token in enumerate(vocab)}
        expected = self._fcd.utils.get_one_hot(_PROBE, pad_len=_DEFAULT_PAD) / len(vocab)
        mine = self._one_hot([_PROBE], _DEFAULT_PAD, mapping)[0].numpy().T
        return mapping if np.allclose(mine, expected) else None

    def _one_hot(self, smiles: Sequence[str], pad_len: int, vocab: dict[str, int] | None) -> torch.Tensor:
        """``(n, vocabulary, pad_len)`` float32 input, scaled by 1/vocabulary as ``fcd`` does."""
        if vocab is None:
            arrays = [self._fcd.utils.get_one_hot(s, pad_len=pad_len) for s in smiles]
            return torch.from_numpy(np.stack(arrays) / arrays[0].shape[1]).float().transpose(1, 2)
        unknown = vocab["X"]
        ids = [[vocab.get(t, unknown) for t in self._fcd.utils.tokenize(s + ".")] for s in smiles]
        lengths = torch.tensor([len(i) for i in ids])
        rows = torch.repeat_interleave(torch.arange(len(ids)), lengths)
        positions = torch.cat([torch.arange(n) for n in lengths.tolist()])
        columns = torch.tensor([token for seq in ids for token in seq])
        out = torch.zeros(len(ids), len(vocab), pad_len)
        out[rows, columns, positions] = 1.0 / len(vocab)
        return out

    def _padding_states(self, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """First-LSTM ``(h, c)`` after k = 0..steps zero inputs, shape ``(steps + 1, hidden)``."""
        if self._zero_states is None or len(self._zero_states[0]) <= steps:
            hidden = self._lstm1.hidden_size
            h, c = torch.zeros(1, 1, hidden), torch.zeros(1, 1, hidden)
            hs, cs = [h[0, 0]], [c[0, 0]]
            zero = torch.zeros(1, 1, self._lstm1.input_size)
            # One step per call: oneDNN builds a primitive per call (~30 ms); the native kernel does not.
            with torch.inference_mode(), torch.backends.mkldnn.flags(enabled=False):
                for _ in range(steps):
                    _, (h, c) = self._lstm1(zero, (h, c))
                    hs.append(h[0, 0])
                    cs.append(c[0, 0])
            self._zero_states = (torch.stack(hs), torch.stack(cs))
        return self._zero_states

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self._convolutions(x).transpose(1, 2)  # (batch, steps, channels)
        batch, steps, _ = features.shape
        nonzero = (features != 0).any(dim=2)
        last_used = int((nonzero * torch.arange(1, steps + 1)).amax())  # steps needed by the longest
        skip = steps - last_used
        hs, cs = self._padding_states(steps)
        start = (hs[skip].expand(1, batch, -1).contiguous(), cs[skip].expand(1, batch, -1).contiguous())
        backward, _ = self._lstm1(torch.flip(features[:, :last_used], [1]), start)
        backward = torch.cat([hs[1 : skip + 1].expand(batch, skip, -1), backward], dim=1)
        output, _ = self._lstm2(torch.flip(backward, [1]))
        return output[:, -1]

    def __call__(self, smiles: Sequence[str], threads: Callable[[], int] | None = None) -> np.ndarray:
        """``(n, 512)`` float32 activations, row-aligned with ``smiles``.

        Args:
            threads: asked before every batch how many torch threads to use (restored afterwards), so
                that a caller running RDKit workers meanwhile can keep ChemNet on one core until they
                finish; on a busy machine one thread was measured faster than two.
        """
        if len(smiles) == 0:
            return np.zeros((0, 512), dtype=np.float32)
        pad_len = max(_DEFAULT_PAD, max(len(s) for s in smiles) + 1)
        order = np.argsort([len(s) for s in smiles], kind="stable")
        out = np.zeros((len(smiles), 512), dtype=np.float32)
        original_threads = torch.get_num_threads()
        try:
            with torch.inference_mode(), make_progress() as progress:
                task = progress.add_task("ChemNet activations", total=len(smiles), status="")
                for start in range(0, len(smiles), self.batch_size):
                    if threads is not None:
                        torch.set_num_threads(max(1, threads()))
                    index = order[start : start + self.batch_size]
                    x = self._one_hot([smiles[i] for i in index], pad_len, self._vocab)
                    out[index] = self._forward(x).numpy()
                    progress.advance(task, len(index))
        finally:
            torch.set_num_threads(original_threads)
        return out


def activation_statistics(
    activations: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``np.cov``, ddof 1) of activations; integer ``weights`` count duplicates,
    giving the same result as repeating the rows."""
    if weights is None:
        return activations.mean(axis=0), np.cov(activations.T)
    weights = np.asarray(weights)
    return (
        np.average(activations, axis=0, weights=weights),
        np.cov(activations.T, fweights=weights.astype(np.int64)),
    )


def _single_threaded_blas() -> AbstractContextManager[object]:
    """One BLAS thread: a 512 × 512 eigendecomposition takes 0.04 s on one core, while spinning BLAS
    threads on a busy machine were measured to take up to 4 s."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn (a core dependency) normally brings it
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance ``|mu1 - mu2|² + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^½)`` of two Gaussians.

    ``fcd.calculate_frechet_distance`` takes ``scipy.linalg.sqrtm(S1 @ S2)``, which costs 7-9 s for
    512 × 512 matrices with SciPy 1.17. For covariance (symmetric PSD) matrices the eigenvalues of
    ``S1 S2`` equal those of the symmetric ``S1^½ S2 S1^½``, so ``Tr((S1 S2)^½) = Σ √λ`` from two
    symmetric eigendecompositions (≈ 0.3 s; agrees with ``fcd`` to ~1e-8, checked in the tests).
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"Gaussians of different dimensions: {mu1.shape} vs {mu2.shape}")
    with _single_threaded_blas():
        values, vectors = np.linalg.eigh(sigma1)
        root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
        product = root @ sigma2 @ root
        trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0.0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)
