"""A tokeniser and its vocabulary as one object: SMILES ↔ ids, stored in a bundle as plain JSON."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from medlearn.molecules.representations.selfies_tokens import SelfiesTokenizer
from medlearn.molecules.representations.smiles_tokens import SmilesTokenizer
from medlearn.molecules.representations.vocabulary import Vocabulary


class Tokenizer(Protocol):
    kind: str

    def tokenize(self, smiles: str) -> list[str]: ...

    def detokenize(self, tokens: Sequence[str]) -> str: ...


#: Tokeniser classes by the ``kind`` stored in a codec's dict.
TOKENIZERS: dict[str, type] = {"smiles": SmilesTokenizer, "selfies": SelfiesTokenizer}


def make_tokenizer(kind: str) -> Tokenizer:
    """The tokeniser named ``kind`` (``"smiles"`` or ``"selfies"``)."""
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {kind!r}; choose one of {sorted(TOKENIZERS)}")
    return TOKENIZERS[kind]()


class MoleculeCodec:
    """SMILES → token ids → SMILES with a fixed tokeniser and vocabulary.

    Examples:
        >>> codec = MoleculeCodec.fit(["CCO", "c1ccccc1Cl"], kind="smiles")
        >>> codec.decode(codec.encode("CCO"))
        'CCO'
    """

    def __init__(self, tokenizer: Tokenizer, vocabulary: Vocabulary) -> None:
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary

    @classmethod
    def fit(cls, smiles: Iterable[str], kind: str = "smiles", min_count: int = 1) -> MoleculeCodec:
        """Build the vocabulary of a training corpus."""
        tokenizer = make_tokenizer(kind)
        return cls(tokenizer, Vocabulary.build((tokenizer.tokenize(s) for s in smiles), min_count))

    @property
    def kind(self) -> str:
        return self.tokenizer.kind

    def encode(self, smiles: str, length: int | None = None) -> list[int]:
        """bos + token ids + eos, padded to ``length`` if given."""
        return self.vocabulary.encode(self.tokenizer.tokenize(smiles), length=length)

    def encode_batch(self, smiles: Sequence[str], length: int | None = None) -> np.ndarray:
        """An ``(n, length)`` int64 array (``length`` defaults to the longest encoded molecule)."""
        encoded = [self.vocabulary.encode(self.tokenizer.tokenize(s)) for s in smiles]
        width = max((len(e) for e in encoded), default=0) if length is None else length
        out = np.full((len(encoded), width), self.vocabulary.pad_id, dtype=np.int64)
        for row, ids in enumerate(encoded):
            if len(ids) > width:
                raise ValueError(f"{smiles[row]!r} needs {len(ids)} ids, more than length {width}")
            out[row, : len(ids)] = ids
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The SMILES spelled by ``ids`` up to the first eos (SELFIES are decoded to SMILES)."""
        return self.tokenizer.detokenize(self.vocabulary.decode(ids))

    def to_dict(self) -> dict[str, Any]:
        return {"tokenizer": self.kind, "vocabulary": self.vocabulary.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoleculeCodec:
        return cls(make_tokenizer(data["tokenizer"]), Vocabulary.from_dict(data["vocabulary"]))
