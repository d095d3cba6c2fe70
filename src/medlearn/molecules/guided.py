"""Property-guided generation, REINVENT-style: fine-tune a CharRNN prior towards a scoring function.

REINVENT (Olivecrona et al., J. Cheminform. 2017; Blaschke et al., J. Chem. Inf. Model. 2020,
"REINVENT 2.0") keeps the trained generator as a fixed *prior* and trains a copy of it, the *agent*, by
policy-based reinforcement learning. Each step the agent samples a batch, every molecule is scored in
[0, 1] and the agent is pulled towards the *augmented likelihood*::

    log P_aug(S) = log P_prior(S) + sigma * score(S)
    loss = mean_S (log P_aug(S) - log P_agent(S))^2

so it learns to favour high-scoring molecules while staying close to the chemistry the prior learned
(``sigma`` trades one against the other). A small experience replay (the best molecules seen so far,
re-encoded from their canonical SMILES) is added to each batch's loss, as in REINVENT.

The score (:class:`Objective`) is REINVENT 2.0's *custom product*: a weighted geometric mean of the
desirabilities the user switched on (QED; a logP window; a maximum SA score), multiplied by penalty
components (no PAINS alert: 0 or 1). Invalid SMILES score 0.

Outputs (:func:`write_guided_run`): the agent as an ordinary generative bundle (``medlearn generate``
samples from it), ``top.csv``, ``metrics.json`` comparing prior and agent samples (score, validity,
uniqueness, internal diversity and novelty, so that mode collapse is visible) and ``report.html``.

Novelty is measured, as MOSES does, against every molecule of the prior's training file, re-read from the
bundle's ``data.root`` (the metric is ``null``, and the run says why, when that file is not there).
"""

from __future__ import annotations

import copy
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.engine.artifacts import save_bundle
from medlearn.engine.bundle import Bundle
from medlearn.engine.progress import info, make_progress
from medlearn.errors import ConfigError, InputError
from medlearn.molecules.generators.sampling import BOS_ID
from medlearn.molecules.io import require
from medlearn.molecules.objective import Objective, Props

#: Training files up to this many records are canonicalised for novelty; larger ones are compared as stored.
NOVELTY_CANONICALISE_MAX = 50_000
#: Molecules kept in the experience replay memory.
REPLAY_SIZE = 8
#: Added to the prior's intended-use statement.
GUIDED_USE = (
    " Guided molecules maximise a computed score (QED/logP/SA/PAINS), which is not evidence of "
    "activity or safety."
)
#: Columns of ``top.csv``.
TOP_COLUMNS = ("SMILES", "score", "qed", "sa", "logp", "weight")


# ------------------------------------------------------------------------------------------ REINVENT
@dataclass
class GuidedResult:
    """A finished guided run: the trained agent, the per-step history and every molecule scored."""

    agent: torch.nn.Module
    history: list[dict[str, float]]
    #: canonical SMILES → (score, (logP, SA, QED, weight)) of every valid molecule sampled during the run
    seen: dict[str, tuple[float, Props]]
    settings: dict[str, Any]
    seconds: float

    def top(self, k: int) -> list[tuple[str, float, Props]]:
        """The ``k`` best distinct valid molecules seen, best first (ties broken by SMILES)."""
        ranked = sorted(self.seen.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return [(s, sc, props) for s, (sc, props) in ranked[:k]]


def _with_bos(ids: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.full((ids.shape[0], 1), BOS_ID, dtype=ids.dtype), ids], dim=1)


def check_prior(prior: Bundle) -> None:
    if prior.kind != "generative":
        raise ConfigError(
            f"{prior.path}: a {prior.kind} model cannot be guided; pass a generator's bundle (e.g. char_rnn)"
        )
    if not hasattr(prior.model, "log_likelihood") or not hasattr(prior.model, "sample"):
        raise ConfigError(
            f"{prior.path}: model {prior.meta.model.name} gives no per-molecule "
            "likelihood; REINVENT needs an autoregressive generator such as char_rnn"
        )


