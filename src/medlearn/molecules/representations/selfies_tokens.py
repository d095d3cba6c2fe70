"""SELFIES tokeniser (Krenn et al. 2020, the ``selfies`` library).

Every SELFIES string decodes to a valid molecule, so a generator over SELFIES tokens cannot emit
invalid SMILES; the price is that the round trip returns an equivalent, not identical, SMILES (compare
canonical forms).
"""

from __future__ import annotations

from collections.abc import Sequence

from medlearn.molecules.io import require


class SelfiesTokenizer:
    """SMILES → SELFIES symbols (``[C]``, ``[=Branch1]``, ``[Ring1]``) and back to SMILES."""

    kind = "selfies"

    def __init__(self) -> None:
        self._sf = require("selfies", "for SELFIES tokens")

    def tokenize(self, smiles: str) -> list[str]:
        """SELFIES symbols of ``smiles``.

        Raises:
            ValueError: the selfies library cannot encode the SMILES (invalid, or beyond its
                semantic constraints, e.g. a hypervalent atom); the message names the SMILES.
        """
        try:
            encoded = self._sf.encoder(smiles)
        except self._sf.EncoderError as exc:
            raise ValueError(f"cannot encode SMILES {smiles!r} as SELFIES: {exc}") from exc
        if encoded is None:
            raise ValueError(f"cannot encode SMILES {smiles!r} as SELFIES")
        return list(self._sf.split_selfies(encoded))

    def detokenize(self, tokens: Sequence[str]) -> str:
        """The SMILES decoded from the SELFIES ``tokens`` (always a valid molecule, possibly empty)."""
        return self._sf.decoder("".join(tokens))
