"""Differentially private training: DP-SGD with Opacus, inside the one Trainer.

A config with ``privacy: {epsilon, delta, max_grad_norm}`` makes :class:`~medlearn.engine.trainer.Trainer`
train through a :class:`PrivateTraining`, which owns everything Opacus-specific:

1. **Layers.** Layers DP-SGD cannot train are replaced in the model itself by Opacus'
   ``ModuleValidator.fix`` (batch norm, which mixes the units of a batch, becomes group norm; an LSTM
   becomes Opacus' DPLSTM). Each replacement is said in a log line and recorded in the bundle
   (:class:`~medlearn.engine.artifacts.LayerReplacement`), whose loader rebuilds it
   (:func:`rebuild_replaced_layers`): the weights keep their names, the bundle rebuilds from its own
   description. A model Opacus still refuses after the fix is one :class:`~medlearn.errors.ConfigError`.
2. **Noise.** ``PrivacyEngine.make_private_with_epsilon`` chooses the noise multiplier so that the
   configured epochs at sample rate q = 1/⌈n_train/batch_size⌉ spend at most ε at δ (PRV accountant by
   default, RDP on request). Opacus' DPOptimizer clips every unit's gradient to ``max_grad_norm`` (L2)
   and adds Gaussian noise of standard deviation noise_multiplier × max_grad_norm to their sum.
3. **Sampling.** Batches come from Opacus' Poisson sampler (every unit joins every batch independently
   with probability q), the sampling the accountant assumes; a batch that comes out empty still takes
   its noise-only step, as the analysis counts it.
4. **Accounting.** The accountant's ε for the steps actually taken (early stopping spends less than the
   target) is what the bundle, ``metrics.json``, the report and the model card show. Its state travels in
   every checkpoint, so ``--resume`` continues the same account.

Per-unit gradients are computed by torch's ExpandedWeights when every layer with parameters is one it
supports (convolutions, linear, embedding, group/layer/instance norm): it needs no module hooks, so
networks that add in place to a layer's output (MONAI's residual blocks) train. Other models use Opacus'
hooks (its DPLSTM and DPGRU, functorch for custom layers).

What ε covers is the influence of each training unit on the weights. It does not cover what is fitted
on the training split outside the gradient steps (a vocabulary, normalisation statistics, the class
weights from its label counts), nor anything chosen on validation (the kept epoch, calibration, the
operating point), whose units are not protected. The noise comes from torch's seeded generator, not a
cryptographically secure one (Opacus' ``secure_mode`` needs torchcsprng): right for research and
reproducible runs; a release meant to resist an attacker who can replay the generator should re-train
with it. The model card says so (:data:`medlearn.engine.model_card.OUTSIDE_EPSILON`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from medlearn.config import PrivacyConfig, TrainConfig
from medlearn.engine.progress import info
from medlearn.engine.protocols import HasOwnObjective
from medlearn.engine.trees import ArrayFitted
from medlearn.errors import BundleError, ConfigError
from medlearn.lazy import require_extra

if TYPE_CHECKING:
    from medlearn.engine.artifacts import LayerReplacement

__all__ = [
    "PrivateTraining",
    "check_private_trainable",
    "per_unit_mean",
    "rebuild_replaced_layers",
    "resolve_delta",
]

log = logging.getLogger(__name__)

#: Layers torch's ExpandedWeights computes per-unit gradients for without module hooks.
_EXPANDED_WEIGHTS_LAYERS = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Embedding,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)
#: Replacements the bundle loader rebuilds with torch alone (from the recorded constructor arguments).
_TORCH_REBUILDS: dict[str, tuple[str, ...]] = {
    "GroupNorm": ("num_groups", "num_channels", "eps", "affine"),
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine"),
    "InstanceNorm1d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "InstanceNorm2d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "InstanceNorm3d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
}


def _opacus(module: str = "opacus") -> Any:
    return require_extra(module, "to train with differential privacy (privacy: in the config)", "privacy")


def resolve_delta(cfg: PrivacyConfig, n_train: int) -> tuple[float, str]:
    """δ and the rule that set it: the configured value, or 1/(10·n_train) without one.

    δ bounds the probability that the ε guarantee fails; a mechanism that publishes one random training
    unit in full is (0, 1/n)-private, so δ must be well below 1/n_train.

    Raises:
        ConfigError: a configured ``privacy.delta`` of 1/n_train or more.
    """
    if cfg.delta is None:
        return 1.0 / (10 * n_train), f"1/(10·n_train), n_train = {n_train}"
    if cfg.delta >= 1.0 / n_train:
        raise ConfigError(
            f"privacy.delta: {cfg.delta:g} is not below 1/n_train = 1/{n_train} = {1 / n_train:.3g}; such a δ "
            "allows one training unit to be published outright (leave delta out for 1/(10·n_train))"
        )
    return float(cfg.delta), "configured"


def check_private_trainable(model: nn.Module, train: TrainConfig) -> None:
    """Refuse what DP-SGD cannot train, before anything is trained.

    Raises:
        ConfigError: a model fitted in one pass (boosted trees: no gradient steps to clip and noise), a
            generative model (its own objective: not supported), or ``train.grad_clip`` beside privacy
            (each unit's gradient is clipped to ``privacy.max_grad_norm`` instead).
    """
    name = type(model).__name__
    if isinstance(model, ArrayFitted):
        raise ConfigError(
            f"privacy: differential privacy is not supported for {name}, a model fitted in one pass (trees); "
            "DP-SGD needs gradient steps: choose a neural model or remove the privacy section"
        )
    if isinstance(model, HasOwnObjective):
        raise ConfigError(
            f"privacy: differential privacy is not supported for generative models ({name}); "
            "remove the privacy section"
        )
    if train.grad_clip is not None:
        raise ConfigError(
            "train.grad_clip: with privacy each unit's gradient is clipped to privacy.max_grad_norm; "
            "remove train.grad_clip"
        )


def per_unit_mean(loss_fn: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss averaged over the units of a batch, which DP-SGD's ``loss_reduction="mean"`` assumes.

    A class-weighted cross-entropy divides by the sum of the batch's weights, which ties each unit's
    gradient to the labels of the others; per-unit losses averaged over the count do not.
    """
    per_unit = copy.copy(loss_fn)
    per_unit.reduction = "none"

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return per_unit(out, y).mean()

    return loss


def _has_own_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _per_sample_mode(model: nn.Module) -> str:
    """``"ew"`` (torch's ExpandedWeights) when every layer with parameters is a torch layer it supports,
    else ``"hooks"`` (Opacus' grad samplers, its DP recurrent layers, functorch for the rest)."""
    layers = [m for m in model.modules() if _has_own_parameters(m)]
    supported = all(
        isinstance(m, _EXPANDED_WEIGHTS_LAYERS) and type(m).__module__.startswith("torch.") for m in layers
    )
    return "ew" if supported else "hooks"


def _constructor_params(module: nn.Module) -> dict[str, Any]:
    keys = _TORCH_REBUILDS.get(type(module).__name__, ())
    params = {k: getattr(module, k) for k in keys}
    if "normalized_shape" in params:
        params["normalized_shape"] = list(params["normalized_shape"])
    return params


def _set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)


