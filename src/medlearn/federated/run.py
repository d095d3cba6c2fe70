"""``medlearn federate``: a federated training run with the same outputs as ``train``.

1. The hospitals (:mod:`medlearn.federated.hospitals`), each with its own patient-level train/val/test.
2. One preprocessing shared by the federation, fitted on the pooled training units: federated partners
   agree on a common input space before training (in practice a common data model such as harmonised
   concepts); the vocabulary/statistics fit is the one step here that sees every hospital's training units,
   and ``metrics.json`` says so.
3. Flower rounds (:mod:`medlearn.federated.apps`) on the simulation engine or, with ``deploy``, the
   deployment engine (:mod:`medlearn.federated.deploy`), each round local epochs of the one Trainer.
4. The global model becomes the run's bundle through the second half of ``train``
   (:func:`~medlearn.engine.run.finish_predictive`): calibration and operating point on the pooled
   validation units, test metrics with CIs on the pooled test units, predictions, bundle, report.
5. With ``federated.baselines`` the comparison (:mod:`medlearn.federated.compare`): centralised and
   local-only models fitted by :func:`~medlearn.engine.run.fit_fold`, every arm scored per hospital and
   pooled, the federated model after every round; in ``metrics.json`` (``federated``), ``federated.json``
   (full metrics) and the report.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlearn.config import ExperimentConfig
from medlearn.engine.artifacts import RunOutputs, write_json
from medlearn.engine.callbacks import CallbackList, FitResult
from medlearn.engine.data import Preprocessing, UnitTable
from medlearn.engine.experiment import make_dataset, make_task, resolve_root
from medlearn.engine.models import build_model
from medlearn.engine.progress import info
from medlearn.engine.run import FoldResult, finish_predictive, fit_fold
from medlearn.engine.runtime import pick_device, reproducibility
from medlearn.engine.tracking import run_callbacks
from medlearn.engine.trainer import Trainer
from medlearn.engine.trees import ArrayFitted
from medlearn.engine.validate import validate_experiment
from medlearn.errors import ConfigError
from medlearn.federated import compare
from medlearn.federated.hospitals import Federation, build_federation
from medlearn.federated.plan import load_plan, load_state, save_state, write_plan

__all__ = ["check_federated_config", "federate", "federate_experiment"]

log = logging.getLogger(__name__)


def check_federated_config(cfg: ExperimentConfig) -> None:
    """What ``federate`` refuses before reading data: no section, cross-validation, a generative task,
    FedProx with DP-SGD (its extra loss term would not be private), more hospitals needed than listed."""
    fed = cfg.federated
    if fed is None:
        raise ConfigError(
            f"config {cfg.name}: no federated section (add federated: {{rounds: 3, hospitals: {{...}}}}, "
            "see docs/federated.md)"
        )
    if cfg.data.split.folds:
        raise ConfigError("data.split.folds: federate splits each hospital once; remove folds")
    if fed.strategy == "fedprox" and fed.proximal_mu > 0 and cfg.privacy is not None:
        raise ConfigError(
            "federated.strategy: fedprox's proximal term would not be private under DP-SGD; use fedavg "
            "or fedadam with a privacy section"
        )
    h = fed.hospitals
    if h.source == "roots" and len(h.sites) < 2:
        raise ConfigError(
            "federated.hospitals.sites: list at least two {name, root} hospitals for source roots"
        )
    n_listed = len(h.sites) if h.source == "roots" else h.count if h.source == "dirichlet" else None
    if n_listed is not None and fed.min_hospitals > n_listed:
        raise ConfigError(
            f"federated.min_hospitals: {fed.min_hospitals} but the federation has {n_listed} hospitals"
        )


def composed_privacy(round_records: list[dict[str, Any]], cfg: ExperimentConfig) -> dict[str, Any]:
    """The bundle's privacy record of a federated DP-SGD run: every round spends at most ε/rounds at each
    hospital, so by sequential composition a unit's total is at most the sum over rounds of the largest
    per-hospital ε (``epsilon``); the other fields are the last round's hospital that spent most, with the
    largest δ of any hospital (δ = 1/(10·n_train) is per hospital) and the steps summed over rounds."""
    assert cfg.privacy is not None and cfg.federated is not None
    per_round = [
        max(r["privacy"].values(), key=lambda x: x["epsilon"]) for r in round_records if r.get("privacy")
    ]
    record = dict(per_round[-1])
    deltas = [x["delta"] for r in round_records for x in r.get("privacy", {}).values()]
    record.update(
        {
            "epsilon": round(sum(x["epsilon"] for x in per_round), 4),
            "target_epsilon": cfg.privacy.epsilon,
            "delta": max(deltas),
            "delta_rule": "the largest of the hospitals' deltas (" + str(record.get("delta_rule", "")) + ")",
            "steps": int(sum(x["steps"] for x in per_round)),
            "epochs_planned": cfg.federated.rounds * cfg.federated.local_epochs,
        }
    )
    return record


def _write_hospital_data(
    work: Path, federation: Federation, task: Any, pre: Preprocessing, cache: bool
) -> None:
    """Each hospital's preprocessed training units (what its ClientApp reads)."""
    for h in federation.hospitals:
        ds = make_dataset(task, h.tables["train"], pre, cache)
        x = np.stack([ds.array(i) for i in range(len(ds))])
        folder = work / "hospitals" / h.name
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "train.npz", x=x, y=np.asarray(h.tables["train"].targets))


