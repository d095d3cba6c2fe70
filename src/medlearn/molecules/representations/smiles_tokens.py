"""SMILES tokeniser: the regular expression of Schwaller et al. (Molecular Transformer, 2019).

Character-level tokenisation splits ``Cl`` into ``C`` + ``l`` and ``[nH]`` into five symbols a model must
learn to reassemble; this regex keeps two-letter halogens, whole bracket atoms (``[nH]``, ``[C@@H]``,
``[O-]``) and two-digit ring closures (``%10``, and ``%(123)``) as single tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: The standard SMILES token pattern (bracket atoms, Br/Cl, organic subset, bonds, branches, ring closures).
SMILES_REGEX = (
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$"
    r"|%\([0-9]{3}\)|%[0-9]{2}|[0-9])"
)
_PATTERN = re.compile(SMILES_REGEX)


class SmilesTokenizer:
    """Split a SMILES into tokens and join them back, losslessly.

    Examples:
        >>> SmilesTokenizer().tokenize("ClC1=CC=CC=C1[nH+]%10")
        ['Cl', 'C', '1', '=', 'C', 'C', '=', 'C', 'C', '=', 'C', '1', '[nH+]', '%10']
    """

    kind = "smiles"

    def tokenize(self, smiles: str) -> list[str]:
        """Tokens whose concatenation is exactly ``smiles``.

        Raises:
            ValueError: a character outside SMILES syntax (the message gives its position), since a
                silently dropped character would change the molecule.
        """
        tokens = _PATTERN.findall(smiles)
        if sum(map(len, tokens)) != len(smiles):
            position = 0
            for match in _PATTERN.finditer(smiles):
                if match.start() != position:
                    break
                position = match.end()
            raise ValueError(
                f"cannot tokenise SMILES {smiles!r}: unexpected {smiles[position]!r} at position {position}"
            )
        return tokens

    def detokenize(self, tokens: Sequence[str]) -> str:
        """The SMILES spelled by ``tokens``."""
        return "".join(tokens)