def fix_model(model: nn.Module) -> list[dict[str, Any]]:
    """Replace, in ``model`` itself, the layers Opacus cannot train (``ModuleValidator.fix``), turn
    in-place activations out of place (a per-unit gradient hook cannot follow an in-place change), and
    check the result with ``ModuleValidator.validate``.

    Returns:
        One :class:`~medlearn.engine.artifacts.LayerReplacement` mapping per replaced layer.

    Raises:
        ConfigError: the fixed model still holds layers Opacus cannot train privately (named).
    """
    validator = _opacus("opacus.validators").ModuleValidator
    model.train()
    before = {path: type(module).__name__ for path, module in model.named_modules()}
    if not validator.is_valid(model):
        fixed = validator.fix(model)  # a fixed copy: its new layers move into `model` itself
        modules, moved = dict(model.named_modules()), []
        for path, module in fixed.named_modules():
            inside_moved = any(path.startswith(f"{m}.") for m in moved)
            if path in modules and path and not inside_moved and type(modules[path]) is not type(module):
                _set_submodule(model, path, module)
                moved.append(path)
    replaced: list[dict[str, Any]] = []
    for path, module in model.named_modules():
        inside = any(path.startswith(f"{r['path']}.") for r in replaced)  # a new layer's own parts
        if path in before and before[path] != type(module).__name__ and not inside:
            by, params = type(module).__name__, _constructor_params(module)
            replaced.append({"path": path, "replaced": before[path], "by": by, "params": params})
    for module in model.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    problems = validator.validate(model, strict=False)
    if problems:
        raise ConfigError(
            f"privacy: model {type(model).__name__} cannot be trained with differential privacy even after "
            f"Opacus replaced its unsupported layers: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    return replaced


def rebuild_replaced_layers(model: nn.Module, replaced: Sequence[LayerReplacement]) -> nn.Module:
    """Rebuild, in a freshly built model, the layers a private training replaced, so that the bundle's
    weights load: norm layers from their recorded arguments with torch alone, Opacus' own layers (DPLSTM,
    DPGRU, DP multi-head attention) by Opacus' fixer, which needs the ``privacy`` extra.

    Raises:
        BundleError: a recorded layer is missing from the model or is not of the recorded type.
    """
    for layer in replaced:
        try:
            current = model.get_submodule(layer.path)
        except AttributeError:
            raise BundleError(f"privacy.replaced_layers: the model has no layer {layer.path!r}") from None
        if type(current).__name__ == layer.by:
            continue
        if type(current).__name__ != layer.replaced:
            raise BundleError(
                f"privacy.replaced_layers: {layer.path} is a {type(current).__name__}, not the recorded "
                f"{layer.replaced}"
            )
        if layer.by in _TORCH_REBUILDS:
            new = getattr(nn, layer.by)(**layer.params)
        else:
            fixers = require_extra(
                "opacus.validators", f"to load this private bundle's {layer.by} layers", "privacy"
            ).ModuleValidator.FIXERS
            new = fixers[type(current)](current)
            if type(new).__name__ != layer.by:
                raise BundleError(f"privacy.replaced_layers: {layer.path} rebuilds as {type(new).__name__}")
        _set_submodule(model, layer.path, new)
    return model


@contextlib.contextmanager
def _quiet_opacus() -> Iterator[None]:
    """Opacus' warnings that say nothing to a medlearn user: "Secure RNG turned off" (the model card
    says so), the RDP analysis' remark on its range of orders and the PRV analysis' log(0) on the edge of
    its grid (both within the accountants' own searches)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="opacus.accountants")
        yield


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")


class _Indices(torch.utils.data.Dataset):
    """The training units as their positions: Opacus' Poisson sampler draws positions and the Trainer
    collates them with its own (cached, augmented) dataset."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[int]:
        return (i,)  # a tuple, as Opacus' loader expects of a dataset item


class PrivateTraining:
    """One fit's DP-SGD: the fixed model, Opacus' engine, optimizer and sampler, and the account.

    Built by the Trainer before the optimizer (the layer replacement changes the parameters), attached
    to the optimizer (:meth:`attach`), then asked for batches (:meth:`batches`) and, at the end, for its
    :meth:`record` and to :meth:`detach` its hooks.

    Args:
        cfg: the config's ``privacy`` section.
        train: the config's ``train`` section (batch size; ``grad_clip`` must be unset).
        model: the model to train; unsupported layers are replaced in it.
        train_ds: the training units (their number sets the sample rate and δ's default; the shape of
            one sets the dry run's all-zero input).
        epochs: the epochs the noise is calibrated for (the fit's).

    Raises:
        ConfigError: see :func:`check_private_trainable`, :func:`resolve_delta` and :func:`fix_model`.
    """

    def __init__(
        self, cfg: PrivacyConfig, train: TrainConfig, model: nn.Module, train_ds: Sequence[Any], epochs: int
    ):
        check_private_trainable(model, train)
        n_train = len(train_ds)
        self.cfg, self.n_train, self.epochs = cfg, n_train, epochs
        self.example = np.asarray(train_ds[0][0])
        self.frozen: list[nn.Parameter] = []
        self.batch_size = min(train.batch_size, n_train)
        self.delta, self.delta_rule = resolve_delta(cfg, n_train)
        self.replaced = fix_model(model)
        self.mode = _per_sample_mode(model)
        self.model = model
        self.module: nn.Module = model
        self.optimizer: Any = None
        self.sampler: Any = None
        for r in self.replaced:
            log.info("privacy: replaced %s (%s) by %s", r["path"], r["replaced"], r["by"])
        if self.replaced:
            kinds = sorted({f"{r['replaced']} → {r['by']}" for r in self.replaced})
            info(
                f"privacy: replaced {len(self.replaced)} layers DP-SGD cannot train ({', '.join(kinds)}); "
                "recorded in the bundle"
            )

    def attach(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Make the training private: per-unit gradients on the model, Opacus' DPOptimizer around
        ``optimizer`` (returned; the Trainer steps it), Poisson sampling, the noise for ε."""
        opacus = _opacus()
        loader = torch.utils.data.DataLoader(_Indices(self.n_train), batch_size=self.batch_size)
        with _quiet_opacus():
            self.engine = opacus.PrivacyEngine(accountant=self.cfg.accountant)
            try:
                self.module, self.optimizer, dp_loader = self.engine.make_private_with_epsilon(
                    module=self.model,
                    optimizer=optimizer,
                    data_loader=loader,
                    target_epsilon=self.cfg.epsilon,
                    target_delta=self.delta,
                    epochs=self.epochs,
                    max_grad_norm=self.cfg.max_grad_norm,
                    poisson_sampling=True,
                    grad_sample_mode=self.mode,
                )
            except (NotImplementedError, opacus.validators.errors.UnsupportedModuleError) as exc:
                raise ConfigError(
                    f"privacy: Opacus cannot compute per-unit gradients of model {type(self.model).__name__}: "
                    f"{_first_line(exc)}"
                ) from None
        self.sampler = dp_loader.batch_sampler
        self._dry_run()
        info(
            f"privacy: DP-SGD for ε ≤ {self.cfg.epsilon:g} at δ = {self.delta:.3g} over {self.epochs} epochs: "
            f"noise multiplier {self.optimizer.noise_multiplier:.3f}, per-unit gradients clipped to "
            f"{self.cfg.max_grad_norm:g}, Poisson sample rate {self.sampler.sample_rate:.4f}"
        )
        return self.optimizer

    def _dry_run(self) -> None:
        """One forward and backward pass of two all-zero units (no training data) before training.

        A model Opacus cannot take per-unit gradients of (e.g. functorch under dropout in a layer with
        parameters of its own) fails here as one ConfigError rather than at its first batch. Parameters
        the forward pass leaves unused (a sub-network's head) get no per-unit gradient, which Opacus
        refuses: they are frozen for the fit (said in a log line) and keep their initial values.
        """
        device = next(self.model.parameters()).device
        x = torch.zeros((2, *self.example.shape), dtype=torch.from_numpy(self.example).dtype, device=device)
        self.model.train()
        try:
            self.module(x).float().sum().backward()
        except (RuntimeError, ValueError, NotImplementedError) as exc:
            hint = (
                "; functorch differentiates layers with parameters of their own per unit and refuses dropout "
                "inside them: try model.params.dropout=0"
                if "randomness" in str(exc)
                else ""
            )
            raise ConfigError(
                f"privacy: Opacus cannot compute per-unit gradients of model {type(self.model).__name__}: "
                f"{_first_line(exc)}{hint}"
            ) from None
        unused = [
            (name, p)
            for name, p in self.model.named_parameters()
            if p.requires_grad and getattr(p, "grad_sample", None) is None
        ]
        self.optimizer.zero_grad(set_to_none=True)
        for name, p in unused:
            p.requires_grad_(False)
            self.frozen.append(p)
            log.info("privacy: parameter %s is not used by the forward pass: frozen for DP-SGD", name)

    def batches(self) -> Iterator[np.ndarray]:
        """One epoch of Poisson batches: the positions of the units in each (possibly none)."""
        for index in self.sampler:
            yield np.asarray(index, dtype=np.int64)

    def empty_step(self) -> None:
        """The step of a batch that came out empty: no gradient, the noise alone (the accountant counts
        every step of the sampler, so skipping one would make the guarantee wrong)."""
        self.optimizer.zero_grad(set_to_none=True)
        for p in self.optimizer.params:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
        self.optimizer.step()

    def loss(self, loss_fn: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The training loss as DP-SGD needs it (:func:`per_unit_mean`)."""
        return per_unit_mean(loss_fn)

    def epsilon(self) -> float:
        """ε spent so far at δ, from the accountant (0 before the first step)."""
        if not len(self.engine.accountant):
            return 0.0
        with _quiet_opacus():
            return float(self.engine.get_epsilon(self.delta))

    def steps(self) -> int:
        return int(sum(steps for *_, steps in self.engine.accountant.history))

    def state_dict(self) -> dict[str, Any]:
        """The accountant's history for a checkpoint (plain lists: checkpoints load with weights_only)."""
        return {
            "mechanism": self.engine.accountant.mechanism(),
            "history": [list(h) for h in self.engine.accountant.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the account of a resumed run (``--resume``)."""
        if state.get("mechanism") != self.engine.accountant.mechanism():
            raise ConfigError(
                f"privacy.accountant: the checkpoint was accounted with {state.get('mechanism')!r}, the config "
                f"asks for {self.engine.accountant.mechanism()!r}"
            )
        self.engine.accountant.history = [tuple(h) for h in state["history"]]

    def record(self) -> dict[str, Any]:
        """What the bundle's :class:`~medlearn.engine.artifacts.PrivacyRecord` holds."""
        opacus = _opacus()
        return {
            "mechanism": "dp-sgd",
            "library": f"opacus {opacus.__version__}",
            "accountant": self.cfg.accountant,
            "epsilon": round(self.epsilon(), 4),
            "target_epsilon": self.cfg.epsilon,
            "delta": self.delta,
            "delta_rule": self.delta_rule,
            "max_grad_norm": self.cfg.max_grad_norm,
            "noise_multiplier": float(self.optimizer.noise_multiplier),
            "sample_rate": float(self.sampler.sample_rate),
            "expected_batch_size": int(self.optimizer.expected_batch_size),
            "steps": self.steps(),
            "epochs_planned": self.epochs,
            "n_train": self.n_train,
            "poisson_sampling": True,
            "per_sample_gradients": "torch ExpandedWeights" if self.mode == "ew" else "Opacus hooks",
            "secure_rng": False,
            "replaced_layers": self.replaced,
        }

    def detach(self) -> None:
        """Remove Opacus' hooks and per-unit gradient attributes: the model is a plain module again."""
        if self.module is not self.model:
            self.module.to_standard_module()
        for p in self.frozen:
            p.requires_grad_(True)
        for p in self.model.parameters():
            for attr in ("grad_sample", "summed_grad"):
                if hasattr(p, attr):
                    delattr(p, attr)
