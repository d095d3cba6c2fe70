"""Molecules benchmark: the MOSES table vs a one-molecule-at-a-time loop, and generators' sampling speed.

What is measured
----------------
1. References. ``MosesReference.load()`` on the full MOSES files (Test 176,074 and TestSF 176,225
   SMILES, the shipped FCD/property statistics, the 1.58M training SMILES for Novelty). The first run
   with an empty ``MEDLEARN_CACHE`` computes and caches the fingerprint/fragment/scaffold statistics
   (the "uncached build"); later runs read the cache. The training set is loaded once and handed to
   both implementations, so neither pays for reading it in the timed part.
2. medlearn: ``compute_metrics`` on N molecules (default 30,000 sampled from test or train with a fixed
   seed), all 19 MOSES keys, wall time from SMILES to table with the cached references.
3. The loop: what a straightforward script does with RDKit and ``fcd`` — per molecule
   ``MolFromSmiles``/``MolToSmiles``, ``GetMorganFingerprintAsBitVect``, BRICS fragments, Murcko
   scaffold, the MOSES filter function (every SMARTS on the H-added molecule), ``MolLogP``, SA, QED,
   ``MolWt``; SNN and IntDiv with ``DataStructs.BulkTanimotoSimilarity`` per molecule; FCD with
   ``fcd.get_predictions`` (activations computed once, used for both references) and
   ``fcd.calculate_frechet_distance``. The loop runs on a subsample and is extrapolated to N:
   per-molecule work and FCD activations linearly (``--loop-n`` molecules), SNN linearly from
   ``--snn-queries`` queries against the full references, IntDiv quadratically from all pairs of the
   ``--loop-n`` molecules; the two Fréchet distances are a constant. The extrapolation method is
   printed beside every figure.
4. Agreement: medlearn's table on the same ``--loop-n`` molecules against the loop's values (SNN on the
   ``--snn-queries`` subset), printed with the absolute difference.

Both sides use the same processes budget: medlearn with ``--n-jobs`` processes (default: all CPUs) plus
torch's threads; the loop single-process as written (fcd's DataLoader uses one worker).

5. Sampling (``--bundle DIR``, repeatable): each generator bundle samples ``--sample-n`` molecules the way
   ``medlearn generate`` does (batches of 1,000 rows decoded together), against a plain loop drawing one
   molecule at a time from the same model (batch of 1, extrapolated from ``--loop-samples``). Molecules
   per second of both and the ratio.

Run: ``python benchmarks/molecules.py [--n 30000] [--source test|train] [--no-loop] [--no-metrics]
[--bundle runs/charrnn/bundle ...]``.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import warnings
from collections import Counter
from typing import Any

import numpy as np


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30_000, help="generated molecules to score")
    parser.add_argument("--source", choices=["test", "train"], default="test", help="where to sample them")
    parser.add_argument("--loop-n", type=int, default=1000, help="molecules the loop scores (extrapolated)")
    parser.add_argument("--snn-queries", type=int, default=100, help="molecules the loop's SNN scores")
    parser.add_argument("--n-jobs", type=int, default=None, help="medlearn CPUs (default: all)")
    parser.add_argument("--no-metrics", action="store_true", help="skip the metric table (sampling only)")
    parser.add_argument("--bundle", action="append", default=[], help="generator bundle to time sampling of")
    parser.add_argument("--sample-n", type=int, default=30_000, help="molecules each bundle samples")
    parser.add_argument(
        "--loop-samples", type=int, default=200, help="molecules the one-at-a-time loop draws"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads for sampling (default: torch's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-loop", action="store_true", help="only time medlearn (e.g. a cold-cache run)")
    return parser.parse_args()


class LoopBaseline:
    """The one-molecule-at-a-time MOSES computation (molsets 0.3.1 semantics) with RDKit and fcd."""

    def __init__(self, reference: Any, train: frozenset[str]) -> None:
        import fcd
        from rdkit import Chem, DataStructs

        self.reference, self.train = reference, train
        self.model = fcd.load_ref_model()
        self.patterns = [Chem.MolFromSmarts(s) for s in reference.filter_smarts]
        self.ref_fps = {}
        for ref in reference.references:  # distinct reference fingerprints, as RDKit bit vectors
            bits = np.unpackbits(ref.fingerprints.packed, axis=1)
            vectors = []
            for row in bits:
                vector = DataStructs.ExplicitBitVect(bits.shape[1])
                vector.SetBitsFromList(np.flatnonzero(row).tolist())
                vectors.append(vector)
            self.ref_fps[ref.name] = vectors

    def per_molecule(self, smiles: list[str]) -> dict[str, Any]:
        from rdkit import Chem
        from rdkit.Chem import QED, AllChem, Crippen, Descriptors
        from rdkit.Chem.Scaffolds import MurckoScaffold
        from rdkit.Contrib.SA_Score import sascorer

        canonical = []
        for s in smiles:
            mol = Chem.MolFromSmiles(s) if s else None
            canonical.append(Chem.MolToSmiles(mol) if mol is not None else None)
        valid = [c for c in canonical if c is not None]
        out: dict[str, Any] = {
            "valid": valid,
            "n": len(smiles),
            "fps": [],
            "frags": Counter(),
            "scafs": Counter(),
            "filters": [],
            "props": {k: [] for k in ("logP", "SA", "QED", "weight")},
        }
        for s in valid:
            mol = Chem.MolFromSmiles(s)
            out["fps"].append(AllChem.GetMorganFingerprintAsBitVect(mol, 2, nBits=1024))
            out["frags"].update(Chem.MolToSmiles(AllChem.FragmentOnBRICSBonds(mol)).split("."))
            try:
                scaffold = MurckoScaffold.GetScaffoldForMol(mol)
                scaffold_smiles = Chem.MolToSmiles(scaffold)
                if scaffold_smiles and scaffold.GetRingInfo().NumRings() >= 2:
                    out["scafs"][scaffold_smiles] += 1
            except Exception:
                pass
            out["filters"].append(self._passes(mol))
            out["props"]["logP"].append(Crippen.MolLogP(mol))
            out["props"]["SA"].append(sascorer.calculateScore(mol))
            out["props"]["QED"].append(QED.qed(mol))
            out["props"]["weight"].append(Descriptors.MolWt(mol))
        return out

    def _passes(self, mol: Any) -> bool:
        from rdkit import Chem

        ring_info = mol.GetRingInfo()
        if ring_info.NumRings() != 0 and any(len(x) >= 8 for x in ring_info.AtomRings()):
            return False
        h_mol = Chem.AddHs(mol)
        if any(atom.GetFormalCharge() != 0 for atom in mol.GetAtoms()):
            return False
        if any(atom.GetSymbol() not in {"C", "N", "S", "O", "F", "Cl", "Br", "H"} for atom in mol.GetAtoms()):
            return False
        if any(h_mol.HasSubstructMatch(p) for p in self.patterns):
            return False
        smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
        return bool(smiles) and Chem.MolFromSmiles(smiles) is not None

    def fcd_activations(self, valid: list[str]) -> np.ndarray:
        import fcd

        return fcd.get_predictions(self.model, valid)

    def frechet(self, activations: np.ndarray) -> dict[str, float]:
        import fcd

        mu, sigma = activations.mean(0), np.cov(activations.T)
        return {
            ref.name: float(fcd.calculate_frechet_distance(mu, sigma, ref.fcd_mu, ref.fcd_sigma))
            for ref in self.reference.references
        }

    def snn(self, fps: list) -> dict[str, np.ndarray]:
        from rdkit import DataStructs

        return {
            name: np.array([max(DataStructs.BulkTanimotoSimilarity(fp, ref)) for fp in fps])
            for name, ref in self.ref_fps.items()
        }

    @staticmethod
    def int_div(fps: list) -> tuple[float, float]:
        from rdkit import DataStructs

        pairs = np.array([DataStructs.BulkTanimotoSimilarity(fp, fps) for fp in fps])
        return 1 - float(pairs.mean(axis=1).mean()), 1 - float(np.sqrt((pairs**2).mean(axis=1)).mean())

    def table(
        self,
        mol: dict[str, Any],
        activations: np.ndarray,
        snn: dict[str, np.ndarray],
        int_div: tuple[float, float],
        fcd: dict[str, float],
    ) -> dict[str, float]:
        from scipy.spatial.distance import cosine
        from scipy.stats import wasserstein_distance

        def cos(ref: dict[str, int], gen: Counter) -> float:
            keys = sorted(set(ref) | set(gen))
            return 1 - cosine([ref.get(k, 0) for k in keys], [gen.get(k, 0) for k in keys])

        valid = mol["valid"]
        table = {"valid": len(valid) / mol["n"], "unique@1000": len(set(valid[:1000])) / len(valid[:1000])}
        for ref in self.reference.references:
            table[f"FCD/{ref.name}"] = fcd[ref.name]
            table[f"SNN/{ref.name}"] = float(snn[ref.name].mean())
            table[f"Frag/{ref.name}"] = cos(ref.fragments, mol["frags"])
            table[f"Scaf/{ref.name}"] = cos(ref.scaffolds, mol["scafs"])
        table["IntDiv"], table["IntDiv2"] = int_div
        table["Filters"] = float(np.mean(mol["filters"]))
        for name, values in mol["props"].items():
            table[name] = float(wasserstein_distance(self.reference.test.properties[name], values))
        distinct = set(valid)
        table["Novelty"] = len(distinct - self.train) / len(distinct)
        return table


def timed(func: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = func(*args)
    return result, time.perf_counter() - start


def sampling_speed(bundle_path: str, n: int, loop_n: int) -> None:
    """Batched sampling through the bundle vs one molecule at a time from the same model."""
    import torch

    from medlearn.engine.bundle import load_bundle
    from medlearn.molecules.io import canonicalize
    from medlearn.molecules.tasks import codec_of

    bundle = load_bundle(bundle_path)
    samples, t_batched = timed(lambda: bundle.generate(n, seed=0))
    codec, model = codec_of(bundle.preprocessing), bundle.model
    generator = torch.Generator().manual_seed(0)

    def one_at_a_time() -> list[str]:
        return [codec.decode(model.sample(1, generator=generator)[0].tolist()) for _ in range(loop_n)]

    looped, t_loop = timed(one_at_a_time)
    rate_batched, rate_loop = n / t_batched, loop_n / t_loop
    valid = sum(c is not None for c in canonicalize(samples)[0]) / len(samples)
    print(
        f"\nsampling {bundle.meta.model.name} ({bundle_path}): {n:,} molecules in {t_batched:.1f} s = "
        f"{rate_batched:,.0f}/s (validity {valid:.3f}); one at a time {rate_loop:,.1f}/s "
        f"(from {loop_n}); RATIO {rate_batched / rate_loop:.0f}x"
    )


def main() -> None:
    args = parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.bundle:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other jobs slow both sides)")
    for bundle_path in args.bundle:
        sampling_speed(bundle_path, args.sample_n, args.loop_samples)
    if args.no_metrics:
        return
    from medlearn.molecules.io import read_smiles
    from medlearn.molecules.metrics import MosesReference, compute_metrics
    from medlearn.molecules.metrics.similarity import nearest_neighbour_similarity
    from medlearn.paths import cache_dir, data_root

    warnings.filterwarnings("ignore")
    cached_before = set(cache_dir("molecules", "reference").glob("*.npz"))
    reference, t_ref = timed(lambda: MosesReference.load(n_jobs=args.n_jobs))
    built = set(cache_dir("molecules", "reference").glob("*.npz")) - cached_before
    how = f"UNCACHED build of {len(built)} reference sets" if built else "from cache"
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other jobs slow both sides)")
    print(f"references: {t_ref:.1f} s ({how})")
    train, t_train = timed(reference.train_smiles)
    print(f"training set for Novelty: {len(train):,} SMILES read in {t_train:.1f} s (not timed below)")

    pool = [s for s in read_smiles(data_root() / "molecules" / "moses" / f"{args.source}.csv.gz") if s]
    sample = random.Random(args.seed).sample(pool, args.n)
    timings: dict[str, float] = {}
    table, t_ours = timed(
        lambda: compute_metrics(sample, reference, train_smiles=train, n_jobs=args.n_jobs, timings=timings)
    )
    print(
        f"\nmedlearn compute_metrics on {args.n:,} {args.source} molecules: {t_ours:.1f} s "
        f"({', '.join(f'{k} {v:.1f}' for k, v in timings.items())})"
    )
    for key, value in table.items():
        print(f"  {key:12s} {value:.4f}")
    if args.no_loop:
        return

    m, q = min(args.loop_n, args.n), min(args.snn_queries, args.loop_n)
    subset = sample[:m]
    loop = LoopBaseline(reference, train)
    mol, t_mol = timed(loop.per_molecule, subset)
    activations, t_act = timed(loop.fcd_activations, mol["valid"])
    fcd_values, t_frechet = timed(loop.frechet, activations)
    snn, t_snn = timed(loop.snn, mol["fps"][:q])
    int_div, t_int = timed(loop.int_div, mol["fps"])
    scale = args.n / m
    estimate = {
        f"per-molecule RDKit (linear from {m})": t_mol * scale,
        f"FCD activations (linear from {m})": t_act * scale,
        "Frechet distances x2 (constant)": t_frechet,
        f"SNN x2 (linear from {q} queries)": t_snn * args.n / q,
        f"IntDiv all pairs (quadratic from {m})": t_int * scale**2,
    }
    loop_total = sum(estimate.values())
    print(f"\nloop, extrapolated to {args.n:,} molecules:")
    for name, seconds in estimate.items():
        print(f"  {name:42s} {seconds:9.1f} s")
    print(f"  {'total':42s} {loop_total:9.1f} s")
    print(f"\nRATIO loop / medlearn = {loop_total:.0f} s / {t_ours:.0f} s = {loop_total / t_ours:.1f}x")

    ours = compute_metrics(subset, reference, train_smiles=train, n_jobs=args.n_jobs, k=(1000,))
    theirs = loop.table(mol, activations, snn, int_div, fcd_values)
    from medlearn.molecules.metrics.descriptors import describe_chunk, init_worker

    init_worker(reference.filter_smarts)
    query = describe_chunk(mol["valid"][:q], properties=False, filters=False).fingerprints
    for ref in reference.references:  # the loop's SNN covers only the first q molecules
        ours[f"SNN/{ref.name}"] = float(nearest_neighbour_similarity(query, ref.fingerprints).mean())
    print(f"\nagreement on the same {m} molecules (SNN on the first {q}):")
    worst = 0.0
    for key in theirs:
        diff = abs(ours[key] - theirs[key])
        worst = max(worst, diff / max(1.0, abs(theirs[key])))
        print(f"  {key:12s} medlearn {ours[key]:10.6f}  loop {theirs[key]:10.6f}  |diff| {diff:.2e}")
    print(f"largest relative difference: {worst:.1e}")


if __name__ == "__main__":
    main()
