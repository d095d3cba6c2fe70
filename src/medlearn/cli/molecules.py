"""Molecule commands: ``mol-metrics``, ``generate`` and ``optimize`` (argument parsing only; the work is in
:mod:`medlearn.molecules` and the engine)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated

import typer

from medlearn.api import MAX_THREADS
from medlearn.cli import (
    Device,
    Force,
    Quiet,
    Threads,
    _out_dir,
    _out_file,
    _positive_finite,
    _setup,
    app,
    handles_errors,
)
from medlearn.engine.progress import info
from medlearn.errors import InputError

#: ``-n`` / ``--top-k`` above this is a typo (ten million molecules already take hours to sample).
MAX_SAMPLES = 10_000_000
#: Seeds are 32-bit (numpy's and torch's generators both take them).
MAX_SEED = 2**32 - 1
#: ``--temperature`` below this divides the logits into overflow (inf, then NaN probabilities).
MIN_TEMPERATURE = 0.01


@app.command("mol-metrics")
@handles_errors
def mol_metrics(
    smiles_file: Annotated[
        Path, typer.Argument(help="CSV/SMI/SDF (.gz) whose SMILES column is SMILES or smiles.")
    ],
    out: Annotated[Path, typer.Option("--out", help="metrics.json to write.")],
    train: Annotated[
        Path | None, typer.Option("--train", help="Training SMILES for novelty (default: MOSES train).")
    ] = None,
    test: Annotated[
        Path | None, typer.Option("--test", help="Reference SMILES (default: MOSES test).")
    ] = None,
    test_scaffolds: Annotated[
        Path | None,
        typer.Option("--test-scaffolds", help="Scaffold-split reference (default: MOSES test_scaffolds)."),
    ] = None,
    n_jobs: Annotated[int | None, typer.Option("--n-jobs", help="CPUs to use (default: all).")] = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """The MOSES metric table of a SMILES file.

    Validity, uniqueness, novelty, diversity, filters, FCD/SNN/Frag/Scaf and properties.
    """
    _setup(quiet)
    from medlearn.molecules.score import score_smiles_file

    if n_jobs is not None and not 1 <= n_jobs <= MAX_THREADS:
        raise InputError(
            f"--n-jobs {n_jobs}: expected a number of CPUs from 1 to {MAX_THREADS} (or leave it out: all)"
        )
    _out_file(out, force)
    result = score_smiles_file(smiles_file, train, test, test_scaffolds, n_jobs)
    out.write_text(json.dumps(result, indent=2) + "\n")
    shown = ", ".join(
        f"{k} {v['value']:.3f}" for k, v in list(result["metrics"].items())[:6] if v["value"] is not None
    )
    info(f"{result['n']} molecules: {shown} … → {out}")


@app.command()
@handles_errors
def generate(
    bundle: Annotated[Path, typer.Argument(help="A generator's bundle directory (<out>/bundle).")],
    out: Annotated[
        Path, typer.Option("--out", help="CSV to write (column SMILES; invalid samples included).")
    ],
    n: Annotated[int, typer.Option("-n", "--n", min=1, max=MAX_SAMPLES, help="Molecules to sample.")] = 30000,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=MAX_SEED, help="Random seed (same seed, same molecules).")
    ] = 0,
    temperature: Annotated[
        float | None,
        typer.Option("--temperature", help="Softmax temperature, at least 0.01 (default: the bundle's)."),
    ] = None,
    device: Device = "auto",
    threads: Threads = None,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Sample molecules from a generator bundle (char_rnn, mol_vae, latent_gan) into a SMILES CSV."""
    from medlearn.engine.bundle import load_bundle
    from medlearn.engine.generative import write_samples

    _setup(quiet, device, threads)
    _positive_finite(temperature, "--temperature", "1.0")
    if temperature is not None and temperature < MIN_TEMPERATURE:
        raise InputError(
            f"--temperature {temperature}: below {MIN_TEMPERATURE} the logits overflow; use at least {MIN_TEMPERATURE}"
        )
    _out_file(out, force)
    loaded = load_bundle(bundle, "cpu" if device == "auto" else device)
    started = time.perf_counter()
    samples = loaded.generate(n, seed=seed, temperature=temperature)
    seconds = time.perf_counter() - started
    write_samples(out, samples)
    info(
        f"{len(samples):,} samples in {seconds:.1f} s ({len(samples) / max(seconds, 1e-9):,.0f}/s) → {out}; "
        f"score them with: medlearn mol-metrics {out} --out metrics.json"
    )


