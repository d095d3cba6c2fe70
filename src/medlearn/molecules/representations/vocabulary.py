"""Token ↔ integer id mapping with padding, begin, end and unknown tokens, serialisable to JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

#: Default special tokens in id order: ids 0, 1, 2, 3. ``<`` never occurs in SMILES or SELFIES symbols.
SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>", "unk": "<unk>"}
_FORMAT = "medlearn.vocabulary/1"


class Vocabulary:
    """A fixed, ordered token list: specials first (pad=0, bos=1, eos=2, unk=3), then the tokens.

    Padding is id 0 so that zero-initialised batches are padding and ``ignore_index=0`` masks it in a
    loss. Unknown tokens map to ``unk`` instead of raising, because a model can still be scored on a
    molecule with a rare atom; :meth:`encode` can be asked to be strict.

    Examples:
        >>> vocab = Vocabulary.build([["C", "C", "O"], ["C", "N"]])
        >>> vocab.encode(["C", "O"], length=6)
        [1, 4, 6, 2, 0, 0]
        >>> vocab.decode([1, 4, 6, 2, 0, 0])
        ['C', 'O']
    """

    def __init__(self, tokens: Sequence[str], specials: dict[str, str] | None = None) -> None:
        specials = dict(SPECIAL_TOKENS if specials is None else specials)
        if set(specials) != set(SPECIAL_TOKENS):
            raise ValueError(f"specials must name exactly {sorted(SPECIAL_TOKENS)}, got {sorted(specials)}")
        special_list = [specials[role] for role in SPECIAL_TOKENS]
        if len(set(special_list)) != len(special_list):
            raise ValueError(f"special tokens must be distinct, got {special_list}")
        clash = sorted(set(tokens) & set(special_list))
        if clash:
            raise ValueError(f"tokens {clash} collide with special tokens; choose other specials")
        if len(set(tokens)) != len(tokens):
            duplicates = sorted(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"duplicate tokens in vocabulary: {duplicates}")
        self.specials = specials
        self._id_to_token = special_list + list(tokens)
        self._token_to_id = {token: i for i, token in enumerate(self._id_to_token)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(len(SPECIAL_TOKENS))

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], min_count: int = 1, specials: dict[str, str] | None = None
    ) -> Vocabulary:
        """The vocabulary of a corpus: tokens seen at least ``min_count`` times, most frequent first.

        Ties are broken alphabetically so that the same corpus always gives the same ids.
        """
        counts = Counter(token for tokens in token_lists for token in tokens)
        kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        return cls(kept, specials)

    def __len__(self) -> int:
        return len(self._id_to_token)

    def __contains__(self, token: object) -> bool:
        return token in self._token_to_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} ids incl. {len(SPECIAL_TOKENS)} specials)"

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order, specials included."""
        return list(self._id_to_token)

    def token_to_id(self, token: str) -> int:
        return self._token_to_id.get(token, self.unk_id)

    def id_to_token(self, index: int) -> str:
        if not 0 <= index < len(self._id_to_token):
            raise ValueError(f"id {index} is outside the vocabulary (0..{len(self._id_to_token) - 1})")
        return self._id_to_token[index]

    def encode(
        self,
        tokens: Sequence[str],
        add_bos: bool = True,
        add_eos: bool = True,
        length: int | None = None,
        strict: bool = False,
    ) -> list[int]:
        """Ids of ``tokens``, framed by bos/eos and right-padded with ``pad`` to ``length`` if given.

        Raises:
            ValueError: the sequence is longer than ``length`` (truncating a molecule would silently
                change it), or ``strict`` and a token is not in the vocabulary.
        """
        if strict:
            unknown = sorted({t for t in tokens if t not in self._token_to_id})
            if unknown:
                raise ValueError(f"tokens not in the vocabulary: {unknown}")
        ids = [self._token_to_id.get(t, self.unk_id) for t in tokens]
        ids = [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos
        if length is not None:
            if len(ids) > length:
                raise ValueError(f"sequence of {len(ids)} ids (with bos/eos) exceeds length {length}")
            ids += [self.pad_id] * (length - len(ids))
        return ids

    def decode(self, ids: Iterable[int], stop_at_eos: bool = True) -> list[str]:
        """Tokens of ``ids`` without bos and pad; stops at the first eos (a sampler's end of molecule)."""
        tokens = []
        for index in ids:
            index = int(index)
            if index == self.eos_id and stop_at_eos:
                break
            if index in (self.bos_id, self.pad_id, self.eos_id):
                continue
            tokens.append(self.id_to_token(index))
        return tokens

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the format tag, the special tokens by role and all tokens in id order."""
        return {"format": _FORMAT, "specials": dict(self.specials), "tokens": list(self._id_to_token)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        """Rebuild a vocabulary stored by :meth:`to_dict`, checking that the ids are unchanged."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(
                f"not a vocabulary in format {_FORMAT!r}: "
                f"{data.get('format') if isinstance(data, dict) else type(data).__name__}"
            )
        specials, tokens = data["specials"], data["tokens"]
        expected = [specials[role] for role in SPECIAL_TOKENS]
        if tokens[: len(expected)] != expected:
            raise ValueError(f"vocabulary must start with the special tokens {expected}, got {tokens[:4]}")
        return cls(tokens[len(expected) :], specials)
