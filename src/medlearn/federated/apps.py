"""The Flower ServerApp and ClientApp of ``medlearn federate``: thin wrappers around the one Trainer.

A ClientApp round is ``federated.local_epochs`` epochs of :class:`~medlearn.engine.trainer.Trainer` on its
hospital's training units, starting from the global weights, with the train section's optimizer, class
weighting, augmentation and (with a ``privacy`` section) DP-SGD; FedProx's proximal term enters as a
Trainer callback (:class:`ProximalTerm`). No second training loop exists.

The ServerApp runs Flower's own FedAvg, FedProx or FedAdam, guarded so that a run never hangs silently:
before a round it waits at most ``round_timeout_seconds`` for ``min_hospitals`` hospitals to be
connected; a hospital that does not answer within the timeout (or fails) is left out of that round with a
log line, and a round with fewer than ``min_hospitals`` answers ends the run with a one-line reason
(``status.json``). After each round the global weights are saved for the coordinator's per-round scoring.

Two ways to find the run's work folder (:mod:`medlearn.federated.plan`): apps made by
:func:`make_server_app` / :func:`make_client_app` (the simulation engine) carry it; the module-level
``server_app`` and ``client_app`` (the deployment engine, named in the Flower App's ``pyproject.toml``)
read it from the run config key ``work``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from medlearn.engine.callbacks import Callback
from medlearn.engine.data import CachedDataset, Preprocessing
from medlearn.engine.experiment import make_task
from medlearn.engine.models import build_model
from medlearn.engine.runtime import pick_device
from medlearn.engine.trainer import Trainer, balanced_class_weights
from medlearn.federated.plan import Plan, load_plan, load_state, save_state, write_json_atomic

__all__ = ["ProximalTerm", "client_app", "make_client_app", "make_server_app", "server_app"]

log = logging.getLogger(__name__)


class RoundFailed(RuntimeError):
    """A round cannot go on (too few hospitals connected or answering); the message says why."""


class ProximalTerm(Callback):
    """FedProx's term (mu/2)·‖w − w_global‖² added to each batch's loss through the Trainer's callbacks."""

    def __init__(self, mu: float, global_weights: dict[str, torch.Tensor]):
        self.mu = mu
        self.global_weights = {k: v.detach().clone() for k, v in global_weights.items()}

    def extra_loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        if self.mu <= 0:
            return None
        total = None
        for name, param in model.named_parameters():
            if param.requires_grad and name in self.global_weights:
                term = (param - self.global_weights[name].to(param.device)).pow(2).sum()
                total = term if total is None else total + term
        return None if total is None else 0.5 * self.mu * total


# ---- client ---------------------------------------------------------------------------------------


def _hospital(plan: Plan, context: Context) -> str:
    """The hospital this SuperNode serves: its ``partition-id`` node config (0-based)."""
    return plan.hospitals[int(context.node_config["partition-id"])]


def _train_dataset(plan: Plan, hospital: str) -> CachedDataset:
    with np.load(plan.hospital_dir(hospital) / "train.npz", allow_pickle=False) as npz:
        x, y = npz["x"], npz["y"]
    cfg = plan.config
    augment = make_task(cfg).augmentation(plan.model_name, cfg.train.seed) if cfg.train.augment else None
    return CachedDataset(list(x), y, Preprocessing([]), augment=augment)


