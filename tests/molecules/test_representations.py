"""SMILES/SELFIES tokenisers and the id vocabulary: lossless round trips and JSON storage."""

from __future__ import annotations

import json

import pytest

from medlearn.molecules.representations import MoleculeCodec, SmilesTokenizer, Vocabulary

SMILES = [
    "CC(=O)Nc1ccc(O)cc1",
    "Clc1ccc(Br)cc1",
    "C[C@@H](N)C(=O)O",
    "c1ccc2[nH]ccc2c1",
    "C[N+](C)(C)C.[Cl-]",
    "C1CC2CCC3CCC4CCC5CCC6CCC7CCC8CCC9CCC%10CCC1C%10C9C8C7C6C5C4C3C2",
    "F/C=C/F",
    "O=S(=O)(O)c1ccccc1",
]


def test_smiles_tokens_keep_halogens_bracket_atoms_and_two_digit_ring_closures():
    tokens = SmilesTokenizer().tokenize("ClC[C@@H](Br)c1cc[nH+]c%10cc%10%(123)")
    assert tokens == [
        "Cl",
        "C",
        "[C@@H]",
        "(",
        "Br",
        ")",
        "c",
        "1",
        "c",
        "c",
        "[nH+]",
        "c",
        "%10",
        "c",
        "c",
        "%10",
        "%(123)",
    ]


@pytest.mark.parametrize("smiles", SMILES)
def test_smiles_tokenizer_round_trips_exactly(smiles):
    tokenizer = SmilesTokenizer()
    assert tokenizer.detokenize(tokenizer.tokenize(smiles)) == smiles


def test_smiles_tokenizer_rejects_characters_outside_smiles_with_their_position():
    with pytest.raises(ValueError, match=r"unexpected 'X' at position 2"):
        SmilesTokenizer().tokenize("CCX")


def test_vocabulary_ids_specials_first_and_frequency_ordered():
    vocab = Vocabulary.build([["C", "C", "O"], ["C", "N"]])
    assert vocab.tokens == ["<pad>", "<bos>", "<eos>", "<unk>", "C", "N", "O"]
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert vocab.encode(["C", "O"], length=6) == [1, 4, 6, 2, 0, 0]
    assert vocab.encode(["Cl"], add_bos=False, add_eos=False) == [vocab.unk_id]
    assert vocab.decode([1, 4, 6, 2, 5, 0]) == ["C", "O"]
    assert vocab.decode([1, 4, 2, 5], stop_at_eos=False) == ["C", "N"]


def test_vocabulary_refuses_silent_truncation_unknown_tokens_in_strict_mode_and_clashes():
    vocab = Vocabulary(["C", "O"])
    with pytest.raises(ValueError, match="exceeds length 3"):
        vocab.encode(["C", "O"], length=3)
    with pytest.raises(ValueError, match=r"not in the vocabulary: \['N'\]"):
        vocab.encode(["C", "N"], strict=True)
    with pytest.raises(ValueError, match="collide"):
        Vocabulary(["C", "<pad>"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.decode([99])


def test_vocabulary_json_round_trip_keeps_ids():
    vocab = Vocabulary.build([SmilesTokenizer().tokenize(s) for s in SMILES], min_count=1)
    restored = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab and restored.tokens == vocab.tokens
    with pytest.raises(ValueError, match="not a vocabulary"):
        Vocabulary.from_dict({"format": "something/else", "tokens": []})


@pytest.mark.parametrize("kind", ["smiles", "selfies"])
def test_codec_encodes_and_decodes_molecules_after_a_json_round_trip(kind):
    from tests.conftest import require_module

    require_module("rdkit")
    from rdkit import Chem

    codec = MoleculeCodec.fit(SMILES, kind=kind)
    restored = MoleculeCodec.from_dict(json.loads(json.dumps(codec.to_dict())))
    assert restored.kind == kind and restored.vocabulary == codec.vocabulary
    for smiles in SMILES:
        ids = restored.encode(smiles)
        assert ids[0] == restored.vocabulary.bos_id and ids[-1] == restored.vocabulary.eos_id
        decoded = restored.decode(ids)
        assert Chem.CanonSmiles(decoded) == Chem.CanonSmiles(smiles)
        if kind == "smiles":
            assert decoded == smiles


def test_selfies_tokens_are_bracketed_symbols():
    codec = MoleculeCodec.fit(["CCO"], kind="selfies")
    assert codec.tokenizer.tokenize("CCO") == ["[C]", "[C]", "[O]"]


def test_encode_batch_pads_to_the_longest_or_given_length():
    codec = MoleculeCodec.fit(["CCO", "C"])
    batch = codec.encode_batch(["CCO", "C"])
    assert batch.shape == (2, 5) and batch[1].tolist() == [1, codec.vocabulary.token_to_id("C"), 2, 0, 0]
    assert codec.encode_batch(["C"], length=8).shape == (1, 8)
    with pytest.raises(ValueError, match="more than length 3"):
        codec.encode_batch(["CCO"], length=3)