def _parse_range(value: str | None, option: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise InputError(f"{option} {value}: expected LO,HI, e.g. {option} 1,3") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"{option} {value}: expected two finite numbers LO,HI, e.g. {option} 1,3")
    return lo, hi


@app.command()
@handles_errors
def optimize(
    bundle: Annotated[Path, typer.Argument(help="A char_rnn generator's bundle (the prior).")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output directory: bundle/, top.csv, metrics.json, report.html (default runs/optimize-<time>).",
        ),
    ] = None,
    qed: Annotated[bool, typer.Option("--qed/--no-qed", help="Reward drug-likeness (QED).")] = True,
    logp: Annotated[
        str | None, typer.Option("--logp", help="Reward Crippen logP inside LO,HI, e.g. 1,3.")
    ] = None,
    max_sa: Annotated[
        float | None, typer.Option("--max-sa", help="Reward SA score at most this (1 easy … 10 hard).")
    ] = None,
    no_pains: Annotated[
        bool, typer.Option("--no-pains", help="Score 0 for molecules with a PAINS alert.")
    ] = False,
    steps: Annotated[
        int, typer.Option("--steps", min=1, max=1_000_000, help="REINVENT steps (batches).")
    ] = 300,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=2, max=100_000, help="Molecules sampled per step.")
    ] = 64,
    sigma: Annotated[
        float, typer.Option("--sigma", min=0.001, help="Score weight in the augmented likelihood.")
    ] = 60.0,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=MAX_SEED, help="Random seed (same seed, same run).")
    ] = 0,
    top_k: Annotated[
        int,
        typer.Option("--top-k", min=1, max=MAX_SAMPLES, help="Best distinct molecules written to top.csv."),
    ] = 100,
    threads: Threads = None,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Steer a generator towards QED / a logP window / low SA / no PAINS (REINVENT) and report prior vs agent."""
    from medlearn.engine.bundle import load_bundle
    from medlearn.molecules.guided import check_prior, reinvent, write_guided_run
    from medlearn.molecules.objective import Objective

    _setup(quiet, "cpu", threads)
    _positive_finite(sigma, "--sigma", "60")
    if max_sa is not None and not math.isfinite(max_sa):
        raise InputError(f"--max-sa {max_sa}: expected a number from 1 (easy) to 10 (hard)")
    objective = Objective(
        qed=1.0 if qed else 0.0, logp_range=_parse_range(logp, "--logp"), max_sa=max_sa, no_pains=no_pains
    )
    prior = load_bundle(bundle, "cpu")
    check_prior(prior)
    out_dir = _out_dir(out, "optimize", force)
    info(f"optimising {objective.describe()} from {prior.path} ({steps} steps × {batch_size})")
    result = reinvent(prior, objective, steps=steps, batch_size=batch_size, sigma=sigma, seed=seed)
    metrics = write_guided_run(result, out_dir, prior, objective, top_k=top_k)
    m = {k: v["value"] for k, v in metrics["metrics"].items()}

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    info(
        f"[green]mean score[/] prior {f(m['score_mean_prior'])} → agent {f(m['score_mean_agent'])}; "
        f"validity {f(m['validity_prior'])} → {f(m['validity_agent'])}, unique {f(m['unique_prior'])} → "
        f"{f(m['unique_agent'])}; top-{metrics['top_k']} score {f(m['top_k_score_mean'])}, IntDiv {f(m['int_div1'])}"
    )
    info(
        f"report: {out_dir / 'report.html'}; sample more with: medlearn generate {out_dir / 'bundle'} --out samples.csv"
    )