def local_fit(
    plan: Plan, hospital: str, weights: dict[str, torch.Tensor], server_round: int, mu: float
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One hospital's round: the Trainer for ``local_epochs`` epochs from ``weights`` (no validation: the
    last weights are returned, as federated averaging expects)."""
    cfg, fed = plan.config, plan.federated
    task = make_task(cfg)
    model, _ = build_model(plan.model_name, {}, plan.model_kwargs)
    if cfg.privacy is not None:
        from medlearn.privacy.dp import fix_model

        fix_model(model)
    model.load_state_dict(weights)
    ds = _train_dataset(plan, hospital)
    index = plan.hospitals.index(hospital)
    train_cfg = cfg.train.model_copy(
        update={"epochs": fed.local_epochs, "seed": cfg.train.seed + 1000 * server_round + index}
    )
    privacy = None
    if cfg.privacy is not None:  # sequential composition: each round spends epsilon / rounds
        privacy = cfg.privacy.model_copy(update={"epsilon": cfg.privacy.epsilon / fed.rounds})
    class_weights = None
    if cfg.train.class_weighting == "balanced" and task.kind != "regression":
        class_weights = balanced_class_weights(ds.targets, len(task.class_names))
    callbacks = [ProximalTerm(mu, weights)] if mu > 0 else []
    trainer = Trainer(
        train_cfg, task.target, None, None, pick_device(plan.device), callbacks=callbacks, privacy=privacy
    )
    fit = trainer.fit(model, ds, None, class_weights=class_weights)
    metrics = {"train_loss": float(fit.history[-1]["train_loss"]) if fit.history else float("nan")}
    spent = fit.extra.get("privacy")
    if isinstance(spent, dict) and isinstance(spent.get("epsilon"), int | float):
        metrics["epsilon"] = float(spent["epsilon"])
        metrics["privacy_record"] = json.dumps(spent, default=str)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, metrics


def make_client_app(work: str | None = None) -> ClientApp:
    """A ClientApp for the run in ``work`` (None: the run config's ``work`` key)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        plan = load_plan(work or str(context.run_config["work"]))
        hospital = _hospital(plan, context)
        config = msg.content["config"]
        weights = msg.content["arrays"].to_torch_state_dict()
        mu = float(config.get("proximal-mu", 0.0))
        state, metrics = local_fit(plan, hospital, weights, int(config["server-round"]), mu)
        n = len(np.load(plan.hospital_dir(hospital) / "train.npz")["y"])
        record = str(metrics.pop("privacy_record", ""))
        content = RecordDict(
            {
                "arrays": ArrayRecord(state),
                "metrics": MetricRecord({**metrics, "num-examples": n}),
                "hospital": ConfigRecord({"name": hospital, "privacy": record}),
            }
        )
        return Message(content=content, reply_to=msg)

    return app


# ---- server ---------------------------------------------------------------------------------------


class _Guarded:
    """Mixed into a Flower strategy: deadlines instead of waiting forever, and a record of each round."""

    plan: Plan

    def _wait_for_hospitals(self, grid: Grid, server_round: int) -> None:
        fed = self.plan.federated
        deadline = time.monotonic() + fed.round_timeout_seconds
        while (n := len(list(grid.get_node_ids()))) < fed.min_hospitals:
            if time.monotonic() > deadline:
                raise RoundFailed(
                    f"round {server_round}: {n} of {len(self.plan.hospitals)} hospitals connected after "
                    f"{fed.round_timeout_seconds:g} s (federated.round_timeout_seconds); "
                    f"federated.min_hospitals is {fed.min_hospitals}"
                )
            time.sleep(0.5)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._wait_for_hospitals(grid, server_round)
        messages = list(super().configure_train(server_round, arrays, config, grid))  # type: ignore[misc]
        self._sent = {m.metadata.dst_node_id for m in messages}
        self._round_started = time.monotonic()
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> Any:
        fed = self.plan.federated
        replies = list(replies)
        ok = [r for r in replies if not r.has_error()]
        answered = {r.metadata.src_node_id for r in replies}
        silent = len(self._sent - answered)
        failed = [f"node {r.metadata.src_node_id}: {r.error.reason}" for r in replies if r.has_error()]
        names = [str(r.content["hospital"]["name"]) for r in ok]
        if silent:
            log.warning(
                "round %d: %d hospital(s) did not answer within %g s (federated.round_timeout_seconds); "
                "the round goes on with %s",
                server_round,
                silent,
                fed.round_timeout_seconds,
                ", ".join(names) or "none",
            )
        for line in failed:
            log.warning("round %d: a hospital failed (%s); left out of the round", server_round, line)
        record = {
            "round": server_round,
            "hospitals": names,
            "silent": silent,
            "failed": failed,
            "seconds": round(time.monotonic() - self._round_started, 2),
            "train_loss": {name: float(r.content["metrics"]["train_loss"]) for name, r in zip(names, ok)},
            "epsilon": {
                name: float(r.content["metrics"]["epsilon"])
                for name, r in zip(names, ok)
                if "epsilon" in r.content["metrics"]
            },
            "privacy": {
                name: json.loads(str(r.content["hospital"]["privacy"]))
                for name, r in zip(names, ok)
                if r.content["hospital"].get("privacy")
            },
        }
        write_json_atomic(self.plan.rounds_dir / f"round_{server_round}.json", record)
        if len(ok) < fed.min_hospitals:
            raise RoundFailed(
                f"round {server_round}: {len(ok)} hospital(s) answered ({', '.join(names) or 'none'}), fewer "
                f"than federated.min_hospitals={fed.min_hospitals}"
                + (f"; {silent} silent after {fed.round_timeout_seconds:g} s" if silent else "")
                + (f"; {failed[0]}" if failed else "")
            )
        return super().aggregate_train(server_round, ok)  # type: ignore[misc]


_STRATEGIES = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}


def make_strategy(plan: Plan) -> FedAvg:
    """Flower's strategy the config names, guarded (:class:`_Guarded`); no client-side evaluation rounds
    (the coordinator scores each round's global model on pooled predictions)."""
    fed = plan.federated
    base = _STRATEGIES[fed.strategy]
    kwargs: dict[str, Any] = {
        "fraction_train": fed.fraction_train,
        "fraction_evaluate": 0.0,
        "min_train_nodes": fed.min_hospitals,
        "min_evaluate_nodes": 0,
        "min_available_nodes": fed.min_hospitals,
    }
    if fed.strategy == "fedprox":
        kwargs["proximal_mu"] = fed.proximal_mu
    if fed.strategy == "fedadam":
        kwargs["eta"] = fed.server_lr
    cls = type(base.__name__, (_Guarded, base), {})
    strategy = cls(**kwargs)
    strategy.plan = plan
    return strategy


def run_server(plan: Plan, grid: Grid) -> None:
    """The ServerApp's work: the rounds, each round's global weights saved, ``status.json`` at the end."""
    fed = plan.federated
    try:
        initial = ArrayRecord(load_state(plan.work / "initial.npz"))

        def save_round(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            if server_round > 0:
                save_state(plan.rounds_dir / f"round_{server_round}.npz", arrays.to_torch_state_dict())
            return None

        make_strategy(plan).start(
            grid,
            initial,
            num_rounds=fed.rounds,
            timeout=fed.round_timeout_seconds,
            evaluate_fn=save_round,
        )
    except RoundFailed as exc:
        plan.status(False, str(exc))
        raise
    except Exception as exc:
        plan.status(False, f"the ServerApp failed: {type(exc).__name__}: {exc}")
        raise
    plan.status(True)


def make_server_app(work: str | None = None) -> ServerApp:
    """A ServerApp for the run in ``work`` (None: the run config's ``work`` key)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_server(load_plan(work or str(context.run_config["work"])), grid)

    return app


#: The deployment engine's apps (``medlearn.federated.apps:server_app`` in the Flower App's pyproject).
server_app = make_server_app()
client_app = make_client_app()