def _run_flower(work: Path, n_hospitals: int, deploy: bool) -> str:
    """Run the rounds on the chosen engine; the engine's name."""
    if deploy:
        from medlearn.federated.deploy import run_deployment

        run_deployment(work, n_hospitals)
        return "deployment"
    from medlearn.federated.simulation import run_simulation_engine

    run_simulation_engine(work, n_hospitals)
    return "simulation"


def federate_experiment(
    cfg: ExperimentConfig, out: Path, deploy: bool = False, device: str = "auto"
) -> RunOutputs:
    """Run a federated experiment into ``out`` (see the module docstring); returns its outputs."""
    validate_experiment(cfg)
    check_federated_config(cfg)
    fed = cfg.federated
    assert fed is not None
    task = make_task(cfg)
    if task.kind == "generative":
        raise ConfigError(f"task {task.name}: federate trains predictive tasks only")
    root = resolve_root(cfg)
    model_name = cfg.model.name or task.default_model
    info(
        f"[bold]{cfg.name}[/]: federated {fed.strategy}, {fed.rounds} rounds of {fed.local_epochs} local "
        f"epoch(s); task {task.name}, model {model_name}"
    )
    federation = build_federation(cfg, task, root)
    names = [h.name for h in federation.hospitals]
    if fed.min_hospitals > len(names):
        raise ConfigError(
            f"federated.min_hospitals: {fed.min_hospitals} but {len(names)} hospitals are left ({', '.join(names)})"
        )
    pooled = {s: federation.pooled(s) for s in ("train", "val", "test")}
    pre = Preprocessing(task.fit_preprocessing(model_name, pooled["train"]))
    torch.manual_seed(cfg.train.seed)
    model, model_kwargs = build_model(model_name, cfg.model.params, task.model_kwargs(model_name))
    if isinstance(model, ArrayFitted):
        raise ConfigError(f"model.name: {model_name} is fitted in one pass; federate needs a neural network")
    replaced: list[dict[str, Any]] = []  # layers DP-SGD cannot train, replaced once for every hospital
    if cfg.privacy is not None:
        from medlearn.privacy.dp import fix_model

        replaced = fix_model(model)
    out = Path(out)
    work = out / "federated" / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    _write_hospital_data(work, federation, task, pre, cfg.data.cache)
    save_state(work / "initial.npz", model.state_dict())
    write_plan(work, cfg, model_name, model_kwargs, names, device)
    engine = _run_flower(work, len(names), deploy)
    plan = load_plan(str(work))
    rounds = sorted(int(p.stem.split("_")[1]) for p in plan.rounds_dir.glob("round_*.npz"))
    round_records = [json.loads((plan.rounds_dir / f"round_{k}.json").read_text()) for k in rounds]
    model.load_state_dict(load_state(plan.rounds_dir / f"round_{rounds[-1]}.npz"))
    for r in round_records:  # the ServerApp logs in its own process (deploy): say it here too
        if r["silent"] or r["failed"]:
            log.warning(
                "round %d: %d hospital(s) did not answer within %g s (federated.round_timeout_seconds)%s; "
                "the round went on with %s",
                r["round"],
                r["silent"],
                fed.round_timeout_seconds,
                "".join(f"; failed: {f}" for f in r["failed"]),
                ", ".join(r["hospitals"]),
            )

    heard = CallbackList([*run_callbacks(out, None)])
    trainer = Trainer(cfg.train, task.target, None, None, pick_device(device))
    datasets = {
        (h.name, s): make_dataset(task, h.tables[s], pre, cfg.data.cache)
        for h in federation.hospitals
        for s in ("val", "test")
    }
    monitor = cfg.train.early_stopping.monitor or task.target.monitor
    metric = compare.primary_metric(task, monitor)
    val = {h.name: h.tables["val"] for h in federation.hospitals}
    test = {h.name: h.tables["test"] for h in federation.hospitals}
    rule, n_boot, calibrate = cfg.eval.operating_point, cfg.eval.n_bootstrap, cfg.eval.calibrate

    def arm_logits(m: torch.nn.Module, split: str) -> dict[str, np.ndarray]:
        return {n: trainer.logits(m, datasets[(n, split)])[0] for n in names}

    per_round_full, per_round = [], []
    round_model, _ = build_model(model_name, {}, model_kwargs)
    if cfg.privacy is not None:
        from medlearn.privacy.dp import fix_model

        fix_model(round_model)
    for k, record in zip(rounds, round_records):
        round_model.load_state_dict(load_state(plan.rounds_dir / f"round_{k}.npz"))
        arm = compare.score_arm(
            f"round {k}", task, names, val, arm_logits(round_model, "val"), test,
            arm_logits(round_model, "test"), calibrate, rule, n_boot, per_hospital_fit=False,
        )  # fmt: skip
        per_round_full.append({**record, "metrics": arm.by_scope})
        per_round.append({**record, "metrics": compare.compact(arm, metric)})
        info(f"round {k}: pooled test {metric} {per_round[-1]['metrics'][compare.POOLED]['value']}")
    arms: dict[str, dict[str, Any]] = {"federated": per_round[-1]["metrics"]}
    full: dict[str, Any] = {"federated": per_round_full[-1]["metrics"]}
    if fed.baselines:
        info("centralised baseline: one model on the pooled training units")
        central = fit_fold(
            cfg,
            task,
            model_name,
            pooled,
            out / "checkpoints" / "centralised",
            False,
            device,
            callbacks=[heard],
        )
        c_arm = compare.score_arm(
            "centralised", task, names, val, arm_logits(central.model, "val"), test,
            arm_logits(central.model, "test"), calibrate, rule, n_boot, per_hospital_fit=False,
        )  # fmt: skip
        local_val, local_test = {}, {}
        for h in federation.hospitals:
            info(f"local-only baseline: {h.name}'s own model")
            local = fit_fold(
                cfg, task, model_name, h.tables, out / "checkpoints" / f"local-{h.name}", False, device,
                callbacks=[heard],
            )  # fmt: skip
            local_val[h.name], local_test[h.name] = local.logits["val"], local.logits["test"]
        l_arm = compare.score_arm(
            "local-only", task, names, val, local_val, test, local_test, calibrate, rule, n_boot,
            per_hospital_fit=True,
        )  # fmt: skip
        arms.update(
            {"centralised": compare.compact(c_arm, metric), "local-only": compare.compact(l_arm, metric)}
        )
        full.update({"centralised": c_arm.by_scope, "local-only": l_arm.by_scope})

    spent = [max(r["epsilon"].values()) for r in round_records if r.get("epsilon")]
    summary = {
        "engine": engine,
        "strategy": fed.strategy,
        "rounds": fed.rounds,
        "local_epochs": fed.local_epochs,
        "hospital_source": federation.source,
        "hospitals": [h.summary() for h in federation.hospitals],
        "notes": federation.notes,
        "preprocessing": "one preprocessing fitted on the pooled training units of all hospitals",
        "metric": metric,
        "comparison": arms,
        "per_round": per_round,
        **(
            {
                "privacy": {
                    "epsilon_per_round": spent,
                    "epsilon_total_bound": round(sum(spent), 4),
                    "composition": "sequential over rounds (each round spends epsilon / rounds)",
                }
            }
            if spent
            else {}
        ),  # fmt: skip
    }
    write_json(out / "federated.json", {**summary, "per_round": per_round_full, "comparison": full})
    history = [
        {
            "epoch": r["round"],
            "train_loss": float(np.mean(list(r["train_loss"].values())) if r["train_loss"] else np.nan),
        }
        for r in round_records
    ]
    seconds = float(sum(r["seconds"] for r in round_records))
    extra = reproducibility()
    if spent:
        extra["privacy"] = {**composed_privacy(round_records, cfg), "replaced_layers": replaced}
    fit = FitResult(history, rounds[-1], float("nan"), model.state_dict(), seconds, extra=extra)
    tables = {s: pooled[s] for s in ("train", "val", "test")}
    fold = FoldResult(
        tables,
        model,
        model_kwargs,
        pre,
        fit,
        {s: np.concatenate(list(arm_logits(model, s).values())) for s in ("val", "test")},
        monitor,
        None,  # no early stopping: every round runs, the last global model is kept
    )
    everything = UnitTable.concat([pooled["train"], pooled["val"], pooled["test"]])
    section = compare.comparison_section(metric, summary["hospitals"], arms, per_round, federation.notes)
    outputs = finish_predictive(
        cfg, task, model_name, root, out, everything, [fold], False, device, heard,
        extra_metrics={"federated": summary}, extra_sections=[section],
    )  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return outputs


