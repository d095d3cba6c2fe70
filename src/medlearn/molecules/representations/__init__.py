"""Molecules as token sequences (SMILES and SELFIES tokenisers and an id vocabulary) and as graphs.

A :class:`MoleculeCodec` (tokeniser + :class:`Vocabulary`) turns a SMILES into integer ids and back;
``to_dict``/``from_dict`` give plain JSON so a generator's bundle carries the exact vocabulary it was
trained with (a different id mapping at sampling time produces garbage, not an error).
:class:`GraphFeaturizer` turns a SMILES into padded atom/bond arrays for graph models (MolGAN-style) and
decodes generated graphs back to SMILES (``None`` when they are not molecules).
"""

from __future__ import annotations

from medlearn.molecules.representations.codec import TOKENIZERS, MoleculeCodec, make_tokenizer
from medlearn.molecules.representations.graphs import BOND_TYPES, GraphFeaturizer, MolGraph
from medlearn.molecules.representations.selfies_tokens import SelfiesTokenizer
from medlearn.molecules.representations.smiles_tokens import SMILES_REGEX, SmilesTokenizer
from medlearn.molecules.representations.vocabulary import SPECIAL_TOKENS, Vocabulary

__all__ = [
    "BOND_TYPES",
    "SMILES_REGEX",
    "SPECIAL_TOKENS",
    "TOKENIZERS",
    "GraphFeaturizer",
    "MolGraph",
    "MoleculeCodec",
    "SelfiesTokenizer",
    "SmilesTokenizer",
    "Vocabulary",
    "make_tokenizer",
]