def reinvent(
    prior: Bundle,
    objective: Objective,
    steps: int = 300,
    batch_size: int = 64,
    sigma: float = 60.0,
    lr: float = 5e-4,
    seed: int = 0,
    experience_replay: bool = True,
    temperature: float = 1.0,
    progress: bool = True,
) -> GuidedResult:
    """Train an agent (a copy of ``prior.model``) towards ``objective`` for ``steps`` batches.

    Deterministic for a given seed (CPU). The prior bundle is left unchanged.
    """
    from medlearn.molecules.tasks import codec_of

    check_prior(prior)
    for name, value, low in (("steps", steps, 1), ("batch_size", batch_size, 2)):
        if value < low:
            raise InputError(f"{name} {value}: must be ≥ {low}")
    if not (sigma > 0 and lr > 0):
        raise InputError(f"sigma {sigma} and lr {lr}: both must be > 0")
    codec = codec_of(prior.preprocessing)
    prior_model = prior.model.cpu().eval()
    for p in prior_model.parameters():
        p.requires_grad_(False)
    torch.manual_seed(seed)
    agent = copy.deepcopy(prior_model)
    for p in agent.parameters():
        p.requires_grad_(True)
    agent.eval()  # no dropout: the likelihoods compared with the prior's are exact
    optimizer = torch.optim.Adam(agent.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    seen: dict[str, tuple[float, Props]] = {}
    replay: dict[str, float] = {}  # canonical SMILES → score, the best REPLAY_SIZE molecules
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    with make_progress(disable=not progress) as bar:
        task = bar.add_task("reinvent", total=steps, status="")
        for step in range(1, steps + 1):
            ids = agent.sample(batch_size, generator=generator, temperature=temperature)
            smiles = [codec.decode(row) for row in ids.tolist()]
            results = objective.evaluate(smiles)
            scores = torch.tensor([0.0 if r is None else r[1] for r in results], dtype=torch.float32)
            tokens = _with_bos(ids)
            with torch.no_grad():
                prior_ll = prior_model.log_likelihood(tokens)
            agent_ll = agent.log_likelihood(tokens)
            augmented = prior_ll + sigma * scores
            loss = (augmented - agent_ll).pow(2)
            if experience_replay and replay:
                memory = sorted(replay)
                encoded = torch.from_numpy(codec.encode_batch(memory))
                with torch.no_grad():
                    mem_prior = prior_model.log_likelihood(encoded)
                mem_scores = torch.tensor([replay[s] for s in memory], dtype=torch.float32)
                mem_agent = agent.log_likelihood(encoded)
                loss = torch.cat([loss, (mem_prior + sigma * mem_scores - mem_agent).pow(2)])
            loss = loss.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            valid = [r for r in results if r is not None]
            for canonical, sc, props in valid:
                seen[canonical] = (sc, props)
                if experience_replay and sc > 0 and _encodable(codec, canonical):
                    replay[canonical] = sc
            if len(replay) > REPLAY_SIZE:
                replay = dict(sorted(replay.items(), key=lambda kv: (-kv[1], kv[0]))[:REPLAY_SIZE])
            row = {
                "step": step,
                "score_mean": float(scores.mean()),
                "validity": len(valid) / batch_size,
                "unique": len({r[0] for r in valid}) / len(valid) if valid else 0.0,
                "loss": float(loss.detach()),
                "agent_ll_mean": float(agent_ll.detach().mean()),
            }
            history.append(row)
            status = f"score {row['score_mean']:.3f} valid {row['validity']:.2f} unique {row['unique']:.2f}"
            bar.update(task, completed=step, status=status)
    agent.eval()
    for p in agent.parameters():
        p.requires_grad_(False)
    settings = {
        "steps": steps,
        "batch_size": batch_size,
        "sigma": sigma,
        "lr": lr,
        "seed": seed,
        "experience_replay": experience_replay,
        "temperature": temperature,
    }
    return GuidedResult(agent, history, seen, settings, round(time.perf_counter() - started, 1))


def _encodable(codec: Any, smiles: str) -> bool:
    """Whether a canonical SMILES spells with the prior's vocabulary (no unknown token)."""
    try:
        ids = codec.encode(smiles)
    except Exception:
        return False
    unk = getattr(codec.vocabulary, "unk_id", None)
    return unk is None or unk not in ids


# ------------------------------------------------------------------------------------------ outputs
def _internal_diversity(smiles: list[str]) -> float | None:
    """MOSES IntDiv1 (:func:`medlearn.molecules.metrics.similarity.internal_diversity`, the definition
    of ``int_div1`` everywhere in medlearn) of distinct valid SMILES; None with fewer than 2."""
    from medlearn.molecules.metrics.descriptors import packed_fingerprints
    from medlearn.molecules.metrics.similarity import internal_diversity

    if len(smiles) < 2:
        return None
    chem = require("rdkit.Chem", "for diversity")
    return internal_diversity(packed_fingerprints([chem.MolFromSmiles(s) for s in smiles]), powers=(1,))[1]


def _sample_stats(objective: Objective, samples: list[str]) -> dict[str, Any]:
    results = objective.evaluate(samples)
    valid = [r for r in results if r is not None]
    distinct = sorted({r[0] for r in valid})
    return {
        "samples": samples,
        "scores": np.array([0.0 if r is None else r[1] for r in results]),
        "validity": len(valid) / len(samples) if samples else 0.0,
        "unique": len(distinct) / len(valid) if valid else 0.0,
        "distinct": distinct,
        "results": valid,
    }


def _training_molecules(prior: Bundle) -> set[str] | None:
    """The SMILES of the prior's whole training file, for novelty (None when the file is not here).

    Like MOSES's Novelty, against every molecule of the file, not only the sampled training split. Files of
    up to :data:`NOVELTY_CANONICALISE_MAX` records are canonicalised; larger ones (MOSES's 1.58 M, stored
    canonical already) are compared as stored, as MOSES does.
    """
    from medlearn.molecules.io import canonicalize, read_smiles
    from medlearn.paths import resolve_config_data_path

    try:
        root = resolve_config_data_path(prior.meta.data.root)
        path = prior.task.train_path(root)
        smiles = [s for s in read_smiles(path) if s]
    except Exception:  # moved, changed or absent: novelty is skipped rather than the run failing
        return None
    if len(smiles) <= NOVELTY_CANONICALISE_MAX:
        smiles = [c for c in canonicalize(smiles)[0] if c]
    return set(smiles)


def _metric(value: Any) -> dict[str, Any]:
    return {"value": None if value is None else round(float(value), 6), "ci95": None}


def _score_curve(history: list[dict[str, float]]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    steps = [r["step"] for r in history]
    for key, color in (("score_mean", "tab:green"), ("validity", "tab:blue"), ("unique", "tab:orange")):
        ax.plot(
            steps,
            [r[key] for r in history],
            color=color,
            linewidth=1.8,
            label={"score_mean": "mean score"}.get(key, key),
        )
    ax.set(xlabel="step", ylabel="fraction / score", ylim=(-0.02, 1.02), title="Agent samples per step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def write_guided_run(
    result: GuidedResult,
    out_dir: Path,
    prior: Bundle,
    objective: Objective,
    n_eval: int = 1000,
    top_k: int = 100,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``bundle/``, ``top.csv``, ``metrics.json`` and ``report.html`` of a guided run; return metrics.

    ``n_eval`` molecules are sampled from the prior and from the agent with the same seed; the top-k are
    the best distinct valid molecules sampled during the run or in the agent's evaluation samples (which
    are added to ``result.seen``).
    """
    if n_eval < 1 or top_k < 1:
        raise InputError(f"n_eval {n_eval} and top_k {top_k}: both must be ≥ 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = int(result.settings.get("seed", 0))
    temperature = float(result.settings.get("temperature", 1.0))
    samples = {
        name: prior.task.generate(
            model, prior.preprocessing, n_eval, seed=seed, temperature=temperature, progress=progress
        )
        for name, model in (("prior", prior.model), ("agent", result.agent))
    }
    stats = {name: _sample_stats(objective, s) for name, s in samples.items()}
    for canonical, sc, props in stats["agent"]["results"]:
        result.seen.setdefault(canonical, (sc, props))
    top = result.top(top_k)
    metrics = _guided_metrics(stats, top, _training_molecules(prior), n_eval, objective)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _write_top_csv(out_dir / "top.csv", top)
    bundle_path = _save_agent(out_dir / "bundle", result, prior, objective, metrics)
    _write_guided_report(
        out_dir / "report.html", result, prior, objective, metrics, samples, top, bundle_path
    )
    return metrics


def _guided_metrics(
    stats: dict[str, dict[str, Any]],
    top: list[tuple[str, float, Props]],
    train: set[str] | None,
    n_eval: int,
    objective: Objective,
) -> dict[str, Any]:
    """metrics.json (CONVENTIONS shape, ``ci95`` null): prior vs agent samples, and the top-k."""
    if train is None:
        info("novelty skipped: the prior's training file is not at its data.root")

    def novelty(distinct: list[str]) -> float | None:
        if train is None or not distinct:
            return None
        return sum(s not in train for s in distinct) / len(distinct)

    p, a = stats["prior"], stats["agent"]
    values = {
        "score_mean_prior": p["scores"].mean(),
        "score_mean_agent": a["scores"].mean(),
        "top_k_score_mean": np.mean([t[1] for t in top]) if top else None,
        "validity_prior": p["validity"],
        "validity_agent": a["validity"],
        "unique_prior": p["unique"],
        "unique_agent": a["unique"],
        "int_div1": _internal_diversity([t[0] for t in top]),
        "int_div1_prior": _internal_diversity(p["distinct"][:1000]),
        "int_div1_agent": _internal_diversity(a["distinct"][:1000]),
        "novelty_prior": novelty(p["distinct"]),
        "novelty_agent": novelty(a["distinct"]),
    }
    return {
        "task": "guided_generation",
        "split": "generated",
        "unit": "molecule",
        "n": n_eval,
        "metrics": {k: _metric(v) for k, v in values.items()},
        "ci_method": "none (one set of generated samples); prior and agent sampled n times, same seed",
        "top_k": len(top),
        "objective": objective.describe(),
    }


def _write_top_csv(path: Path, top: list[tuple[str, float, Props]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(TOP_COLUMNS)
        for smiles, sc, (logp, sa, qed, weight) in top:
            writer.writerow([smiles, f"{sc:.6f}", f"{qed:.6f}", f"{sa:.6f}", f"{logp:.6f}", f"{weight:.4f}"])


def _save_agent(
    path: Path, result: GuidedResult, prior: Bundle, objective: Objective, metrics: dict[str, Any]
) -> Path:
    """The agent as a regular generative bundle: the prior's task, model, codec; ``guided`` added."""
    from medlearn.engine.artifacts import library_versions

    guided = {
        "method": "REINVENT (Olivecrona et al. 2017; Blaschke et al. 2020)",
        "objective": objective.to_dict(),
        **result.settings,
        "seconds": result.seconds,
        "prior": str(Path(prior.path).resolve()),
        "prior_model": prior.model_name,
        "history": result.history,
    }
    meta = prior.meta.model_copy(
        deep=True,
        update={
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": library_versions(),
            "guided": guided,
            "metrics": {"test": metrics},
            "intended_use": prior.meta.intended_use + GUIDED_USE,
        },
    )
    s = result.settings
    card = (
        f"\n**Guided (REINVENT)** from `{guided['prior']}` towards {objective.describe()}: "
        f"{s['steps']} steps × {s['batch_size']} molecules, sigma {s['sigma']:g}, lr {s['lr']:g}, seed "
        f"{s['seed']}. The data and training lines above describe the prior.\n"
    )
    return save_bundle(path, result.agent, meta, card_extra=card)


def _write_guided_report(
    path: Path,
    result: GuidedResult,
    prior: Bundle,
    objective: Objective,
    metrics: dict[str, Any],
    samples: dict[str, list[str]],
    top: list[tuple[str, float, Props]],
    bundle_path: Path,
) -> Path:
    from html import escape as _e

    from medlearn.engine.plots import figure_to_data_uri
    from medlearn.engine.report import ReportSection, write_report
    from medlearn.molecules.plots import molecule_grid, property_histograms

    s, m = result.settings, {k: v["value"] for k, v in metrics["metrics"].items()}
    prior_path = str(Path(prior.path).resolve())
    sections = [
        ReportSection(
            "Objective",
            html=(
                f"<p>Score = {_e(objective.describe())}; invalid SMILES score 0. REINVENT: augmented "
                f"log-likelihood = prior log-likelihood + σ·score (σ = {s['sigma']:g}), {s['steps']} steps of "
                f"{s['batch_size']} molecules, Adam lr {s['lr']:g}, experience replay "
                f"{'on' if s['experience_replay'] else 'off'}, {result.seconds:.0f} s. Prior: {_e(prior_path)}.</p>"
                f"<p>Prior mean score {m['score_mean_prior']:.3f} → agent {m['score_mean_agent']:.3f} "
                f"({metrics['n']} samples each, seed {s['seed']}). Low agent uniqueness or internal diversity "
                "means mode collapse.</p>"
            ),
        )
    ]
    if result.history:
        sections.append(
            ReportSection(
                "Score per step",
                figures=[
                    (
                        "Mean score, validity and uniqueness of each step's agent batch",
                        figure_to_data_uri(_score_curve(result.history)),
                    )
                ],
            )
        )
    fig = property_histograms(
        samples["agent"], samples["prior"], reference_label="prior samples", seed=s["seed"]
    )
    fig.suptitle("Molecular properties: agent vs prior samples")
    sections.append(
        ReportSection(
            "Properties: agent vs prior",
            figures=[
                (
                    "QED, SA, logP and weight of valid agent samples (orange) vs prior samples (blue)",
                    figure_to_data_uri(fig),
                )
            ],
        )
    )
    if top:
        shown = top[:12]
        rows = "".join(
            f'<tr><td>{i + 1}</td><td><code>{_e(smi)}</code></td><td class="num">{sc:.3f}</td>'
            f'<td class="num">{pr[2]:.3f}</td><td class="num">{pr[1]:.2f}</td>'
            f'<td class="num">{pr[0]:.2f}</td></tr>'
            for i, (smi, sc, pr) in enumerate(shown)
        )
        table = (
            "<table><thead><tr><th>#</th><th>SMILES</th><th>score</th><th>QED</th><th>SA</th>"
            f"<th>logP</th></tr></thead><tbody>{rows}</tbody></table>"
        )
        try:
            figures = [
                (
                    "Top molecules (legend: score)",
                    molecule_grid([t[0] for t in shown], [f"{t[1]:.3f}" for t in shown]),
                )
            ]
        except Exception:  # a drawing failure must not lose the run
            figures = []
        sections.append(
            ReportSection(f"Top {len(shown)} of {len(top)} molecules", html=table, figures=figures)
        )
    credits = [
        *prior.task.credits,
        "REINVENT: Olivecrona et al., J. Cheminform. 2017; "
        "Blaschke et al. (REINVENT 2.0), J. Chem. Inf. Model. 2020.",
        "QED: Bickerton et al., Nat. Chem. 2012; PAINS: Baell & Holloway, J. Med. Chem. 2010.",
    ]
    return write_report(
        path,
        f"medlearn — guided generation ({prior.meta.model.name})",
        {"generated": metrics},
        sections,
        prior.meta.intended_use + GUIDED_USE,
        credits,
        provenance={
            "prior": prior_path,
            "model": prior.meta.model.name,
            "bundle": str(bundle_path),
            **prior.meta.versions,
        },
    )


__all__ = ["Objective", "GuidedResult", "reinvent", "write_guided_run"]
