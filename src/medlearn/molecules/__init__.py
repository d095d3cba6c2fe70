"""Molecules: SMILES/SDF input, token representations and MOSES-grade distribution metrics.

``io`` reads SMILES from CSV/SMI/SDF files and canonicalises them with an account of every rejected
record; ``representations`` turns SMILES into SMILES or SELFIES token ids (a vocabulary that travels
inside a model bundle); ``metrics`` scores a generated set against the MOSES reference sets with the
MOSES definitions, vectorised. Importing this package loads no chemistry library: RDKit, selfies and
torch are imported by the submodules that need them.
"""