def federate(
    config: Any,
    *,
    out: Any = None,
    overrides: Any = (),
    data: Any = None,
    deploy: bool = False,
    device: str = "auto",
    threads: int | None = None,
    force: bool = False,
) -> RunOutputs:
    """``medlearn federate`` from Python: the config checked whole, the output folder prepared as ``train``
    prepares it (never overwritten without ``force``), then :func:`federate_experiment`.

    Raises:
        ConfigError: a bad config or no ``federated`` section; MissingDependencyError: no flwr (or ray for
        the simulation engine); OutputExistsError: ``out`` is not empty and ``force`` is not set.
    """
    from medlearn.api import (
        _check_device,
        _check_threads,
        _check_writable,
        _set_threads,
        clear_run_outputs,
        override_items,
        resolve_config,
    )
    from medlearn.lazy import require_extra
    from medlearn.paths import default_out_dir, prepare_out_dir, resolve_cli_path

    items = override_items(overrides)
    _check_device(device)
    _check_threads(threads)
    cfg = resolve_config(config, items)
    if data is not None:
        cfg.data.root = str(resolve_cli_path(data))
    elif any(item.split("=", 1)[0].strip() == "data.root" for item in items):
        cfg.data.root = str(resolve_cli_path(cfg.data.root))
    validate_experiment(cfg)
    check_federated_config(cfg)
    require_extra("flwr", "for federated learning (Flower)", "federated")
    _set_threads(threads)
    out_dir = Path(out) if out is not None else default_out_dir(cfg.name)
    _check_writable(out_dir)
    out_dir = prepare_out_dir(out_dir, force)
    clear_run_outputs(out_dir, keep_checkpoints=False)
    for name in ("federated.json",):
        (out_dir / name).unlink(missing_ok=True)
    return federate_experiment(cfg, out_dir, deploy=deploy, device=device)
