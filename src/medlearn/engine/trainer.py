"""The one training loop every pipeline uses.

Optimizer and scheduler from the config, class weighting, early stopping on a validation metric, the
best epoch's weights kept, a checkpoint after every epoch for ``--resume``, deterministic seeds and a
progress bar. Without a validation set (a refit on all the data after cross-validation) it trains a fixed
number of epochs and keeps the last weights. Tasks and models plug in; the loop never learns which
modality it trains. Callbacks (:mod:`medlearn.engine.callbacks`) take part without forking it: they hear
of fits, epochs and checkpoints, may add a loss term (FedProx) and may stop training; the run's
``history.csv``, progress lines and MLflow tracking are built on them.

Reproducibility: :func:`seed_everything` fixes every seed and turns on
``torch.use_deterministic_algorithms``; :func:`reproducibility` records the torch thread count and that
flag, which the bundle keeps (``training.threads``, ``training.deterministic``). On CPU, a training is
bit-exact across runs only with the same thread count on the same machine and library versions (see
``REPRODUCIBILITY`` for what was measured).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from medlearn.config import PrivacyConfig, TrainConfig
from medlearn.engine.callbacks import Callback, CallbackList, FitResult, FitState, epoch_line
from medlearn.engine.checkpoints import load_checkpoint, restore_checkpoint, save_checkpoint
from medlearn.engine.data import CachedDataset
from medlearn.engine.objectives import LOWER_IS_BETTER, balanced_class_weights, make_loss, validation_scores
from medlearn.engine.posthoc import outputs_to_predictions
from medlearn.engine.progress import make_progress
from medlearn.engine.protocols import HasOwnObjective, Reseedable
from medlearn.engine.runtime import REPRODUCIBILITY, pick_device, reproducibility, seed_everything
from medlearn.engine.target import Target
from medlearn.engine.trees import ArrayFitted
from medlearn.errors import ConfigError

if TYPE_CHECKING:
    from medlearn.privacy.dp import PrivateTraining

log = logging.getLogger(__name__)

__all__ = [
    "LOWER_IS_BETTER",
    "REPRODUCIBILITY",
    "Trainer",
    "balanced_class_weights",
    "make_loss",
    "outputs_to_predictions",
    "pick_device",
    "reproducibility",
    "seed_everything",
    "validation_scores",
]


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def collate(ds: CachedDataset, index: np.ndarray, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(ds[int(i)] for i in index))
    x = torch.from_numpy(np.stack(xs))
    y = torch.as_tensor(np.asarray(ys), dtype=torch.long if kind == "multiclass" else torch.float32)
    return x, y


class Trainer:
    """Fit a model on a training set, selecting the epoch by a validation metric.

    Args:
        cfg: the ``train`` section of the experiment config.
        target: what the task predicts; its kind decides loss and prediction activation, its classes,
            ordinality and F1 groups the validation metrics.
        monitor: validation metric for early stopping and best-epoch selection (e.g. "auroc"); default
            the target's.
        checkpoint_dir: where ``last.pt`` is written each epoch (None = no checkpoints).
        device: torch device.
        val_scorer: validation metrics of a model with its own objective, which has no predictions to
            score (e.g. the validity of molecules sampled after each epoch); called in eval mode.
        callbacks: told of fits, epochs and checkpoints, in this order (see :class:`Callback`).
        privacy: train with DP-SGD (:mod:`medlearn.privacy.dp`): Poisson batches, per-unit clipping and
            noise for the configured ε; the fit's ``extra["privacy"]`` records what was spent.

    Examples:
        >>> from medlearn.config import TrainConfig
        >>> trainer = Trainer(TrainConfig(epochs=3), Target("binary", ("benign", "malignant")))
        >>> trainer.monitor
        'auroc'
    """

    def __init__(
        self,
        cfg: TrainConfig,
        target: Target,
        monitor: str | None = None,
        checkpoint_dir: Path | None = None,
        device: torch.device | None = None,
        val_scorer: Callable[[nn.Module], dict[str, float]] | None = None,
        callbacks: Sequence[Callback] = (),
        privacy: PrivacyConfig | None = None,
    ):
        self.cfg = cfg
        self.privacy = privacy
        self.target = target
        self.monitor = monitor or target.monitor
        self.checkpoint_dir = checkpoint_dir
        self.device = device or torch.device("cpu")
        self.val_scorer = val_scorer
        self.callbacks = CallbackList(callbacks)
        self.lower_is_better = self.monitor in LOWER_IS_BETTER

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        if self.cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.cfg.lr, momentum=0.9, weight_decay=self.cfg.weight_decay)
        cls = torch.optim.AdamW if self.cfg.optimizer == "adamw" else torch.optim.Adam
        return cls(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def _scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        if self.cfg.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.cfg.epochs)
        if self.cfg.scheduler == "plateau":
            mode = "min" if self.lower_is_better else "max"
            return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=2)
        return None

    def _improved(self, score: float, best: float) -> bool:
        if math.isnan(score):
            return False
        if math.isnan(best):
            return True
        return score < best if self.lower_is_better else score > best

    def fit(
        self,
        model: nn.Module,
        train_ds: CachedDataset,
        val_ds: CachedDataset | None,
        class_weights: np.ndarray | None = None,
        resume: bool = False,
        epochs: int | None = None,
    ) -> FitResult:
        """Train ``model`` on ``train_ds``; return the history and the kept weights (loaded into ``model``).

        With ``val_ds``: each epoch is validated, training stops after ``early_stopping.patience`` epochs
        without improvement of ``monitor`` and the best epoch's weights are kept. With ``val_ds=None``
        (e.g. the refit on all units after cross-validation): exactly ``epochs`` epochs (default
        ``train.epochs``), no early stopping, the last weights kept. ``epochs`` only shortens the run: the
        cosine schedule still spans ``train.epochs``, so a refit for the folds' median best epoch ``n``
        follows the same learning-rate path as the folds did up to ``n``; a plateau schedule has no signal
        without validation and keeps its learning rate. Models fitted in one pass (:class:`ArrayFitted`)
        ignore ``epochs``. A callback setting ``should_stop`` ends training after the current epoch.
        """
        seed_everything(self.cfg.seed)
        n_epochs = self.cfg.epochs if epochs is None else epochs
        private = None
        if self.privacy is not None:  # layers are replaced before the optimizer sees the parameters
            from medlearn.privacy.dp import PrivateTraining

            private = PrivateTraining(self.privacy, self.cfg, model, train_ds, n_epochs)
        if isinstance(model, ArrayFitted):
            return self._fit_arrays(model, train_ds, val_ds, class_weights)
        if n_epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {n_epochs}")
        model.to(self.device)
        loss_fn = make_loss(self.target.kind, class_weights)
        if loss_fn is not None:
            loss_fn = loss_fn.to(self.device)
        optimizer = self._optimizer(model)
        scheduler = self._scheduler(optimizer)
        if private is not None:
            optimizer = private.attach(optimizer)
        state, bad_epochs = FitState(self, model, n_epochs), 0
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        checkpoint = load_checkpoint(self.checkpoint_dir) if resume else None
        if checkpoint is not None:
            best_state, bad_epochs = restore_checkpoint(checkpoint, model, optimizer, scheduler, state)
            if private is not None:  # the privacy account continues where the checkpoint left it
                private.load_state_dict(checkpoint["privacy"])
        self.callbacks.on_fit_start(state)
        n_seen, t_train = 0, 0.0
        t0 = time.perf_counter()
        with make_progress() as progress:
            bar = progress.add_task("train", total=n_epochs, completed=state.start_epoch - 1, status="")
            for epoch in range(state.start_epoch, n_epochs + 1):
                if self._stop(
                    state,
                    epoch,
                    val_ds is not None and bad_epochs >= self.cfg.early_stopping.patience,
                    t_train,
                ):
                    break
                self.callbacks.on_epoch_start(epoch)
                t_epoch = time.perf_counter()
                train_loss, n = self._train_epoch(model, train_ds, loss_fn, optimizer, epoch, private)
                t_train += time.perf_counter() - t_epoch
                n_seen += n
                row, score = {"epoch": epoch, "train_loss": train_loss}, float("nan")
                if val_ds is None:  # fixed epochs: the last weights are the kept ones
                    state.best_epoch = epoch
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    scores, val_loss = self._validate(model, val_ds, loss_fn)
                    row.update({"val_loss": val_loss, **{f"val_{k}": float(v) for k, v in scores.items()}})
                    score = self._monitored(scores, val_loss)
                    if self._improved(score, state.best_score):
                        state.best_score, state.best_epoch, bad_epochs = score, epoch, 0
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        bad_epochs += 1
                row.update(
                    {"lr": optimizer.param_groups[0]["lr"], "epoch_seconds": time.perf_counter() - t_epoch}
                )
                state.history.append(row)
                if scheduler is not None and not (val_ds is None and self.cfg.scheduler == "plateau"):
                    scheduler.step(score) if self.cfg.scheduler == "plateau" else scheduler.step()
                if self.checkpoint_dir is not None:
                    dp = None if private is None else private.state_dict()
                    path = save_checkpoint(
                        self.checkpoint_dir,
                        model,
                        optimizer,
                        scheduler,
                        epoch,
                        state,
                        best_state,
                        bad_epochs,
                        dp,
                    )
                    self.callbacks.on_checkpoint(path, epoch)
                self.callbacks.on_epoch_end(epoch, row)
                status = epoch_line(state, epoch, row)
                progress.update(bar, advance=1, status=status.split("  ", 1)[1])
                log.info(status)
        extra = reproducibility()
        if private is not None:
            extra["privacy"] = private.record()
            private.detach()
        model.load_state_dict(best_state)
        result = FitResult(
            state.history,
            state.best_epoch,
            state.best_score,
            best_state,
            time.perf_counter() - t0,
            n_seen / t_train if t_train else 0.0,
            extra=extra,
        )
        self.callbacks.on_fit_end(result)
        return result

    def _stop(self, state: FitState, epoch: int, patience_exhausted: bool, t_train: float) -> bool:
        """Whether no further epoch starts: patience exhausted, time limit reached or a callback asked."""
        limit = self.cfg.time_limit_minutes
        reason = (
            "patience"
            if patience_exhausted
            else f"train.time_limit_minutes={limit} reached"
            if limit is not None and t_train > limit * 60
            else "a callback asked"
            if state.should_stop
            else None
        )
        if reason is not None:
            log.info("stopped after %d epochs: %s", epoch - 1, reason)
        return reason is not None

    def _monitored(self, scores: dict[str, float], val_loss: float) -> float:
        """The monitored validation metric (NaN when the scores lack it)."""
        return val_loss if self.monitor == "loss" else float(scores.get(self.monitor, float("nan")))

    def _validate(
        self, model: nn.Module, val_ds: CachedDataset, loss_fn: nn.Module | None
    ) -> tuple[dict[str, float], float]:
        """The validation metrics and mean validation loss of the model as it is now."""
        if isinstance(model, HasOwnObjective):
            val_loss = self.objective_loss(model, val_ds)
            scores = {} if self.val_scorer is None else self.val_scorer(model)
            return scores, val_loss
        val_pred, val_loss = self.predict(model, val_ds, loss_fn=loss_fn)
        return validation_scores(self.target, val_ds.targets, val_pred), val_loss

    @torch.no_grad()
    def objective_loss(self, model: HasOwnObjective, ds: CachedDataset) -> float:
        """Mean ``model.training_loss`` over ``ds`` in eval mode (a generative model's validation loss)."""
        model.eval()
        total = 0.0
        for index in batches(len(ds), max(self.cfg.batch_size, 64), None):
            x, _ = collate(ds, index, self.target.kind)
            total += float(model.training_loss(x.to(self.device))) * len(index)
        return total / max(len(ds), 1)

    def _fit_arrays(
        self,
        model: ArrayFitted,
        train_ds: CachedDataset,
        val_ds: CachedDataset | None,
        class_weights: np.ndarray | None,
    ) -> FitResult:
        """One fit on the whole training set (e.g. boosted trees); validated and reported like an epoch
        (without ``val_ds``, the history row has no validation figures and the score is NaN)."""
        state = FitState(self, model, epochs=1)
        self.callbacks.on_fit_start(state)
        self.callbacks.on_epoch_start(1)
        t0 = time.perf_counter()
        x, y = collate(train_ds, np.arange(len(train_ds)), self.target.kind)
        y_np = y.numpy()
        weights = None if class_weights is None else np.asarray(class_weights)[y_np.astype(int)]
        with make_progress() as progress:
            bar = progress.add_task("fit", total=1, status=f"{type(model).__name__} on {len(y_np)} units")
            facts = model.fit_arrays(x.numpy(), y_np, self.target.kind, weights, self.cfg.seed)
            progress.update(bar, advance=1)
        seconds = time.perf_counter() - t0
        row = {"epoch": 1, **{k: float(v) for k, v in facts.items()}}
        if val_ds is not None:
            val_pred, val_loss = self.predict(
                model, val_ds, loss_fn=make_loss(self.target.kind, class_weights)
            )
            scores = validation_scores(self.target, val_ds.targets, val_pred)
            row.update({"val_loss": val_loss, **{f"val_{k}": float(v) for k, v in scores.items()}})
            state.best_score = self._monitored(scores, val_loss)
        row["epoch_seconds"] = seconds
        state.history.append(row)
        state.best_epoch = 1
        log.info(
            "fitted %s in %.1f s: val_%s %.3f", type(model).__name__, seconds, self.monitor, state.best_score
        )
        self.callbacks.on_epoch_end(1, row)
        state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
        result = FitResult(
            state.history,
            1,
            state.best_score,
            state_dict,
            seconds,
            len(y_np) / seconds if seconds else 0.0,
            extra=reproducibility(),
        )
        self.callbacks.on_fit_end(result)
        return result

    def _train_epoch(
        self,
        model: nn.Module,
        ds: CachedDataset,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        epoch: int,
        private: PrivateTraining | None = None,
    ) -> tuple[float, int]:
        """One pass over ``ds``; the mean of the task's loss (callbacks' extra terms are optimised, not
        reported, so ``train_loss`` stays comparable with ``val_loss``) and the units seen. A private
        fit takes its batches, per-unit loss and forward pass from ``private``."""
        model.train()
        rng = np.random.default_rng(self.cfg.seed * 1000 + epoch)
        if isinstance(ds.augment, Reseedable):
            ds.augment.reseed(self.cfg.seed * 1000 + epoch)
        own_objective, kind = isinstance(model, HasOwnObjective), self.target.kind
        total, n = 0.0, 0
        source = batches(len(ds), self.cfg.batch_size, rng) if private is None else private.batches()
        net, train_loss = (model, loss_fn) if private is None else (private.module, private.loss(loss_fn))
        for b, index in enumerate(source):
            if self.cfg.max_train_batches is not None and b >= self.cfg.max_train_batches:
                break
            if private is not None and len(index) == 0:
                private.empty_step()  # a Poisson batch may be empty: its step is noise alone
                continue
            if private is None and len(index) < 2 and len(ds) > 1:
                continue  # a batch of one breaks batch norm; its unit is seen next epoch
            x, y = collate(ds, index, kind)
            x, y = x.to(self.device), y.to(self.device)
            optimizer.zero_grad(set_to_none=True)
            if own_objective:
                loss = model.training_loss(x)
            else:
                out = net(x)
                loss = train_loss(out if kind == "multiclass" else out.reshape(len(out), -1)[:, 0], y)
            extra = self.callbacks.extra_loss(model, x, y)
            if extra is not None and private is not None:
                raise ConfigError("privacy: a callback's extra loss term (e.g. FedProx) would not be private")
            (loss if extra is None else loss + extra).backward()
            if self.cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
            optimizer.step()
            total += float(loss.detach()) * len(index)
            n += len(index)
        return total / max(n, 1), n

    @torch.no_grad()
    def logits(
        self, model: nn.Module, ds: CachedDataset, loss_fn: nn.Module | None = None
    ) -> tuple[np.ndarray, float]:
        """Raw model outputs (n, k) for every unit of ``ds`` in order, and the mean loss if ``loss_fn``."""
        model.eval()
        model.to(self.device)
        outs, total = [], 0.0
        for index in batches(len(ds), max(self.cfg.batch_size, 64), None):
            x, y = collate(ds, index, self.target.kind)
            out = model(x.to(self.device)).cpu()
            out = out.reshape(len(out), -1)
            if loss_fn is not None:
                total += float(loss_fn(out if self.target.kind == "multiclass" else out[:, 0], y)) * len(
                    index
                )
            outs.append(out.numpy())
        return (np.concatenate(outs) if outs else np.zeros((0, 1), np.float32)), total / max(len(ds), 1)

    def predict(
        self, model: nn.Module, ds: CachedDataset, loss_fn: nn.Module | None = None
    ) -> tuple[np.ndarray, float]:
        """Uncalibrated predictions for every unit of ``ds`` in order (and the mean loss when ``loss_fn``
        is given); post-hoc calibration is applied by the run to :meth:`logits`."""
        out, loss = self.logits(model, ds, loss_fn)
        return outputs_to_predictions(torch.from_numpy(out), self.target.kind), loss
